"""`predict_tiles`: masses for every cluster of a set of HEALPix tiles, on Dask, into `predictions`."""

from __future__ import annotations

from sqlalchemy import Engine

from clustermass.config import Settings
from clustermass.db.queries import catalog_id_by_name
from clustermass.errors import InputError
from clustermass.jobs.tiles import OnProgress, RunOptions, SourceChoice, run_job, tile_spec, worker_args
from clustermass.model.registry import get_model
from clustermass.pipeline.predict import predict_tile
from clustermass.pipeline.runner import RunSummary


def predict_tiles(engine: Engine, settings: Settings, tiles: str | None, model: str | None, source: SourceChoice, *,
                  catalog: str | None, device: str, batch_size: int, options: RunOptions,
                  on_progress: OnProgress | None = None) -> RunSummary:
    """Predict log10 M500 for the clusters of `tiles` with `model` (or continue run `options.resume`)."""
    args = {**worker_args(settings, options, networks=True), "device": device, "batch_size": batch_size}
    if options.resume is not None:
        return run_job(settings, "predict", None, predict_tile, args, options, on_progress)
    if not tiles or not model:
        raise InputError("give --tiles and --model (or --resume RUN to continue a run)")
    spec = tile_spec(tiles)
    chosen = source.identity(engine)
    model_id = get_model(engine, model).id
    catalog_id = catalog_id_by_name(engine, catalog)
    ident = {"model_id": model_id, **chosen}
    return run_job(settings, "predict", spec, predict_tile, {**args, **ident}, options, on_progress,
                   identity=ident, catalog_id=catalog_id, model_id=model_id)
