"""`cmcat mock ...`: the simulated universe, its SDSS-format frames, calibration plots and oracles."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from clustermass.cli._common import MAX_SEED, STATE, app, console, counting_bar, emit_json, progress, table
from clustermass.cli.choices import Variant

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
    variant: Variant = typer.Option("default", "--variant", help="default (calibrated) or control (a positive control: "
                                "the richness scatter has a strong visible cause; docs/mock.md)."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Draw a cluster population and write redMaPPer/MCXC/PSZ2-format catalogues plus the truth table.

    The files go through `cmcat ingest` like the real ones; truth.parquet is for evaluation only.
    """
    from clustermass.mock.population import build_universe
    from clustermass.mock.version import MOCK_VERSION
    from clustermass.mock.writers import write_universe

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
    from clustermass.jobs.mock import render_frames

    with counting_bar("rendering fields") as on_field:
        summary = render_frames(universe_dir, out, tiles, bands, aperture_mpc, max_frames, seed, on_field).as_dict()
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
    from clustermass.jobs.mock import compare_with_real

    with progress(transient=True) as bar:
        task = bar.add_task("comparing with the real data", total=None)
        paths, numbers = compare_with_real(universe_dir, real or STATE.settings.real_data_dir,
                                           out or STATE.settings.output_dir / "mock",
                                           lambda step: bar.update(task, description=step))
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
    from clustermass.jobs.mock import mock_oracles

    with progress(transient=True) as bar:
        bar.add_task("oracle features of the labelled clusters", total=None)
        done = mock_oracles(STATE.database(), STATE.settings, universe_dir, grid, model, seed)
    if json_out:
        emit_json(done.as_dict())
        return
    rows = [(r.estimator, f"{r.mae_label:.4f}", f"{r.ratio_label:.3f}x", f"{r.mae_truth:.4f}", f"{r.ratio_truth:.3f}x")
            for r in done.table.itertuples()]
    console.print(table(f"oracles on {done.clusters} labelled clusters (5 folds, seed {done.fold_seed}; MAE in dex)",
                        ["estimator", "vs label", "ratio", "vs truth", "ratio"], rows))
    console.print(f"registered {', '.join(done.models)}: compare with `cmcat evaluate {done.models[-1]}`")
