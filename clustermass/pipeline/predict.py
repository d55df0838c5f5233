"""The predict tile task: masses for every cluster of one HEALPix tile, written in one transaction.

On a worker: read the tile's clusters with the hpx29 range query, get their ugriz cutouts
(cutout store first, then the image source) when the model needs images, run the model in
batches, and write `predictions` with COPY + upsert on (cluster_id, model_id) together with the
tile's `run_tiles` status. Clusters whose label trained the model get the prediction of the fold
model that held them out, and that fold in `predictions.fold` (NULL for the others). The model
is loaded once per worker process (cached), not per task.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import numpy as np
import pandas as pd
from sqlalchemy import Connection

from clustermass.config import Settings
from clustermass.db.bulk import copy_upsert
from clustermass.db.engine import engine_for_url
from clustermass.db.queries import clusters_in_tile
from clustermass.images.base import BANDS, CutoutGrid
from clustermass.images.store import ensure_cutouts, fetch_cutouts
from clustermass.model.api import MassPredictor
from clustermass.model.data import usable
from clustermass.model.population import population_masses
from clustermass.model.registry import load_predictor
from clustermass.pipeline.runs import tile_transaction
from clustermass.pipeline.sources import image_source
from clustermass.pipeline.tiles import TileResult
from clustermass.pipeline.worker import setup_worker, task_settings

DEFAULT_BATCH_SIZE = 256
#: A model loader: (engine, settings, model ref, device) -> MassPredictor.
Loader = Callable[..., MassPredictor]


@functools.lru_cache(maxsize=4)
def cached_predictor(db_url: str, settings: Settings, model: int | str, device: str, loader: Loader) -> MassPredictor:
    """The model, loaded once per (worker) process and reused by every tile task there."""
    return loader(engine_for_url(db_url), settings, model, device)


def predict_in_batches(
    predictor: MassPredictor, images: np.ndarray | None, clusters: pd.DataFrame, batch_size: int,
    fine: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """log10 M500 and its error (dex) for all rows, `batch_size` clusters per model call."""
    n = len(clusters)
    mass = np.empty(n, dtype=np.float64)
    err = np.empty(n, dtype=np.float64)
    for lo in range(0, n, batch_size):
        hi = min(n, lo + batch_size)
        m, e = predictor.predict(None if images is None else images[lo:hi], clusters.iloc[lo:hi],
                                 None if fine is None else fine[lo:hi])
        mass[lo:hi], err[lo:hi] = m, e
    return mass, err


def tile_images(
    conn: Connection, db_url: str, settings: Settings, clusters: pd.DataFrame, grid: CutoutGrid,
    source: str, source_options: dict, tile: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray]:
    """(N, 5, size, size) cutouts of `clusters` from the store, the missing ones fetched from
    `source` and stored (inside the tile's transaction `conn`), and a bool mask of usable rows."""
    src = image_source(source, db_url, settings, source_options)
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
    loader: Loader = load_predictor,
    torch_threads: int | None = None,
) -> TileResult:
    """Tile task of `cmcat predict` (see clustermass.pipeline.runner for the contract).

    Clusters without usable images or without the model's inputs (e.g. no redshift) are counted
    in n_failed and get no prediction; their count is noted in the tile's `error` column.
    Reads as load (clusters, cutouts), compute (`prediction_rows`), write (predictions, tile done).
    """
    cfg = task_settings(settings, db_url)
    setup_worker(torch_threads)
    predictor = cached_predictor(db_url, cfg, model_id, device, loader)
    with tile_transaction(db_url, run_id, norder, npix) as tx:
        if tx.skipped:
            return tx.result
        clusters = clusters_in_tile(tx.conn, norder, npix, catalog_id)
        images = fine = None
        ok = np.ones(len(clusters), dtype=bool)
        if predictor.needs_images and len(clusters):
            opts = dict(source_options or {})
            images, ok = tile_images(tx.conn, db_url, cfg, clusters, predictor.grid, source, opts, (norder, npix))
            if predictor.fine_grid is not None:  # the BCG fits' cutouts, used once (not stored), where `ok`
                size = predictor.fine_grid.size
                fine = np.full((len(clusters), len(BANDS), size, size), np.nan, dtype=np.float32)
                if ok.any():
                    fine[ok] = fetch_cutouts(image_source(source, db_url, cfg, opts), clusters[ok], predictor.fine_grid)
                ok &= usable(fine)
        out, note = prediction_rows(predictor, clusters, images, ok, run_id, batch_size, fine)
        if len(out):
            copy_upsert(
                tx.conn, "predictions", out, conflict=["cluster_id", "model_id"],
                update=["run_id", "log10_m500", "log10_m500_err", "population_log10_m500", "population_log10_m500_err", "fold"],
            )
        return tx.done(n_clusters=len(clusters), n_done=len(out), n_failed=len(clusters) - len(out), error=note)


def prediction_rows(predictor: MassPredictor, clusters: pd.DataFrame, images: np.ndarray | None, ok: np.ndarray,
                    run_id: int, batch_size: int, fine: np.ndarray | None = None) -> tuple[pd.DataFrame, str | None]:
    """`predictions` rows of the usable clusters (`ok`, images and fine cutouts in cluster order), and a note on
    those without one (None when every cluster has one). Pure: no database, no files."""
    todo = clusters[ok].reset_index(drop=True)
    kept = images[ok] if images is not None else None
    mass, err = (predict_in_batches(predictor, kept, todo, batch_size, None if fine is None else fine[ok])
                 if len(todo) else (np.empty(0), np.empty(0)))
    pop_mass, pop_err = population_masses(predictor.population, mass, todo["z"].to_numpy(dtype=float))
    good = np.isfinite(mass)
    fold = predictor.folds(todo["id"].to_numpy())[good]
    out = pd.DataFrame(
        {
            "cluster_id": todo["id"].to_numpy()[good],
            "model_id": predictor.model_id,
            "run_id": run_id,
            "log10_m500": mass[good],
            "log10_m500_err": err[good],
            "population_log10_m500": pd.array(pop_mass[good], dtype="Float64"),  # NaN -> NULL
            "population_log10_m500_err": pd.array(pop_err[good], dtype="Float64"),
            "fold": pd.array(np.where(fold >= 0, fold, None), dtype="Int64"),
        }
    )
    n_failed = len(clusters) - len(out)
    if not n_failed:
        return out, None
    return out, (f"{n_failed} cluster(s) without prediction: {int((~ok).sum())} without usable images, "
                 f"{int((~good).sum())} without model inputs (e.g. no redshift)")
