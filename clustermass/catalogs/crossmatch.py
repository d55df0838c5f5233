"""Cross-match clusters with external mass measurements into one label per cluster.

`match` is the vectorised computation on DataFrames (a k-d tree on unit vectors finds every
pair within the radius at once); `load_inputs` and `write_labels` are the database edges;
`crossmatch` ties them together in one transaction.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree
from sqlalchemy import Connection, Engine, Select, delete, func, select

from clustermass import sky
from clustermass.db.bulk import copy_upsert
from clustermass.db.models import Catalog, Cluster, Label, MassMeasurement
from clustermass.errors import InputError

DEFAULT_RADIUS_ARCSEC = 120.0
DEFAULT_DZ = 0.05
DEFAULT_PRIORITY = ("mcxc", "psz2")
#: Beyond these a match is rarely the same cluster (10 arcmin, dz 0.5): they need `force`.
MAX_RADIUS_ARCSEC = 600.0
MAX_DZ = 0.5
LABEL_COLUMNS = ["cluster_id", "measurement_id", "source", "separation_arcsec", "dz", "log10_m500", "log10_m500_err"]


def unit_vectors(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """(N, 3) unit vectors of positions in degrees."""
    ra, dec = np.radians(ra), np.radians(dec)
    cd = np.cos(dec)
    return np.column_stack([cd * np.cos(ra), cd * np.sin(ra), np.sin(dec)])


def match(
    clusters: pd.DataFrame,
    measurements: pd.DataFrame,
    radius_arcsec: float = DEFAULT_RADIUS_ARCSEC,
    dz: float = DEFAULT_DZ,
    priority: Sequence[str] = DEFAULT_PRIORITY,
) -> pd.DataFrame:
    """One label per cluster: among measurements within `radius_arcsec` and |dz| < dz*(1+z_cluster),
    the one from the highest-priority source (sources not listed rank last), nearest first.

    clusters: id, ra, dec, z. measurements: id, ra, dec, z, log10_m500, log10_m500_err, source.
    Rows without z (or measurements without mass) never match. Returns LABEL_COLUMNS.
    """
    c = clusters[np.isfinite(clusters["z"].to_numpy(dtype=float))]
    m = measurements[np.isfinite(measurements["z"].to_numpy(dtype=float))
                     & np.isfinite(measurements["log10_m500"].to_numpy(dtype=float))]
    if c.empty or m.empty:
        return pd.DataFrame(columns=LABEL_COLUMNS)
    chord = 2.0 * np.sin(np.radians(radius_arcsec / 3600.0) / 2.0)
    tree_m = cKDTree(unit_vectors(m["ra"].to_numpy(), m["dec"].to_numpy()))
    tree_c = cKDTree(unit_vectors(c["ra"].to_numpy(), c["dec"].to_numpy()))
    pairs = tree_c.sparse_distance_matrix(tree_m, chord, output_type="ndarray")
    ic, im = pairs["i"], pairs["j"]
    zc, zm = c["z"].to_numpy(dtype=float)[ic], m["z"].to_numpy(dtype=float)[im]
    ok = np.abs(zm - zc) < dz * (1.0 + zc)
    ic, im = ic[ok], im[ok]
    rank = {s: i for i, s in enumerate(priority)}
    source = m["source"].to_numpy()[im]
    cand = pd.DataFrame({
        "cluster_id": c["id"].to_numpy()[ic],
        "measurement_id": m["id"].to_numpy()[im],
        "source": source,
        "rank": np.array([rank.get(s, len(priority)) for s in source], dtype=np.int64),
        "separation_arcsec": 3600.0 * sky.angular_separation(c["ra"].to_numpy()[ic], c["dec"].to_numpy()[ic],
                                                             m["ra"].to_numpy()[im], m["dec"].to_numpy()[im]),
        "dz": zm[ok] - zc[ok],
        "log10_m500": m["log10_m500"].to_numpy(dtype=float)[im],
        "log10_m500_err": m["log10_m500_err"].to_numpy(dtype=float)[im],
    })
    best = cand.sort_values(["cluster_id", "rank", "separation_arcsec"], kind="stable").drop_duplicates("cluster_id")
    return best[LABEL_COLUMNS].sort_values("cluster_id").reset_index(drop=True)


def parse_priority(spec: str) -> tuple[str, ...]:
    """'mcxc,psz2' -> ('mcxc', 'psz2')."""
    out = tuple(s.strip() for s in spec.split(",") if s.strip())
    if not out:
        raise InputError(f"bad --priority {spec!r}: give catalogue kinds separated by commas, e.g. mcxc,psz2")
    return out


def parse_angle_arcsec(spec: str) -> float:
    """'2arcmin', '120arcsec', '0.03deg' or a bare number of arcsec -> arcsec."""
    text = spec.strip().lower()
    for unit, factor in (("arcmin", 60.0), ("arcsec", 1.0), ("deg", 3600.0), ("'", 60.0), ('"', 1.0)):
        if text.endswith(unit):
            text, scale = text[: -len(unit)], factor
            break
    else:
        scale = 1.0
    try:
        value = float(text) * scale
    except ValueError:
        raise InputError(f"bad angle {spec!r}: use e.g. 2arcmin, 120arcsec or 0.03deg") from None
    return positive_finite(value, f"angle {spec!r}")


def parse_dz(spec: str) -> float:
    """'0.05' -> 0.05, a positive finite redshift tolerance."""
    try:
        value = float(spec)
    except ValueError:
        raise InputError(f"bad redshift tolerance {spec!r}: use a number such as 0.05") from None
    return positive_finite(value, f"redshift tolerance {spec!r}")


def positive_finite(value: float, what: str) -> float:
    """`value` if it is a positive finite number, else an InputError naming `what`."""
    if not (math.isfinite(value) and value > 0):
        raise InputError(f"bad {what}: must be positive and finite")
    return value


def check_window(radius_arcsec: float, dz: float, force: bool) -> None:
    """Refuse a non-positive or non-finite radius or dz, and without `force` one beyond the limits."""
    positive_finite(radius_arcsec, f"radius {radius_arcsec:g} arcsec")
    positive_finite(dz, f"redshift tolerance {dz:g}")
    if force:
        return
    if radius_arcsec > MAX_RADIUS_ARCSEC:
        raise InputError(f"radius {radius_arcsec:g} arcsec is beyond {MAX_RADIUS_ARCSEC / 60:g} arcmin, where matches "
                         "are rarely the same cluster; nothing changed. Pass --force to use it anyway")
    if dz > MAX_DZ:
        raise InputError(f"redshift tolerance {dz:g} is beyond {MAX_DZ:g}, where matches are rarely the same "
                         "cluster; nothing changed. Pass --force to use it anyway")


@dataclass
class MatchSummary:
    """Counts of a cross-match run."""

    n_clusters: int
    n_measurements: int
    n_measurements_unusable: int
    n_labels: int
    per_source: dict[str, int] = field(default_factory=dict)
    radius_arcsec: float = DEFAULT_RADIUS_ARCSEC
    dz: float = DEFAULT_DZ
    priority: tuple[str, ...] = DEFAULT_PRIORITY
    catalogs: list[str] = field(default_factory=list)


def catalog_ids(conn: Connection, names: Sequence[str]) -> list[int]:
    """Ids of the named catalogues; InputError naming any that is not loaded."""
    rows = conn.execute(select(Catalog.id, Catalog.name).where(Catalog.name.in_(list(names)))).all()
    missing = set(names) - {n for _, n in rows}
    if missing:
        raise InputError(f"no catalogue named {sorted(missing)}; see `cmcat status` for the loaded ones")
    return [i for i, _ in rows]


def load_inputs(conn: Connection, catalog_ids: Sequence[int] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(clusters of the given catalogues or of all, every mass measurement with its source kind)."""
    cstmt = select(Cluster.id, Cluster.ra, Cluster.dec, Cluster.z)
    if catalog_ids is not None:
        cstmt = cstmt.where(Cluster.catalog_id.in_(list(catalog_ids)))
    err = ((MassMeasurement.log10_m500_err_low + MassMeasurement.log10_m500_err_high) / 2).label("log10_m500_err")
    mstmt = select(MassMeasurement.id, MassMeasurement.ra, MassMeasurement.dec, MassMeasurement.z,
                   MassMeasurement.log10_m500, err, Catalog.kind.label("source")).join(Catalog)
    return _copy_out(conn, cstmt), _copy_out(conn, mstmt)


def _copy_out(conn: Connection, stmt: Select) -> pd.DataFrame:
    """Rows of a SELECT through COPY ... TO STDOUT (millions of rows in seconds, not minutes).

    The statement is ours, its only literals are integer ids, so compiling them inline is safe.
    """
    query = stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
    buf = io.StringIO()
    with conn.connection.driver_connection.cursor() as cur:
        cur.copy_expert(f"COPY ({query}) TO STDOUT WITH (FORMAT csv, HEADER)", buf)
    buf.seek(0)
    df = pd.read_csv(buf, keep_default_na=False, na_values=[""])
    for col in df.columns.drop(["id", "source"], errors="ignore"):
        df[col] = df[col].astype(float)
    return df


def _in_scope(stmt, catalog_ids: Sequence[int] | None):
    """`stmt` on labels limited to the clusters of `catalog_ids` (all if None)."""
    if catalog_ids is None:
        return stmt
    return stmt.where(Label.cluster_id.in_(select(Cluster.id).where(Cluster.catalog_id.in_(list(catalog_ids)))))


def write_labels(conn: Connection, labels: pd.DataFrame, catalog_ids: Sequence[int] | None) -> None:
    """Replace the labels of the clusters of `catalog_ids` (all labels if None) by `labels`."""
    conn.execute(_in_scope(delete(Label), catalog_ids))
    if len(labels):
        copy_upsert(conn, "labels", labels[LABEL_COLUMNS], conflict=["cluster_id"], update=LABEL_COLUMNS[1:])


def crossmatch(
    engine: Engine,
    radius_arcsec: float = DEFAULT_RADIUS_ARCSEC,
    dz: float = DEFAULT_DZ,
    priority: Sequence[str] = DEFAULT_PRIORITY,
    catalogs: Sequence[str] = (),
    force: bool = False,
) -> MatchSummary:
    """Match the clusters (of `catalogs`, default all) and replace their labels in one transaction.

    Without `force`, a window beyond MAX_RADIUS_ARCSEC or MAX_DZ, and replacing existing labels
    by none, are refused (InputError, labels unchanged).
    """
    check_window(radius_arcsec, dz, force)
    with engine.begin() as conn:
        ids = catalog_ids(conn, catalogs) if catalogs else None
        clusters, meas = load_inputs(conn, ids)
        labels = match(clusters, meas, radius_arcsec, dz, priority)
        if labels.empty and not force:
            n_old = conn.execute(_in_scope(select(func.count()).select_from(Label), ids)).scalar_one()
            if n_old:
                raise InputError(
                    f"no cluster matched within {radius_arcsec:g} arcsec and |dz| < {dz:g}(1+z): this would replace "
                    f"the {n_old} existing labels with none; nothing changed. Check --radius, --dz and --catalog, "
                    "or pass --force to clear the labels"
                )
        write_labels(conn, labels, ids)
    usable = np.isfinite(meas["z"]) & np.isfinite(meas["log10_m500"])
    per_source = {str(k): int(v) for k, v in labels["source"].value_counts().items()}
    return MatchSummary(len(clusters), len(meas), int((~usable).sum()), len(labels), per_source,
                        radius_arcsec, dz, tuple(priority), list(catalogs))
