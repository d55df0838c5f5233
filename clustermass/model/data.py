"""Database and image I/O for training: which clusters, their labels, their cutouts.

The training loops never see the database or an image source: these functions turn the
`clusters`/`labels` tables and an image source into plain DataFrames and arrays.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd
from sqlalchemy import Engine, func, select

from clustermass import sky
from clustermass.config import Settings
from clustermass.db import queries
from clustermass.db.models import Cluster
from clustermass.errors import ModelError
from clustermass.images.base import CutoutGrid, ImageSource
from clustermass.images.store import ensure_cutouts, fetch_cutouts
from clustermass.model.bcgfit import FINE_GRID

#: images_fn(clusters) -> (N, 5, size, size) float32 nanomaggies (NaN = uncovered) in row order.
ImagesFn = Callable[[pd.DataFrame], np.ndarray]


def labelled_clusters(engine: Engine) -> pd.DataFrame:
    """Clusters with a label (`db.queries.labelled_clusters`); ModelError when there are none."""
    with engine.connect() as conn:
        df = queries.labelled_clusters(conn)
    if df.empty:
        raise ModelError(
            "no labelled clusters (with z and richness) in the database: ingest a cluster catalogue and "
            "mass catalogues with `cmcat ingest`, then run `cmcat crossmatch`"
        )
    return df


def sample_clusters(engine: Engine, n: int, seed: int) -> pd.DataFrame:
    """A seeded random sample of n clusters (all if fewer), labelled or not, ordered by id."""
    with engine.connect() as conn:
        ids = np.array(conn.execute(select(Cluster.id).where(Cluster.z > 0).order_by(Cluster.id)).scalars().all())
        if len(ids) == 0:
            raise ModelError("no clusters with a redshift in the database: ingest a catalogue with `cmcat ingest`")
        pick = np.sort(np.random.default_rng(seed).choice(ids, size=min(n, len(ids)), replace=False))
        rows = conn.execute(select(*queries.CLUSTER_COLUMNS).where(Cluster.id.in_(pick.tolist())).order_by(Cluster.id)).all()
    return pd.DataFrame(rows, columns=[c.key for c in queries.CLUSTER_COLUMNS])


def count_clusters(engine: Engine) -> int:
    """Number of clusters in the database."""
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(Cluster)).scalar_one())


def usable(images: np.ndarray, min_covered: float = 0.5) -> np.ndarray:
    """(N,) bool: cutouts whose every band has at least `min_covered` of its pixels finite."""
    finite = np.isfinite(images).reshape(*images.shape[:2], -1).mean(-1)
    return (finite >= min_covered).all(axis=1)


#: HEALPix order of the chunks in which training asks for cutouts (one store transaction each).
CHUNK_ORDER = 3


def source_images_fn(
    engine: Engine,
    settings: Settings,
    grid: CutoutGrid,
    src: ImageSource,
    on_progress: Callable[[str, int, int, dict], None] | None = None,
) -> ImagesFn:
    """An ImagesFn reading the cutout store, fetching/rendering missing cutouts from `src`.

    Clusters are processed in HEALPix tiles of order CHUNK_ORDER (one store transaction each);
    rows whose cutout failed come back all-NaN (training drops them as unusable).
    """
    def images(clusters: pd.DataFrame) -> np.ndarray:
        out = np.full((len(clusters), 5, grid.size, grid.size), np.nan, dtype=np.float32)
        tiles = sky.tile_of(sky.hpx29(clusters["ra"].to_numpy(), clusters["dec"].to_numpy()), CHUNK_ORDER)
        done = 0
        for pix in np.unique(tiles):
            rows = np.flatnonzero(tiles == pix)
            with engine.begin() as conn:
                res = ensure_cutouts(conn, settings.cutout_dir, clusters.iloc[rows].reset_index(drop=True), src, grid,
                                     (CHUNK_ORDER, int(pix)))
            out[rows] = res.data
            done += len(rows)
            if on_progress:
                on_progress("cutouts", done, len(clusters), res.counts())
        return out

    return images


def fine_images_fn(photometry: tuple[str, ...], src: ImageSource) -> ImagesFn | None:
    """The ImagesFn of the BCG fits' cutouts (`bcgfit.FINE_GRID`, fetched and not stored) when `photometry` has
    'bcgfit', else None."""
    if "bcgfit" not in photometry:
        return None
    return lambda clusters: fetch_cutouts(src, clusters, FINE_GRID)
