"""`cmcat predict`: masses for every cluster of a set of HEALPix tiles, on Dask, into Postgres."""

from __future__ import annotations

from typing import Optional

import typer

from clustermass.cli._common import MAX_SEED, STATE, check_device, app, console, emit_json, table, tile_progress
from clustermass.errors import InputError

@app.command("predict")
def predict(
    tiles: Optional[str] = typer.Option(
        None, "--tiles", help="HEALPix tiles: ORDER (all tiles of that order holding clusters, e.g. '3') or ORDER:PIX,PIX ('3:12,13')."
    ),
    model: Optional[str] = typer.Option(None, "--model", help="Model id, name, or kind (newest of that kind: cnn, hybrid, richness)."),
    scheduler: Optional[str] = typer.Option(
        None, "--scheduler", help="Address of a running Dask scheduler (tcp://host:8786); default: a local cluster of worker processes."
    ),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Worker processes of the local cluster (default: setting `workers`)."),
    device: str = typer.Option("cpu", "--device", help="Run the model on cpu or cuda."),
    batch_size: int = typer.Option(256, "--batch-size", min=1, help="Clusters per forward pass."),
    source: str = typer.Option("mock", "--source", help="Where missing cutouts come from: mock (rendered), local (frame mirror) or sas (SDSS over HTTP)."),
    frames: Optional[str] = typer.Option(None, "--frames", help="Frame mirror folder for --source local."),
    universe: Optional[str] = typer.Option(None, "--universe", help="Mock universe folder for --source mock (default: synthesise from the catalogue)."),
    seed: int = typer.Option(0, "--seed", min=0, max=MAX_SEED, help="Seed of the mock renderer (--source mock)."),
    catalog: Optional[str] = typer.Option(None, "--catalog", help="Only clusters of this catalogue (name)."),
    rerun: bool = typer.Option(False, "--rerun", help="Recompute every tile in a new run, even those already done."),
    resume: Optional[int] = typer.Option(None, "--resume", min=1, help="Continue run RUN (its tiles, model and source); only unfinished tiles run."),
    max_per_tile: int = typer.Option(2000, "--max-per-tile", min=1, help="Split tiles holding more clusters than this into higher-order tiles."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Predict log10 M500 for every cluster of the tiles and write them to the `predictions` table.

    One Dask task per HEALPix tile. Re-running the same command skips finished tiles (idempotent and resumable after an interruption); see docs/pipeline.md for running on a Dask cluster.
    """
    from clustermass import sky
    from clustermass.db import migrate
    from clustermass.model.registry import get_model
    from clustermass.db.queries import catalog_id_by_name
    from clustermass.pipeline.predict import predict_tile
    from clustermass.pipeline.runner import run_tiles
    from clustermass.pipeline.sources import check_frames_indexed, source_options
    from clustermass.pipeline.worker import torch_threads_for, worker_settings

    check_device(device)
    settings = STATE.settings
    engine = STATE.engine()
    migrate.upgrade(engine)
    n_workers = workers or settings.workers
    exec_args = {
        "device": device,
        "batch_size": batch_size,
        "settings": worker_settings(settings),
        "torch_threads": torch_threads_for(scheduler, n_workers),
    }
    if resume is not None:
        spec, args, ident, model_id, catalog_id = None, exec_args, None, None, None
    else:
        if not tiles or not model:
            raise InputError("give --tiles and --model (or --resume RUN to continue a run)")
        try:
            spec = sky.parse_tiles(tiles)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        opts = source_options(source, frames, universe, seed)
        model_id = get_model(engine, model).id
        catalog_id = catalog_id_by_name(engine, catalog)
        check_frames_indexed(engine, source)
        ident = {"model_id": model_id, "source": source, "source_options": opts}
        args = {**exec_args, "model_id": model_id, "source": source, "source_options": opts}

    with tile_progress() as on_progress:
        summary = run_tiles(
            settings, "predict", spec, predict_tile, args, identity=ident, catalog_id=catalog_id, model_id=model_id,
            scheduler=scheduler, workers=n_workers, resume=resume, rerun=rerun, max_per_tile=max_per_tile,
            on_progress=on_progress,
        )
    if json_out:
        emit_json(summary.as_dict())
    else:
        _print_summary(summary)
    if summary.status != "done":
        raise typer.Exit(1)


def _print_summary(s) -> None:
    rows = [
        ("run", f"{s.run_id}" + (" (resumed)" if s.resumed else "")),
        ("status", s.status),
        ("tiles", f"{s.n_tiles_done} done now, {s.n_tiles_skipped} already done, {s.n_tiles_failed} failed, of {s.n_tiles}"),
        ("clusters", f"{s.n_done} predicted, {s.n_failed} without prediction, in {s.n_clusters} processed"),
        ("time", f"{s.seconds:.1f} s on {s.workers} worker(s)"),
        ("throughput", f"{s.clusters_per_s:.1f} clusters/s"),
    ]
    console.print(table("predict", ["", ""], rows))
    for f in s.failures[:10]:
        console.print(f"[red]tile {f['norder']}/{f['npix']} failed:[/red] {f['error']}", highlight=False)
    if len(s.failures) > 10:
        console.print(f"... and {len(s.failures) - 10} more (SELECT * FROM run_tiles WHERE run_id = {s.run_id} AND status = 'failed')")
    if s.failures:
        console.print(f"fix the cause, then continue with `cmcat predict --resume {s.run_id}`")
