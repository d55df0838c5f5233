"""`cmcat mock ...`: the simulated universe, its SDSS-format frames and calibration plots."""

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
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Draw a cluster population and write redMaPPer/MCXC/PSZ2-format catalogues plus the truth table.

    The files go through `cmcat ingest` like the real ones; truth.parquet is for evaluation only.
    """
    from clustermass.mock.population import build_universe
    from clustermass.mock.writers import write_universe

    with progress(transient=True) as bar:
        task = bar.add_task("drawing haloes", total=None)
        u = build_universe(n, seed, area)
        bar.update(task, description="writing catalogues")
        paths = write_universe(u, out, {"n": n, "seed": seed, "area_deg2": area})
    h = u.haloes
    rm = h[h.rm_id > 0]
    summary = {
        "out": str(out), "clusters": int(len(rm)), "haloes": int(len(h)), "area_deg2": round(u.area_deg2, 3),
        "mcxc_rows": int(h.in_mcxc.sum()), "psz2_rows": int(h.in_psz2.sum()),
        "mcxc_in_redmapper": int((rm.in_mcxc).sum()), "psz2_only_in_redmapper": int((rm.in_psz2 & ~rm.in_mcxc).sum()),
        "files": {k: str(v) for k, v in paths.items()},
    }
    if json_out:
        emit_json(summary)
        return
    rows = [(k, v) for k, v in summary.items() if k != "files"]
    console.print(table(f"mock universe (seed {seed})", ["", "value"], rows))
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
    from clustermass.model.truth import read_truth
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
    scene = Scene(seed, truth[truth.rm_id > 0])
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
    flist = write_window_flist(specs, out)
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
    field counts/colours vs photoObj, and a gallery of mock cutouts.
    """
    import pandas as pd

    from clustermass.errors import InputError
    from clustermass.images.base import CutoutGrid
    from clustermass.mock.source import MockSource
    from clustermass.mock.calibrate import comparison
    from clustermass.plots.mock import plot_all, plot_gallery
    from clustermass.model.truth import read_truth

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
            ("baseline MAE", f"{b['mae']:.3f} dex (real 0.156)")]
    console.print(table("mock vs real", ["", "value"], rows))
    for p in paths.values():
        console.print(f"wrote {p}")
