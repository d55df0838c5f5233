"""The predict tile task: masses for every cluster of one HEALPix tile, written in one transaction.

On a worker: read the tile's clusters with the hpx29 range query, get their ugriz cutouts
(cutout store first, then the image source) when the model needs images, run the model in
batches, and write `predictions` with COPY + upsert on (cluster_id, model_id) together with the
tile's `run_tiles` status. Clusters whose label trained the model get the prediction of the fold
model that held them out, and that fold in `predictions.fold` (NULL for the others). The model
is loaded once per worker process (cached), not per task.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import json
from typing import Any, Callable

import numpy as np
import pandas as pd
from sqlalchemy import Connection

from clustermass.allocator import tune_for_tensors
from clustermass.config import Settings, load_settings
from clustermass.db.bulk import copy_upsert
from clustermass.db.engine import engine_for_url
from clustermass.db.queries import clusters_in_tile
from clustermass.errors import PipelineError
from clustermass.images.base import CutoutGrid, ImageSource
from clustermass.images.store import ensure_cutouts
from clustermass.model.api import MassPredictor
from clustermass.pipeline.runner import tile_transaction

DEFAULT_LOADER = "clustermass.model.registry:load_predictor"
DEFAULT_BATCH_SIZE = 256


def worker_settings(settings: Settings) -> dict[str, Any]:
    """Settings as plain JSON-able data for tile tasks (no database URL: workers get it resolved)."""
    out = {}
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if f.name != "database_url" and value is not None:
            out[f.name] = str(value) if not isinstance(value, (int, float, str)) else value
    return out


def _resolve(path: str) -> Callable[..., Any]:
    module, _, name = path.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise PipelineError(f"cannot import model loader {path!r}: {exc}") from None


def setup_worker(torch_threads: int | None) -> None:
    """Per-process set-up of a tile task that runs a network: allocator tuning, torch threads."""
    tune_for_tensors()
    if torch_threads:
        import torch

        torch.set_num_threads(int(torch_threads))


@functools.lru_cache(maxsize=4)
def cached_predictor(db_url: str, settings: Settings, model: int | str, device: str, loader: str) -> MassPredictor:
    """The model, loaded once per (worker) process and reused by every tile task there."""
    return _resolve(loader)(engine_for_url(db_url), settings, model, device)


def predict_in_batches(
    predictor: MassPredictor, images: np.ndarray | None, clusters: pd.DataFrame, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """log10 M500 and its error (dex) for all rows, `batch_size` clusters per model call."""
    n = len(clusters)
    mass = np.empty(n, dtype=np.float64)
    err = np.empty(n, dtype=np.float64)
    for lo in range(0, n, batch_size):
        hi = min(n, lo + batch_size)
        m, e = predictor.predict(None if images is None else images[lo:hi], clusters.iloc[lo:hi])
        mass[lo:hi], err[lo:hi] = m, e
    return mass, err


@functools.lru_cache(maxsize=4)
def image_source(name: str, db_url: str, settings: Settings, options_json: str) -> ImageSource:
    """The ImageSource `name` (mock | local | sas) with its JSON options, built once per process."""
    from clustermass.model.data import make_source

    return make_source(engine_for_url(db_url), settings, name, json.loads(options_json))


def tile_images(
    conn: Connection, db_url: str, settings: Settings, clusters: pd.DataFrame, grid: CutoutGrid,
    source: str, source_options: dict, tile: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray]:
    """(N, 5, size, size) cutouts of `clusters` from the store, the missing ones fetched from
    `source` and stored (inside the tile's transaction `conn`), and a bool mask of usable rows."""
    src = image_source(source, db_url, settings, json.dumps(source_options, sort_keys=True))
    res = ensure_cutouts(conn, settings.cutout_dir, clusters, src, grid, tile)
    return res.data, np.array([st != "failed" for st in res.status], dtype=bool)


def predict_tile(
    db_url: str,
    run_id: int,
    norder: int,
    npix: int,
    *,
    model_id: int,
    settings: dict[str, Any],
    device: str = "cpu",
    batch_size: int = DEFAULT_BATCH_SIZE,
    source: str = "mock",
    source_options: dict | None = None,
    catalog_id: int | None = None,
    loader: str = DEFAULT_LOADER,
    torch_threads: int | None = None,
) -> dict:
    """Tile task of `cmcat predict` (see clustermass.pipeline.runner for the contract).

    Clusters without usable images or without the model's inputs (e.g. no redshift) are counted
    in n_failed and get no prediction; their count is noted in the tile's `error` column.
    """
    cfg = load_settings(overrides={**settings, "database_url": db_url}, environ={})
    setup_worker(torch_threads)
    predictor = cached_predictor(db_url, cfg, model_id, device, loader)
    with tile_transaction(db_url, run_id, norder, npix) as tx:
        if tx.skipped:
            return tx.result
        clusters = clusters_in_tile(tx.conn, norder, npix, catalog_id)
        ok = np.ones(len(clusters), dtype=bool)
        images = None
        if predictor.needs_images and len(clusters):
            images, ok = tile_images(
                tx.conn, db_url, cfg, clusters, predictor.grid, source, dict(source_options or {}), (norder, npix)
            )
            images = images[ok]
        todo = clusters[ok].reset_index(drop=True)
        mass, err = predict_in_batches(predictor, images, todo, batch_size) if len(todo) else (np.empty(0), np.empty(0))
        good = np.isfinite(mass)
        fold = predictor.folds(todo["id"].to_numpy())[good]
        out = pd.DataFrame(
            {
                "cluster_id": todo["id"].to_numpy()[good],
                "model_id": predictor.model_id,
                "run_id": run_id,
                "log10_m500": mass[good],
                "log10_m500_err": err[good],
                "fold": pd.array(np.where(fold >= 0, fold, None), dtype="Int64"),
            }
        )
        if len(out):
            copy_upsert(
                tx.conn, "predictions", out, conflict=["cluster_id", "model_id"],
                update=["run_id", "log10_m500", "log10_m500_err", "fold"],
            )
        n_failed = len(clusters) - len(out)
        note = None
        if n_failed:
            note = (
                f"{n_failed} cluster(s) without prediction: {int((~ok).sum())} without usable images, "
                f"{int((~good).sum())} without model inputs (e.g. no redshift)"
            )
        return tx.done(n_clusters=len(clusters), n_done=len(out), n_failed=n_failed, error=note)
