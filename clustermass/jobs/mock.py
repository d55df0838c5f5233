"""The mock's jobs: SDSS-format frames of a universe, the comparison with the real data, the oracles.

The mock is a test bed (docs/mock.md): these render its frames, compare it with the real
catalogues and frames, and score what an ideal image model could do on it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from clustermass.config import Settings
from clustermass.errors import InputError
from clustermass.images.base import CutoutGrid
from clustermass.jobs.tiles import tile_spec
from clustermass.mock.calibrate import comparison
from clustermass.mock.frames import FieldSpec, plan_frames, write_frame, write_window_flist
from clustermass.mock.oracle import FEATURES, features_table, oracle_table
from clustermass.mock.scene import Scene
from clustermass.mock.source import MockSource, universe_seed
from clustermass.mock.version import provenance
from clustermass.mock.writers import read_truth
from clustermass.model import registry
from clustermass.model.data import labelled_clusters
from clustermass.model.folds import fold_of
from clustermass.model.metrics import mass_metrics
from clustermass.model.truth import MATCH_ARCSEC
from clustermass.plots.mock import plot_all, plot_gallery
from clustermass.sky import hpx29, tile_of


@dataclass
class FramesSummary:
    """Fields planned for the clusters, written now and already there; the field index written."""

    clusters: int
    fields_planned: int
    fields: int
    fields_written: int
    fields_skipped: int
    bands: str
    frames: int
    window_flist: str
    out: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def plan_universe_frames(universe_dir: Path, tiles: str | None, bands: str, aperture_mpc: float,
                         max_frames: int | None) -> tuple[pd.DataFrame, int, list[FieldSpec], int]:
    """(truth, clusters, fields to write, fields planned) for the universe's clusters (of `tiles`)."""
    if not bands or any(b not in "ugriz" for b in bands):
        raise InputError(f"--bands {bands!r}: use letters of ugriz, e.g. 'gri'")
    truth = read_truth(universe_dir)
    clusters = truth[truth.rm_id > 0]
    if tiles:
        try:
            spec = tile_spec(tiles)
        except InputError as exc:
            raise InputError(f"--tiles: {exc}") from None
        hpx = hpx29(clusters.ra.to_numpy(), clusters.dec.to_numpy())
        clusters = clusters[np.isin(tile_of(hpx, spec.order), spec.resolve(hpx))]
    specs = plan_frames(clusters, aperture_mpc)
    return truth, len(clusters), specs if max_frames is None else specs[:max_frames], len(specs)


def render_frames(universe_dir: Path, out: Path, tiles: str | None, bands: str, aperture_mpc: float,
                  max_frames: int | None, seed: int | None,
                  on_field: Callable[[int, int], None] = lambda done, total: None) -> FramesSummary:
    """Write the frames covering the universe's clusters (existing files kept) and window_flist.fits."""
    truth, n_clusters, specs, planned = plan_universe_frames(universe_dir, tiles, bands, aperture_mpc, max_frames)
    seed = universe_seed(universe_dir) if seed is None else seed
    scene = Scene(seed, truth)
    written = skipped = 0
    for field in specs:
        if all((out / field.relpath(b)).is_file() for b in bands):
            skipped += 1
        else:
            write_frame(scene, field, bands, out)
            written += 1
        on_field(written + skipped, len(specs))
    flist = write_window_flist(specs, out, seed)
    return FramesSummary(n_clusters, planned, len(specs), written, skipped, bands,
                         len(specs) * len(bands), str(flist), str(out))


def compare_with_real(universe_dir: Path, real: Path | None, out: Path,
                      on_step: Callable[[str], None] = lambda step: None) -> tuple[dict[str, Path], dict[str, Any]]:
    """PNGs comparing the mock with the real data, and a gallery of mock cutouts; (files, numbers)."""
    if real is None or not Path(real).is_dir():
        raise InputError(f"real data folder {real} not found; pass --real /path/to/shared/data/real")
    data, numbers = comparison(Path(universe_dir), Path(real))
    paths = plot_all(data, out)
    on_step("rendering a gallery")
    truth = read_truth(universe_dir)
    rm = truth[truth.rm_id > 0].sort_values("rm_id")
    pick = rm.iloc[np.linspace(0, len(rm) - 1, min(5, len(rm))).astype(int)]
    rows = pd.DataFrame({"id": pick.rm_id, "ra": pick.ra, "dec": pick.dec, "z": pick.z_phot, "richness": pick.lambda_obs})
    cuts = MockSource(universe_dir).cutouts(rows, CutoutGrid())
    for c, r in zip(cuts, pick.itertuples()):
        c.meta["title"] = f"lambda {r.lambda_obs:.0f}, z {r.z_phot:.2f}, logM {r.log10_m500:.2f}"
    paths["gallery"] = plot_gallery(cuts, out)
    return paths, numbers


@dataclass
class OracleSummary:
    """The oracles' scores (one row per estimator, MAE in dex against labels and truth) and registered models."""

    clusters: int
    group: str
    models: list[str]
    table: pd.DataFrame
    fold_seed: int

    def as_dict(self) -> dict[str, Any]:
        return {"clusters": self.clusters, "group": self.group, "models": self.models,
                "rows": self.table.to_dict(orient="records")}


@dataclass
class _OracleFolds:
    """The labelled clusters an oracle run scores, their folds, model group and aperture (Mpc)."""

    labels: pd.DataFrame
    fold: np.ndarray
    group: str
    fold_seed: int
    aperture: float


def _folds_of_model(engine: Engine, labels: pd.DataFrame, model: str) -> _OracleFolds:
    """The clusters, folds, group and aperture of a trained model's out-of-fold predictions."""
    rec = registry.get_model(engine, model)
    if "oof" not in rec.training or rec.kind.startswith("oracle-"):
        raise InputError(f"--model {rec.name!r} ({rec.kind}) has no out-of-fold predictions of a trained model")
    oof = pd.DataFrame(rec.training["oof"])
    aperture = rec.config["grid"].get("aperture_mpc")
    if aperture is None:
        raise InputError(f"--model {rec.name!r} uses a fixed angular aperture; the oracle needs a physical one (--grid)")
    return _OracleFolds(labels.set_index("id").loc[oof["cluster_id"]].reset_index(), oof["fold"].to_numpy(),
                        rec.training["group"], int(rec.config["seed"]), float(aperture))


def _folds_of_grid(labels: pd.DataFrame, grid: str, seed: int, prov: dict) -> _OracleFolds:
    """Five seeded folds over the labelled clusters, and a group named after the grid, seed and data."""
    try:
        _, aperture = (float(v) for v in grid.split(":"))
    except ValueError:
        raise InputError(f"--grid {grid!r}: give SIZE:APERTURE_MPC, e.g. 64:1.5") from None
    digest = hashlib.sha256(json.dumps([prov, grid, seed, labels["id"].tolist()], sort_keys=True).encode()).hexdigest()[:10]
    return _OracleFolds(labels, fold_of(labels["id"].to_numpy(), 5, seed),
                        f"mock-{grid.replace(':', 'px-')}mpc-s{seed}-{digest}", seed, aperture)


def mock_oracles(engine: Engine, settings: Settings, universe_dir: Path, grid: str, model: str | None,
                 seed: int) -> OracleSummary:
    """Score the oracles on the labelled clusters matched to the universe; register the best CNN / hybrid one."""
    prov = provenance(universe_dir, 0)
    truth = read_truth(universe_dir)
    scene = Scene(int(prov["universe"]["seed"]), truth)
    labels = labelled_clusters(engine)
    f = _folds_of_model(engine, labels, model) if model else _folds_of_grid(labels, grid, seed, prov)
    halo = [scene.match(r.ra, r.dec, MATCH_ARCSEC) for r in f.labels.itertuples()]
    ok = np.array([h is not None for h in halo])
    if ok.sum() < 10:
        raise InputError(f"only {int(ok.sum())} labelled clusters match {universe_dir}; ingest that universe and run `cmcat crossmatch`")
    labels, fold = f.labels[ok].reset_index(drop=True), f.fold[ok]
    halo_rows = pd.DataFrame([h for h in halo if h is not None])
    clusters = labels[["ra", "dec", "z"]].assign(halo_id=halo_rows.halo_id.to_numpy())
    feats = features_table(scene, clusters, f.aperture / 2)
    y, y_true = labels["log10_m500"].to_numpy(float), halo_rows.log10_m500.to_numpy(float)
    tab, best = oracle_table(feats, y, y_true, labels["richness"].to_numpy(float), fold, f.fold_seed)
    registered = []
    for kind, pred in best.items():
        name = f"{kind}-{f.group}"
        record = {"config": {"features": FEATURES + (["log10_lambda"] if kind == "oracle-hybrid" else []),
                             "aperture_mpc": f.aperture, "seed": f.fold_seed},
                  "metrics": {"cv": mass_metrics(pred, y), "cv_truth": mass_metrics(pred, y_true)},
                  "training": {"group": f.group, "source": "mock", "mock": prov, "n_labels": len(y),
                               "oof": {"cluster_id": labels["id"].tolist(), "pred": pred.tolist(),
                                       "fold": fold.tolist()}}}
        old = registry.find_model(engine, name)
        if old is None:
            registry.save_model(engine, settings, name=name, kind=kind, **record)
        elif old.training["oof"]["pred"] != record["training"]["oof"]["pred"]:
            registry.replace_record(engine, name, **record)  # made by older code: rerunning refreshes it
        registered.append(name)
    return OracleSummary(len(y), f.group, registered, tab, f.fold_seed)
