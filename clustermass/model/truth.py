"""True masses of a mock universe, matched to the clusters in the database (for evaluation only)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Engine, select

from clustermass.db.models import Cluster
from clustermass.errors import InputError
from clustermass.sky import angular_separation

#: Largest distance (arcsec) at which a catalogue row is the mock cluster it was made from.
MATCH_ARCSEC = 2.0
#: The truth table's file name inside a mock universe folder (written by `cmcat mock universe`).
TRUTH_FILE = "truth.parquet"
#: Parquet schema-metadata key of the mock version that wrote a truth table.
TRUTH_META_KEY = b"cmcat_mock_version"


def read_truth(path: Path, mock_version: int | None = None) -> pd.DataFrame:
    """A mock truth table: a universe folder (its TRUTH_FILE), or a CSV or Parquet file.

    With `mock_version`, a Parquet table that records another version (TRUTH_META_KEY; none
    recorded: version 1) is refused with what to regenerate.
    """
    path = Path(path)
    if path.is_dir():
        table = path / TRUTH_FILE
        if not table.is_file():
            raise InputError(f"{table}: no mock truth table; make a universe with `cmcat mock universe --out {path}`")
        path = table
    if not path.is_file():
        raise InputError(f"truth table {path} does not exist; give the mock universe folder or its truth file")
    if path.suffix != ".parquet":
        return pd.read_csv(path)
    import pyarrow.parquet as pq

    found = int((pq.read_schema(path).metadata or {}).get(TRUTH_META_KEY, b"1"))
    if mock_version is not None and found != mock_version:
        raise InputError(
            f"{path}: truth table of mock v{found}, this cmcat is mock v{mock_version}; regenerate its universe "
            f"with `cmcat mock universe --out {path.parent}` (same --n/--seed) and ingest it again")
    return pd.read_parquet(path)


def match_truth(clusters: pd.DataFrame, truth: pd.DataFrame, radius_arcsec: float = MATCH_ARCSEC) -> pd.DataFrame:
    """(cluster_id, log10_m500_true) for clusters (id, ra, dec) within `radius_arcsec` of a truth row
    (ra, dec, log10_m500); nearest match, unmatched clusters left out."""
    from scipy.spatial import cKDTree

    def unit(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
        a, d = np.radians(ra), np.radians(dec)
        return np.stack([np.cos(d) * np.cos(a), np.cos(d) * np.sin(a), np.sin(d)], axis=-1)

    tree = cKDTree(unit(truth["ra"].to_numpy(float), truth["dec"].to_numpy(float)))
    _, idx = tree.query(unit(clusters["ra"].to_numpy(float), clusters["dec"].to_numpy(float)))
    sep = angular_separation(clusters["ra"].to_numpy(float), clusters["dec"].to_numpy(float),
                             truth["ra"].to_numpy(float)[idx], truth["dec"].to_numpy(float)[idx]) * 3600.0
    ok = sep <= radius_arcsec
    return pd.DataFrame({"cluster_id": clusters["id"].to_numpy()[ok],
                         "log10_m500_true": truth["log10_m500"].to_numpy(float)[idx[ok]]})


def truth_of_clusters(engine: Engine, path: Path, mock_version: int | None = None) -> pd.DataFrame:
    """True log10 M500 of the database's clusters from a mock truth table (folder, CSV or Parquet;
    one of another `mock_version` is refused)."""
    truth = read_truth(path, mock_version)
    if "rm_id" in truth:  # a mock truth table: only its catalogue clusters (not X-ray-only haloes or neighbours)
        truth = truth[truth["rm_id"] > 0]
    missing = {"ra", "dec", "log10_m500"} - set(truth.columns)
    if missing:
        raise InputError(f"truth table {path} lacks column(s) {', '.join(sorted(missing))}")
    with engine.connect() as conn:
        clusters = pd.DataFrame(conn.execute(select(Cluster.id, Cluster.ra, Cluster.dec)).all(), columns=["id", "ra", "dec"])
    return match_truth(clusters, truth)
