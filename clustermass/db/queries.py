"""Reusable spatial queries over hpx29-indexed tables (tiles and cones)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from sqlalchemy import Connection, ColumnElement, Engine, and_, false, or_, select

from clustermass import sky
from clustermass.db.models import Catalog, Cluster, Label, Prediction
from clustermass.errors import InputError


def hpx_ranges_clause(column: ColumnElement, ranges: list[tuple[int, int]]) -> ColumnElement:
    """`column BETWEEN lo AND hi OR ...` for inclusive hpx29 ranges (each one index range scan)."""
    if not ranges:
        return false()
    return or_(*(column.between(lo, hi) for lo, hi in ranges))


def clusters_in_tile(conn: Connection, order: int, pix: int, catalog_id: int | None = None) -> pd.DataFrame:
    """Clusters of one tile (optionally one catalogue) as a DataFrame, ordered by id."""
    lo, hi = sky.tile_range(order, pix)
    cols = [Cluster.id, Cluster.name, Cluster.ra, Cluster.dec, Cluster.hpx29, Cluster.z, Cluster.richness]
    stmt = select(*cols).where(Cluster.hpx29.between(lo, hi))
    if catalog_id is not None:
        stmt = stmt.where(Cluster.catalog_id == catalog_id)
    rows = conn.execute(stmt.order_by(Cluster.id)).all()
    return pd.DataFrame(rows, columns=[c.key for c in cols])


def cone_search(conn: Connection, ra: float, dec: float, radius_deg: float) -> pd.DataFrame:
    """Clusters within `radius_deg` of (ra, dec), with their separation (deg), nearest first."""
    cols = [Cluster.id, Cluster.name, Cluster.ra, Cluster.dec, Cluster.z, Cluster.richness]
    clause = hpx_ranges_clause(Cluster.hpx29, sky.cone_ranges(ra, dec, radius_deg))
    df = pd.DataFrame(conn.execute(select(*cols).where(and_(clause))).all(), columns=[c.key for c in cols])
    if df.empty:
        return df.assign(separation_deg=pd.Series(dtype=float))
    df["separation_deg"] = sky.angular_separation(ra, dec, df["ra"].to_numpy(), df["dec"].to_numpy())
    return df[df["separation_deg"] <= radius_deg].sort_values("separation_deg").reset_index(drop=True)


def tile_counts(conn: Connection, order: int, catalog_id: int | None = None) -> pd.Series:
    """Number of clusters per tile at `order` (index: pixel), computed in the database."""
    shift = 2 * (sky.MAX_ORDER - order)
    tile = (Cluster.hpx29.op(">>")(shift)).label("pix")
    from sqlalchemy import func

    stmt = select(tile, func.count()).group_by(tile)
    if catalog_id is not None:
        stmt = stmt.where(Cluster.catalog_id == catalog_id)
    rows = conn.execute(stmt).all()
    return pd.Series({int(p): int(n) for p, n in rows}, dtype=np.int64, name="n").sort_index()


def catalog_id_by_name(engine: Engine, name: str | None) -> int | None:
    """The id of the catalogue called `name` (None for None); an InputError naming the known ones."""
    if name is None:
        return None
    with engine.connect() as conn:
        cid = conn.execute(select(Catalog.id).where(Catalog.name == name)).scalar_one_or_none()
        known = conn.execute(select(Catalog.name).order_by(Catalog.id)).scalars().all()
    if cid is None:
        raise InputError(f"no catalogue named {name!r}; known: {', '.join(known) or 'none (run cmcat ingest)'}")
    return cid


#: The cluster columns of `labelled_clusters` (and of the training samples, model.data).
CLUSTER_COLUMNS = [Cluster.id, Cluster.source_id, Cluster.name, Cluster.ra, Cluster.dec, Cluster.z, Cluster.richness]


def unlabelled_clusters(conn: Connection) -> pd.DataFrame:
    """Clusters without a label, with z and richness > 0, by id (columns of CLUSTER_COLUMNS): the
    population whose masses the models are for, unlike the X-ray/SZ-selected labelled clusters."""
    labelled = select(Label.cluster_id)
    stmt = (select(*CLUSTER_COLUMNS)
            .where(Cluster.z.is_not(None), Cluster.richness > 0, Cluster.id.not_in(labelled))
            .order_by(Cluster.id))
    df = pd.DataFrame(conn.execute(stmt).all(), columns=[c.key for c in CLUSTER_COLUMNS])
    for col in ("ra", "dec", "z", "richness"):
        df[col] = pd.to_numeric(df[col]).astype(float)
    return df


def stored_predictions(conn: Connection, model_id: int) -> pd.DataFrame:
    """The `predictions` rows of one model: cluster_id, log10_m500, log10_m500_err, population_log10_m500,
    population_log10_m500_err (dex)."""
    stmt = select(Prediction.cluster_id, Prediction.log10_m500, Prediction.log10_m500_err, Prediction.population_log10_m500,
                  Prediction.population_log10_m500_err).where(Prediction.model_id == model_id)
    cols = ["cluster_id", "log10_m500", "log10_m500_err", "population_log10_m500", "population_log10_m500_err"]
    return pd.DataFrame(conn.execute(stmt).all(), columns=cols).astype({c: float for c in cols[1:]})


def labelled_clusters(conn: Connection, catalog_ids: Sequence[int] | None = None) -> pd.DataFrame:
    """Clusters with a label, z and richness > 0 (of `catalog_ids`), by id: id, source_id, name, ra, dec,
    z, richness, log10_m500, log10_m500_err (the label's 1-sigma error in dex, NaN if none), source."""
    stmt = (
        select(*CLUSTER_COLUMNS, Label.log10_m500, Label.log10_m500_err, Label.source)
        .join(Label, Label.cluster_id == Cluster.id)
        .where(Cluster.z.is_not(None), Cluster.richness.is_not(None), Cluster.richness > 0)
        .order_by(Cluster.id)
    )
    if catalog_ids is not None:
        stmt = stmt.where(Cluster.catalog_id.in_(list(catalog_ids)))
    cols = [c.key for c in CLUSTER_COLUMNS] + ["log10_m500", "log10_m500_err", "source"]
    df = pd.DataFrame(conn.execute(stmt).all(), columns=cols)
    for col in ("ra", "dec", "z", "richness", "log10_m500", "log10_m500_err"):
        df[col] = pd.to_numeric(df[col]).astype(float)  # NULL -> NaN
    return df
