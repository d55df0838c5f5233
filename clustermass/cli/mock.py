"""`cmcat mock ...`: the simulated universe, its SDSS-format frames, calibration plots and oracles."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import typer

from clustermass.cli._common import MAX_SEED, STATE, app, console, emit_json, progress, table

mock_app = typer.Typer(help="Mock universe: catalogues + truth, SDSS-format frames, calibration plots.",
                       no_args_is_help=True)
app.add_typer(mock_app, name="mock")


@mock_app.command("universe")
def universe(
    n: int = typer.Option(26350, "--n", min=1, help="Number of redMaPPer-like clusters (the real v5.10 has 26,350)."),
    seed: int = typer.Option(0, "--seed", min=0, max=MAX_SEED, help="Random seed: the same seed gives byte-identical files."),
    out: Path = typer.Option(..., "--out", help="Folder to write the catalogues and truth table into."),
    area: Optional[float] = typer.Option(
        None, "--area", min=0.01, max=16900.0,
        help="Sky area (deg^2, at most 16,900: below the pole) of a square patch around RA=180, Dec=25; default: the SDSS footprint."
    ),
    variant: str = typer.Option("default", "--variant", help="default (calibrated) or control (a positive control: "
                                "the richness scatter has a strong visible cause; docs/mock.md)."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Draw a cluster population and write redMaPPer/MCXC/PSZ2-format catalogues plus the truth table.

    The files go through `cmcat ingest` like the real ones; truth.parquet is for evaluation only.
    """
    from clustermass.errors import InputError
    from clustermass.mock.population import build_universe
    from clustermass.mock.relations import VARIANTS
    from clustermass.mock.version import MOCK_VERSION
    from clustermass.mock.writers import write_universe

    if variant not in VARIANTS:
        raise InputError(f"--variant {variant!r}: use one of {', '.join(VARIANTS)}")

    with progress(transient=True) as bar:
        task = bar.add_task("drawing haloes", total=None)
        u = build_universe(n, seed, area, variant)
        bar.update(task, description="writing catalogues")
        paths = write_universe(u, out, {"n": n, "seed": seed, "area_deg2": area, "variant": variant})
    h = u.haloes
    rm = h[h.rm_id > 0]
    summary = {
        "out": str(out), "mock_version": MOCK_VERSION, "variant": variant, "clusters": int(len(rm)), "haloes": int(len(h)), "area_deg2": round(u.area_deg2, 3),
        "mcxc_rows": int(h.in_mcxc.sum()), "psz2_rows": int(h.in_psz2.sum()),
        "mcxc_in_redmapper": int((rm.in_mcxc).sum()), "psz2_only_in_redmapper": int((rm.in_psz2 & ~rm.in_mcxc).sum()),
        "files": {k: str(v) for k, v in paths.items()},
    }
    if json_out:
        emit_json(summary)
        return
    rows = [(k, v) for k, v in summary.items() if k != "files"]
    console.print(table(f"mock universe v{MOCK_VERSION} (seed {seed})", ["", "value"], rows))
    console.print(f"files in [bold]{out}[/bold]: " + ", ".join(p.name for p in paths.values()))


@mock_app.command("frames")
def frames(
    universe_dir: Path = typer.Option(..., "--universe", help="Universe folder from `cmcat mock universe`."),
    out: Path = typer.Option(..., "--out", help="Root of the SAS layout to write (dr12/boss/photoObj/frames/...)."),
    tiles: Optional[str] = typer.Option(
        None, "--tiles", help="Only clusters in these HEALPix tiles: ORDER or ORDER:PIX,PIX (e.g. '5:1234')."
    ),
    max_frames: Optional[int] = typer.Option(None, "--max-frames", min=1, help="Write at most this many fields."),
    bands: str = typer.Option("ugriz", "--bands", help="Bands to write (subset of ugriz)."),
    aperture_mpc: float = typer.Option(1.5, "--aperture-mpc", min=0.01, help="Physical cutout side (Mpc) the frames must cover."),
    seed: Optional[int] = typer.Option(None, "--seed", min=0, max=MAX_SEED, help="Render seed; default the universe's seed."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Render SDSS-format frames covering the universe's clusters, plus window_flist.fits.

    Corrected frames (2048x1489, TAN WCS, nanomaggies) in the SAS folder layout; load the field
    index with `cmcat ingest fields OUT/window_flist.fits` and read them with `--source local`.
    Files that already exist are kept (a second run does no repeated work).
    """
    import numpy as np

    from clustermass.errors import InputError
    from clustermass.mock.source import universe_seed
    from clustermass.mock.frames import plan_frames, write_frame, write_window_flist
    from clustermass.mock.scene import Scene
    from clustermass.mock.writers import read_truth
    from clustermass.sky import hpx29, parse_tiles, tile_of

    if not bands or any(b not in "ugriz" for b in bands):
        raise InputError(f"--bands {bands!r}: use letters of ugriz, e.g. 'gri'")
    truth = read_truth(universe_dir)
    clusters = truth[truth.rm_id > 0]
    if tiles:
        try:
            spec = parse_tiles(tiles)
        except ValueError as exc:
            raise InputError(f"--tiles: {exc}") from None
        hpx = hpx29(clusters.ra.to_numpy(), clusters.dec.to_numpy())
        clusters = clusters[np.isin(tile_of(hpx, spec.order), spec.resolve(hpx))]
    seed = universe_seed(universe_dir) if seed is None else seed
    specs = plan_frames(clusters, aperture_mpc)
    planned = len(specs)
    if max_frames is not None:
        specs = specs[:max_frames]
    scene = Scene(seed, truth)
    written = skipped = 0
    with progress() as bar:
        task = bar.add_task("rendering fields", total=len(specs))
        for field in specs:
            if all((out / field.relpath(b)).is_file() for b in bands):
                skipped += 1
            else:
                write_frame(scene, field, bands, out)
                written += 1
            bar.advance(task)
    flist = write_window_flist(specs, out, seed)
    summary = {"clusters": int(len(clusters)), "fields_planned": planned, "fields": len(specs),
               "fields_written": written, "fields_skipped": skipped, "bands": bands,
               "frames": len(specs) * len(bands), "window_flist": str(flist), "out": str(out)}
    if json_out:
        emit_json(summary)
        return
    console.print(table("mock frames", ["", "value"], list(summary.items())))


@mock_app.command("plot")
def plot(
    universe_dir: Path = typer.Option(..., "--universe", help="Universe folder from `cmcat mock universe`."),
    real: Optional[Path] = typer.Option(
        None, "--real", help="Folder of the real catalogues/frames; default the real_data_dir setting."
    ),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for the PNGs; default DATA_DIR/output/mock."),
    json_out: bool = typer.Option(False, "--json", help="Print the numbers and file names as JSON."),
) -> None:
    """PNGs comparing the mock with the real data side by side.

    Lambda and z distributions (KS), labels and the richness baseline, BCG colours vs SPIDERS,
    field counts/colours vs photoObj, projection / miscentring / magnitude-gap effects against the
    literature, and a gallery of mock cutouts.
    """
    import pandas as pd

    from clustermass.errors import InputError
    from clustermass.images.base import CutoutGrid
    from clustermass.mock.source import MockSource
    from clustermass.mock.calibrate import comparison
    from clustermass.plots.mock import plot_all, plot_gallery
    from clustermass.mock.writers import read_truth

    real = real or STATE.settings.real_data_dir
    if real is None or not Path(real).is_dir():
        raise InputError(f"real data folder {real} not found; pass --real /path/to/shared/data/real")
    out = out or STATE.settings.output_dir / "mock"
    with progress(transient=True) as bar:
        task = bar.add_task("comparing with the real data", total=None)
        data, numbers = comparison(Path(universe_dir), Path(real))
        paths = plot_all(data, out)
        bar.update(task, description="rendering a gallery")
        truth = read_truth(universe_dir)
        rm = truth[truth.rm_id > 0].sort_values("rm_id")
        pick = rm.iloc[np.linspace(0, len(rm) - 1, min(5, len(rm))).astype(int)]
        rows = pd.DataFrame({"id": pick.rm_id, "ra": pick.ra, "dec": pick.dec, "z": pick.z_phot,
                             "richness": pick.lambda_obs})
        cuts = MockSource(universe_dir).cutouts(rows, CutoutGrid())
        for c, r in zip(cuts, pick.itertuples()):
            c.meta["title"] = f"lambda {r.lambda_obs:.0f}, z {r.z_phot:.2f}, logM {r.log10_m500:.2f}"
        paths["gallery"] = plot_gallery(cuts, out)
    if json_out:
        emit_json({"files": {k: str(v) for k, v in paths.items()}, **numbers})
        return
    b = numbers["baseline"]
    rows = [("KS lambda / z", f"{numbers['ks']['lambda']:.3f} / {numbers['ks']['z']:.3f}"),
            ("labelled", f"{b['labelled']} of {b['clusters']} ({100 * b['fraction']:.2f}%): {b['xray']} X-ray, {b['sz']} SZ"),
            ("baseline MAE", f"{b['mae']:.3f} dex (real 0.156)"),
            ("projected share, lambda 20-30", f"{numbers['projection']['share']['20-30']:.3f} (literature ~0.16)"),
            ("miscentred", f"{numbers['assembly']['miscentred_fraction']:.3f} (Zhang+2019: 0.25 +- 0.08)"),
            ("gap effect on sigma(M|lambda)", f"{100 * numbers['assembly']['gap_scatter_reduction']:.0f}% (Hearin+2013: 15-20%)")]
    console.print(table("mock vs real", ["", "value"], rows))
    for p in paths.values():
        console.print(f"wrote {p}")


@mock_app.command("oracle")
def oracle(
    universe_dir: Path = typer.Option(..., "--universe", help="Universe folder, ingested and cross-matched in this database."),
    grid: str = typer.Option("64:1.5", "--grid", help="Cutout SIZE:APERTURE (pixels : physical side in Mpc) whose contents the oracle may use."),
    model: Optional[str] = typer.Option(None, "--model", help="A trained cnn/hybrid model: use its grid, folds and clusters, and register the oracles in its group."),
    seed: int = typer.Option(0, "--seed", help="Fold seed (as `cmcat baseline --seed`) when no --model is given."),
    json_out: bool = typer.Option(False, "--json", help="Print the table as JSON."),
) -> None:
    """How well an ideal image model could do: out-of-fold fits of noise-free cutout quantities + z.

    Scores the richness baseline, the CNN oracle (image quantities + z) and the hybrid oracle (+ observed
    lambda), by least squares and gradient boosting, against the labels and the true masses, and
    registers the best CNN / hybrid oracle's per-cluster out-of-fold predictions as models of kind
    oracle-cnn / oracle-hybrid (`cmcat evaluate` shows them; with --model, next to that model).
    """
    import hashlib
    import json as _json

    import pandas as pd

    from clustermass.errors import InputError
    from clustermass.model.truth import MATCH_ARCSEC
    from clustermass.mock.oracle import FEATURES, features_table, oracle_table
    from clustermass.mock.scene import Scene
    from clustermass.mock.version import provenance
    from clustermass.mock.writers import read_truth
    from clustermass.model import registry
    from clustermass.model.data import labelled_clusters
    from clustermass.model.folds import fold_of
    from clustermass.model.metrics import mass_metrics

    engine, settings = STATE.engine(), STATE.settings
    prov = provenance(universe_dir, 0)
    truth = read_truth(universe_dir)
    scene = Scene(int(prov["universe"]["seed"]), truth)
    labels = labelled_clusters(engine)
    if model:
        rec = registry.get_model(engine, model)
        if "oof" not in rec.training or rec.kind.startswith("oracle-"):
            raise InputError(f"--model {rec.name!r} ({rec.kind}) has no out-of-fold predictions of a trained model")
        oof = pd.DataFrame(rec.training["oof"])
        labels = labels.set_index("id").loc[oof["cluster_id"]].reset_index()
        fold, group, fold_seed = oof["fold"].to_numpy(), rec.training["group"], int(rec.config["seed"])
        aperture = rec.config["grid"].get("aperture_mpc")
        if aperture is None:
            raise InputError(f"--model {rec.name!r} uses a fixed angular aperture; the oracle needs a physical one (--grid)")
    else:
        try:
            _, aperture = (float(v) for v in grid.split(":"))
        except ValueError:
            raise InputError(f"--grid {grid!r}: give SIZE:APERTURE_MPC, e.g. 64:1.5") from None
        fold_seed = seed
        fold = fold_of(labels["id"].to_numpy(), 5, seed)
        digest = hashlib.sha256(_json.dumps([prov, grid, seed, labels["id"].tolist()], sort_keys=True).encode()).hexdigest()[:10]
        group = f"mock-{grid.replace(':', 'px-')}mpc-s{seed}-{digest}"
    halo = [scene.match(r.ra, r.dec, MATCH_ARCSEC) for r in labels.itertuples()]
    ok = np.array([h is not None for h in halo])
    if ok.sum() < 10:
        raise InputError(f"only {int(ok.sum())} labelled clusters match {universe_dir}; ingest that universe and run `cmcat crossmatch`")
    labels, fold = labels[ok].reset_index(drop=True), fold[ok]
    halo_rows = pd.DataFrame([h for h in halo if h is not None])
    clusters = labels[["ra", "dec", "z"]].assign(halo_id=halo_rows.halo_id.to_numpy())
    with progress(transient=True) as bar:
        bar.add_task(f"oracle features of {len(labels)} clusters", total=None)
        feats = features_table(scene, clusters, float(aperture) / 2)
        y, y_true = labels["log10_m500"].to_numpy(float), halo_rows.log10_m500.to_numpy(float)
        tab, best = oracle_table(feats, y, y_true, labels["richness"].to_numpy(float), fold, fold_seed)
    registered = []
    for kind, pred in best.items():
        name = f"{kind}-{group}"
        if registry.find_model(engine, name) is None:
            registry.save_model(
                engine, settings, name=name, kind=kind,
                config={"features": FEATURES + (["log10_lambda"] if kind == "oracle-hybrid" else []),
                        "aperture_mpc": float(aperture), "seed": fold_seed},
                metrics={"cv": mass_metrics(pred, y), "cv_truth": mass_metrics(pred, y_true)},
                training={"group": group, "source": "mock", "mock": prov, "n_labels": len(y),
                          "oof": {"cluster_id": labels["id"].tolist(), "pred": pred.tolist(), "fold": fold.tolist()}},
            )
        registered.append(name)
    if json_out:
        emit_json({"clusters": len(y), "group": group, "models": registered, "rows": tab.to_dict(orient="records")})
        return
    rows = [(r.estimator, f"{r.mae_label:.4f}", f"{r.ratio_label:.3f}x", f"{r.mae_truth:.4f}", f"{r.ratio_truth:.3f}x")
            for r in tab.itertuples()]
    console.print(table(f"oracles on {len(y)} labelled clusters (5 folds, seed {fold_seed}; MAE in dex)",
                        ["estimator", "vs label", "ratio", "vs truth", "ratio"], rows))
    console.print(f"registered {', '.join(registered)}: compare with `cmcat evaluate {registered[-1]}`")
