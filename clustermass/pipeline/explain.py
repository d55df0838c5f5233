"""Explanations from the database: load a model for explaining, get cutouts, score against the
mock truth, and the Dask tile task of `cmcat explain --tiles SPEC --summary`.

A model is explained through the registry's predictor (its frozen trunk and fold heads; a
cluster whose label trained the model through the fold head that held it out, as `cmcat predict`
predicts it) and the stage-1 band classifier it was trained on (`models.training.trunk_model`). Cutouts come
from the cutout store (missing ones from the image source, as in `cmcat predict`). With the
mock source, the member galaxies drawn into each cutout are known (the universe's truth, or
the cluster synthesised for a catalogue row), so each explanation gets enrichment factors on
member and BCG pixels; other sources give NaN there.

Batch results: one CSV per tile under `{out}/run-{run_id}/`, written in the tile's transaction
step (a rerun of a tile rewrites its file), read back by `read_results`.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, select

from clustermass import sky
from clustermass.config import Settings
from clustermass.db.engine import engine_for_url
from clustermass.db.models import Cluster, Label
from clustermass.db.queries import clusters_in_tile
from clustermass.errors import InputError, ModelError
from clustermass.images.atomic import atomic_write
from clustermass.images.base import CutoutGrid, ImageSource, cutout_wcs
from clustermass.images.store import ensure_cutouts
from clustermass.mock.scene import halo_sources
from clustermass.mock.source import MockSource, synthetic_halo
from clustermass.model import registry
from clustermass.model.datasets import aux_inputs
from clustermass.model.explain import (
    DEFAULT_RADIUS_PX,
    DEFAULT_STEPS,
    DEFAULT_TOL,
    EnsembleMass,
    Explanation,
    explain_image,
    member_enrichment,
)
from clustermass.model.networks import BandClassifier
from clustermass.model.preprocess import normalise
from clustermass.model.truth import MATCH_ARCSEC
from clustermass.pipeline.runs import tile_transaction
from clustermass.pipeline.sources import image_source
from clustermass.pipeline.tiles import TileResult
from clustermass.pipeline.worker import setup_worker, task_settings

#: HEALPix order of the store file a single-cluster explanation reads/writes (as training does).
SINGLE_ORDER = 3
RESULT_COLUMNS = [
    "cluster_id", "name", "ra", "dec", "z", "richness", "log10_m500_pred", "fold", "log10_m500_label",
    "log10_m500_true", "enrichment_members", "enrichment_bcg", "area_members", "area_bcg", "n_members", "ig_steps",
    "completeness_error", "seconds",
]


@dataclass
class ExplainModel:
    """A mass model ready to explain: the differentiable ensemble, its fold models and its stage-1
    classifier. A cluster whose label trained the model is explained through the fold model that
    held it out, as `cmcat predict` predicts it (`held_out`: cluster id -> fold)."""

    model_id: int
    name: str
    grid: CutoutGrid
    softening: float
    regressor: EnsembleMass
    classifier: BandClassifier
    fold_regressors: list[EnsembleMass] = field(default_factory=list)
    held_out: dict[int, int] = field(default_factory=dict)

    def regressor_for(self, cluster_id: int) -> tuple[EnsembleMass, int | None]:
        """The model that predicts this cluster and its fold (None: the ensemble of all folds)."""
        fold = self.held_out.get(int(cluster_id))
        return (self.regressor, None) if fold is None else (self.fold_regressors[fold], fold)


def load_explain_model(engine: Engine, settings: Settings, ref: int | str, tta: bool = False) -> ExplainModel:
    """The CNN/hybrid model `ref` (id, name or kind) and the band classifier whose trunk it uses."""
    pred = registry.load_predictor(engine, settings, ref)
    if not isinstance(pred, registry.EnsemblePredictor):
        raise ModelError(f"model {pred.name!r} uses no images, so there is nothing to explain; pick a cnn or hybrid model")
    if pred.photometry:
        raise ModelError(f"model {pred.name!r} reads photometric features (stage2.photometry), which the maps of the "
                         "normalised images cannot attribute; pick a model trained without them")
    record = registry.get_model(engine, pred.model_id)
    trunk_name = record.training.get("trunk_model")
    clf = registry.find_model(engine, trunk_name) if trunk_name else None
    if clf is None:
        raise ModelError(
            f"model {record.name!r} names no registered stage-1 band classifier (training.trunk_model="
            f"{trunk_name!r}); Grad-CAM needs it: retrain with `cmcat train`"
        )
    per_fold = [EnsembleMass([pred.trunks[i % len(pred.trunks)]], [h], tta).eval() for i, h in enumerate(pred.heads)]
    return ExplainModel(pred.model_id, pred.name, pred.grid, pred.softening,
                        EnsembleMass(pred.trunks, pred.heads, tta).eval(), registry.load_band_classifier(settings, clf),
                        per_fold, pred.held_out)


def find_cluster(engine: Engine, ref: str) -> pd.DataFrame:
    """The cluster with id `ref` (digits) or else exact name `ref`, as a one-row DataFrame."""
    cols = [Cluster.id, Cluster.name, Cluster.ra, Cluster.dec, Cluster.hpx29, Cluster.z, Cluster.richness]
    with engine.connect() as conn:
        row = None
        if ref.isdigit():
            row = conn.execute(select(*cols).where(Cluster.id == int(ref))).first()
        if row is None:
            row = conn.execute(select(*cols).where(Cluster.name == ref).order_by(Cluster.id)).first()
    if row is None:
        raise InputError(f"no cluster with id or name {ref!r}; find one with `cmcat sql \"SELECT id, name FROM clusters LIMIT 10\"`")
    return pd.DataFrame([tuple(row)], columns=[c.key for c in cols])


def label_masses(conn: Connection, ids: Sequence[int]) -> dict[int, float]:
    """Labelled log10 M500 (cross-matched external masses) of the given cluster ids."""
    rows = conn.execute(select(Label.cluster_id, Label.log10_m500).where(Label.cluster_id.in_([int(i) for i in ids])))
    return {int(c): float(m) for c, m in rows}


def truth_members(src: ImageSource, ra: float, dec: float, z: float, richness: float):
    """(member Sources with the BCG first, true log10 M500) of the cluster the mock source draws at
    (ra, dec), or None for sources without a truth. Members of neighbouring clusters are not included."""
    if not isinstance(src, MockSource):
        return None
    halo = src.scene.match(ra, dec, MATCH_ARCSEC)  # the same choice MockSource.render makes
    if halo is None and np.isfinite(z) and z > 0:
        halo = synthetic_halo(src.seed, ra, dec, z, richness)
    if halo is None:
        return None
    return halo_sources(src.seed, halo), float(halo["log10_m500"])


@dataclass
class ClusterExplanation:
    """One explained cluster: its cutout (nanomaggies), maps, truth overlay and scores."""

    cluster: dict[str, Any]
    image: np.ndarray  # (5, H, W) nanomaggies
    pixel_scale: float  # arcsec / pixel
    explanation: Explanation
    members_xy: np.ndarray | None  # (2, N) pixel positions of members in the cutout, BCG first
    scores: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        """The batch-result row (RESULT_COLUMNS)."""
        c = self.cluster
        return {"cluster_id": int(c["id"]), "name": c.get("name"), "ra": c["ra"], "dec": c["dec"], "z": c["z"],
                "richness": c["richness"], **self.scores}


def _members_in_cutout(members, ra: float, dec: float, size: int, scale: float) -> np.ndarray:
    """(2, N) 0-based pixel positions of the members inside the cutout (BCG first if inside)."""
    x, y = cutout_wcs(ra, dec, size, scale).world_to_pixel_values(members.ra, members.dec)
    inside = (x > -0.5) & (x < size - 0.5) & (y > -0.5) & (y < size - 0.5)
    return np.stack([x[inside], y[inside]])


def explain_clusters(
    conn: Connection,
    settings: Settings,
    model: ExplainModel,
    clusters: pd.DataFrame,
    src: ImageSource,
    tile: tuple[int, int],
    radius: float = DEFAULT_RADIUS_PX,
    steps: Sequence[int] = DEFAULT_STEPS,
    tol: float = DEFAULT_TOL,
) -> tuple[list[ClusterExplanation], dict[int, str]]:
    """Explain every cluster (id, name, ra, dec, z, richness) with a usable cutout.

    Returns (explanations, {cluster id: why it was skipped}).
    """
    res = ensure_cutouts(conn, settings.cutout_dir, clusters, src, model.grid, tile)
    labels = label_masses(conn, clusters["id"].tolist())
    aux = aux_inputs(clusters["richness"].to_numpy(dtype=float), clusters["z"].to_numpy(dtype=float))
    out, skipped = [], {}
    for k, c in enumerate(clusters.to_dict("records")):
        cid = int(c["id"])
        if res.status[k] == "failed" or not np.isfinite(res.pixel_scale[k]):
            skipped[cid] = res.error[k] or "no usable cutout"
            continue
        t0 = time.perf_counter()
        regressor, fold = model.regressor_for(cid)
        expl = explain_image(regressor, model.classifier, normalise(res.data[k], model.softening), aux[k], steps, tol)
        truth = truth_members(src, c["ra"], c["dec"], c["z"], c["richness"])
        xy, scores = None, {"enrichment_members": np.nan, "enrichment_bcg": np.nan, "area_members": np.nan,
                            "area_bcg": np.nan, "n_members": 0, "log10_m500_true": np.nan}
        if truth is not None:
            members, true_mass = truth
            xy = _members_in_cutout(members, c["ra"], c["dec"], model.grid.size, float(res.pixel_scale[k]))
            scores["log10_m500_true"] = true_mass
            scores["n_members"] = int(xy.shape[1])
            if xy.shape[1]:
                scores.update(member_enrichment(expl.joint_sum, xy[0], xy[1], radius))
        scores.update(
            log10_m500_pred=expl.ig.prediction, fold=fold, log10_m500_label=labels.get(cid, np.nan),
            ig_steps=expl.ig.n_steps,
            completeness_error=expl.ig.completeness_error, seconds=time.perf_counter() - t0,
        )
        out.append(ClusterExplanation(c, res.data[k], float(res.pixel_scale[k]), expl, xy, scores))
    return out, skipped


def explain_one(
    engine: Engine, settings: Settings, model: ExplainModel, cluster: pd.DataFrame, src: ImageSource,
    radius: float = DEFAULT_RADIUS_PX, tol: float = DEFAULT_TOL,
) -> ClusterExplanation:
    """Explain one cluster (a one-row DataFrame from `find_cluster`); InputError without a usable cutout."""
    pix = int(sky.tile_of(sky.hpx29(cluster["ra"].to_numpy(), cluster["dec"].to_numpy()), SINGLE_ORDER)[0])
    with engine.begin() as conn:
        done, skipped = explain_clusters(conn, settings, model, cluster, src, (SINGLE_ORDER, pix), radius, tol=tol)
    if not done:
        cid = int(cluster["id"].iloc[0])
        raise InputError(f"cluster {cid}: no usable cutout to explain ({skipped.get(cid)})")
    return done[0]


def save_maps(ce: ClusterExplanation, path: Path) -> Path:
    """The raw maps of one explanation as a compressed .npz (bands in ugriz order)."""
    import io

    e = ce.explanation
    xy = ce.members_xy if ce.members_xy is not None else np.zeros((2, 0))
    buf = io.BytesIO()
    np.savez_compressed(
        buf, bands=np.array(list("ugriz")), image=ce.image, ig=e.ig.attributions, cam=e.cam, joint=e.joint,
        joint_sum=e.joint_sum, members_x=xy[0], members_y=xy[1], pixel_scale=ce.pixel_scale,
        cluster_id=int(ce.cluster["id"]), **{k: np.asarray(v, dtype=float) for k, v in ce.scores.items()},
    )
    atomic_write(Path(path), buf.getvalue())
    return Path(path)


# --------------------------------------------------------------------------- batch mode (Dask tile task)


@functools.lru_cache(maxsize=2)
def _cached_model(db_url: str, settings: Settings, model_id: int, tta: bool) -> ExplainModel:
    return load_explain_model(engine_for_url(db_url), settings, model_id, tta)


def run_dir(out: Path, run_id: int) -> Path:
    """Folder of a batch run's per-tile result files."""
    return Path(out) / f"run-{int(run_id)}"


def explain_tile(
    db_url: str,
    run_id: int,
    norder: int,
    npix: int,
    *,
    model_id: int,
    settings: dict[str, Any],
    out: str,
    source: str = "mock",
    source_options: dict | None = None,
    radius: float = DEFAULT_RADIUS_PX,
    tta: bool = False,
    catalog_id: int | None = None,
    torch_threads: int | None = None,
) -> TileResult:
    """Tile task of `cmcat explain --tiles` (runner contract): explain the tile's clusters and
    write their result rows to `{out}/run-{run_id}/tile-{norder}-{npix}.csv`."""
    cfg = task_settings(settings, db_url)
    setup_worker(torch_threads)
    model = _cached_model(db_url, cfg, model_id, tta)
    src = image_source(source, db_url, cfg, source_options)
    with tile_transaction(db_url, run_id, norder, npix) as tx:
        if tx.skipped:
            return tx.result
        clusters = clusters_in_tile(tx.conn, norder, npix, catalog_id)
        done, skipped = explain_clusters(tx.conn, cfg, model, clusters, src, (norder, npix), radius) if len(clusters) else ([], {})
        frame = pd.DataFrame([ce.row() for ce in done], columns=RESULT_COLUMNS)
        path = run_dir(Path(out), run_id) / f"tile-{norder}-{npix}.csv"
        atomic_write(path, frame.to_csv(index=False).encode())
        note = f"{len(skipped)} cluster(s) without usable cutouts" if skipped else None
        return tx.done(n_clusters=len(clusters), n_done=len(done), n_failed=len(skipped), error=note)


def read_results(out: Path, run_id: int) -> pd.DataFrame:
    """All per-cluster result rows of a batch run (RESULT_COLUMNS), by cluster id."""
    files = sorted(run_dir(out, run_id).glob("tile-*.csv"))
    frames = [pd.read_csv(f) for f in files]
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=RESULT_COLUMNS)
    return pd.concat(frames, ignore_index=True).sort_values("cluster_id").reset_index(drop=True)


def summarise(results: pd.DataFrame, threshold: float = 3.0) -> dict[str, Any]:
    """Enrichment summary of batch results (means over clusters with a truth; NaN-aware)."""
    em = results["enrichment_members"].astype(float)
    eb = results["enrichment_bcg"].astype(float)
    scored = em.notna()

    def stat(f, s: pd.Series) -> float | None:
        return float(f(s.dropna())) if s.notna().any() else None

    return {
        "n_explained": int(len(results)),
        "n_with_truth": int(scored.sum()),
        "enrichment_members_mean": stat(np.mean, em),
        "enrichment_members_median": stat(np.median, em),
        f"fraction_members_ge_{threshold:g}": float((em[scored] >= threshold).mean()) if scored.any() else None,
        "enrichment_bcg_mean": stat(np.mean, eb),
        "enrichment_bcg_median": stat(np.median, eb),
        "area_members_mean": stat(np.mean, results["area_members"].astype(float)),
        "completeness_error_max": stat(np.max, results["completeness_error"].astype(float)),
        "seconds_per_cluster_mean": stat(np.mean, results["seconds"].astype(float)),
    }
