"""`cmcat fetch`: ugriz cutouts of every cluster of a set of HEALPix tiles into the cutout store."""

from __future__ import annotations

from typing import Optional

import typer

from clustermass.cli._common import MAX_SEED, STATE, app, console, emit_json, print_failures, table, tile_progress
from clustermass.cli.choices import Source


@app.command("fetch")
def fetch(
    tiles: Optional[str] = typer.Option(
        None, "--tiles", help="HEALPix tiles: ORDER (all tiles of that order holding clusters, e.g. '3') or ORDER:PIX,PIX ('3:12,13')."
    ),
    source: Source = typer.Option("sas", "--source", help="sas (SDSS frames over HTTP, cached), local (frame mirror, --frames) or mock (rendered)."),
    frames: Optional[str] = typer.Option(None, "--frames", help="Frame mirror folder in the SAS layout for --source local."),
    universe: Optional[str] = typer.Option(None, "--universe", help="Mock universe folder for --source mock."),
    seed: int = typer.Option(0, "--seed", min=0, max=MAX_SEED, help="Seed of the mock renderer (--source mock)."),
    size: int = typer.Option(64, "--size", min=8, help="Cutout side in pixels."),
    aperture_mpc: float = typer.Option(1.5, "--aperture-mpc", min=0.01, help="Cutout side in Mpc at the cluster redshift."),
    aperture_arcsec: Optional[float] = typer.Option(None, "--aperture-arcsec", min=1.0, help="Fixed cutout side in arcsec (overrides --aperture-mpc)."),
    catalog: Optional[str] = typer.Option(None, "--catalog", help="Only clusters of this catalogue (name)."),
    scheduler: Optional[str] = typer.Option(
        None, "--scheduler", help="Address of a running Dask scheduler (tcp://host:8786); default: a local cluster of worker processes."
    ),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Worker processes of the local cluster (default: setting `workers`)."),
    rerun: bool = typer.Option(False, "--rerun", help="Go over every tile again in a new run (stored cutouts are still reused)."),
    resume: Optional[int] = typer.Option(None, "--resume", min=1, help="Continue fetch run RUN; only its unfinished tiles run."),
    max_per_tile: int = typer.Option(2000, "--max-per-tile", min=1, help="Split tiles holding more clusters than this into higher-order tiles."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Fetch or render the ugriz cutouts of every cluster of the tiles into the cutout store.

    Frames are located through the `fields` table (load it with `cmcat ingest fields --sas`)
    for --source sas and local. One Dask task per HEALPix tile; running the same command again skips
    finished tiles, and stored cutouts are reused after their checksum is verified.
    """
    from clustermass.images.base import CutoutGrid
    from clustermass.jobs.fetch import fetch_tiles
    from clustermass.jobs.tiles import RunOptions, SourceChoice

    grid = CutoutGrid(size=size, aperture_mpc=None if aperture_arcsec else aperture_mpc, aperture_arcsec=aperture_arcsec)
    options = RunOptions(scheduler, workers, rerun, resume, max_per_tile)
    with tile_progress() as on_progress:
        summary = fetch_tiles(STATE.database(), STATE.settings, tiles, SourceChoice(source, frames, universe, seed), grid,
                              catalog=catalog, options=options, on_progress=on_progress)
    if json_out:
        emit_json(summary.as_dict())
    else:
        _print_summary(summary.as_dict())
        print_failures("fetch", summary.run)
    if summary.run.status != "done":
        raise typer.Exit(1)


def _print_summary(r: dict) -> None:
    rows = [
        ("run", f"{r['run_id']}" + (" (resumed)" if r["resumed"] else "")),
        ("status", r["status"]),
        ("tiles", f"{r['n_tiles_done']} done now, {r['n_tiles_skipped']} already done, {r['n_tiles_failed']} failed, of {r['n_tiles']}"),
        ("cutouts", f"{r['fetched']} fetched ({r['partial']} partly covered), {r['cached']} already stored, {r['failed']} failed"),
        ("changed files", f"{r['changed']} stored cutouts failed their checksum and were fetched again"),
        ("time", f"{r['seconds']:.1f} s on {r['workers']} worker(s), {r['clusters_per_s']:.1f} clusters/s"),
    ]
    console.print(table("fetch", ["", ""], rows))
    for why, n in list(r["failure_reasons"].items())[:10]:
        console.print(f"[red]{n} failed:[/red] {why}", highlight=False)
