"""`cmcat fetch`: ugriz cutouts of every cluster of a set of HEALPix tiles into the cutout store."""

from __future__ import annotations

from collections import Counter
from typing import Optional

import typer

from clustermass.cli._common import MAX_SEED, STATE, app, console, emit_json, table, tile_progress
from clustermass.errors import InputError


@app.command("fetch")
def fetch(
    tiles: Optional[str] = typer.Option(
        None, "--tiles", help="HEALPix tiles: ORDER (all tiles of that order holding clusters, e.g. '3') or ORDER:PIX,PIX ('3:12,13')."
    ),
    source: str = typer.Option("sas", "--source", help="sas (SDSS frames over HTTP, cached), local (frame mirror, --frames) or mock (rendered)."),
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
    from clustermass import sky
    from clustermass.db import migrate
    from clustermass.db.queries import catalog_id_by_name
    from clustermass.images.base import CutoutGrid
    from clustermass.pipeline.fetch import fetch_tile
    from clustermass.pipeline.runner import run_tiles
    from clustermass.pipeline.sources import check_frames_indexed, source_options
    from clustermass.pipeline.worker import worker_settings

    settings = STATE.settings
    engine = STATE.engine()
    migrate.upgrade(engine)
    exec_args = {"settings": worker_settings(settings)}
    if resume is not None:
        spec, args, ident, catalog_id = None, exec_args, None, None
    else:
        if not tiles:
            raise InputError("give --tiles (e.g. '3' or '3:12,13'), or --resume RUN to continue a run")
        try:
            spec = sky.parse_tiles(tiles)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        catalog_id = catalog_id_by_name(engine, catalog)
        opts = source_options(source, frames, universe, seed)
        check_frames_indexed(engine, source)
        grid = CutoutGrid(size=size, aperture_mpc=None if aperture_arcsec else aperture_mpc, aperture_arcsec=aperture_arcsec)
        ident = {"source": source, "source_options": opts, "grid": grid.as_dict()}
        args = {**exec_args, **ident}

    totals: Counter = Counter()
    reasons: Counter = Counter()

    def count(p) -> None:
        if p.last:
            totals.update({k: int(p.last.get(k) or 0) for k in ("cached", "fetched", "changed", "partial", "failed")})
            reasons.update(p.last.get("errors") or {})

    with tile_progress(count) as on_progress:
        summary = run_tiles(
            settings, "fetch", spec, fetch_tile, args, identity=ident, catalog_id=catalog_id,
            scheduler=scheduler, workers=workers, resume=resume, rerun=rerun, max_per_tile=max_per_tile,
            on_progress=on_progress,
        )
    result = {**summary.as_dict(), **{k: totals[k] for k in ("cached", "fetched", "changed", "partial", "failed")},
              "failure_reasons": dict(reasons.most_common())}
    if json_out:
        emit_json(result)
    else:
        _print_summary(result)
    if summary.status != "done":
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
    for f in r["failures"][:10]:
        console.print(f"[red]tile {f['norder']}/{f['npix']} failed:[/red] {f['error']}", highlight=False)
    if r["failures"]:
        console.print(f"fix the cause, then continue with `cmcat fetch --resume {r['run_id']}`")
