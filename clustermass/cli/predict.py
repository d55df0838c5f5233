"""`cmcat predict`: masses for every cluster of a set of HEALPix tiles, on Dask, into Postgres."""

from __future__ import annotations

from typing import Optional

import typer

from clustermass.cli._common import (
    MAX_SEED, STATE, app, check_device, console, emit_json, print_failures, table, tile_progress,
)
from clustermass.cli.choices import Device, Source


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
    device: Device = typer.Option("cpu", "--device", help="Run the model on cpu or cuda."),
    batch_size: int = typer.Option(256, "--batch-size", min=1, help="Clusters per forward pass."),
    source: Source = typer.Option("mock", "--source", help="Where missing cutouts come from: mock (rendered), local (frame mirror) or sas (SDSS over HTTP)."),
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
    from clustermass.jobs.predict import predict_tiles
    from clustermass.jobs.tiles import RunOptions, SourceChoice

    check_device(device)
    options = RunOptions(scheduler, workers, rerun, resume, max_per_tile)
    with tile_progress() as on_progress:
        summary = predict_tiles(STATE.database(), STATE.settings, tiles, model, SourceChoice(source, frames, universe, seed),
                                catalog=catalog, device=device, batch_size=batch_size, options=options,
                                on_progress=on_progress)
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
    print_failures("predict", s)
