"""`cmcat mock ...`: the simulated universe, its SDSS-format frames and calibration plots."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from clustermass.cli._common import STATE, app, console, emit_json, progress, table

mock_app = typer.Typer(help="Mock universe: catalogues + truth, SDSS-format frames, calibration plots.",
                       no_args_is_help=True)
app.add_typer(mock_app, name="mock")


@mock_app.command("universe")
def universe(
    n: int = typer.Option(26350, "--n", help="Number of redMaPPer-like clusters (the real v5.10 has 26,350)."),
    seed: int = typer.Option(0, "--seed", help="Random seed: the same seed gives byte-identical files."),
    out: Path = typer.Option(..., "--out", help="Folder to write the catalogues and truth table into."),
    area: Optional[float] = typer.Option(
        None, "--area", help="Sky area (deg^2) of a patch around RA=180, Dec=25; default: the SDSS footprint."
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
    max_frames: Optional[int] = typer.Option(None, "--max-frames", help="Write at most this many fields."),
    bands: str = typer.Option("ugriz", "--bands", help="Bands to write (subset of ugriz)."),
    aperture_mpc: float = typer.Option(1.5, "--aperture-mpc", help="Physical cutout side (Mpc) the frames must cover."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Render seed; default the universe's seed."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Render SDSS-format corrected frames (2048x1489, TAN WCS, nanomaggies) covering the universe's
    clusters, in the SAS folder layout, plus window_flist.fits (load it with `cmcat ingest fields`).

    Files that already exist are kept (a second run does no repeated work).
    """
    import numpy as np

    from clustermass.errors import InputError
    from clustermass.images.mock import universe_seed
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
