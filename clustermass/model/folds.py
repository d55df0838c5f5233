"""k-fold assignment shared by the richness baseline and every learned model.

Derived only from the cluster id and the seed (a stateless hash), so every model and the
baseline are scored on exactly the same clusters, whatever order the rows come in.
"""

from __future__ import annotations

import numpy as np

_M = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = (x + np.uint64(0x9E3779B97F4A7C15)) & _M
        x = ((x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _M
        x = ((x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _M
        return x ^ (x >> np.uint64(31))


def fold_of(cluster_ids: np.ndarray, k: int = 5, seed: int = 0) -> np.ndarray:
    """Fold index in [0, k) of each cluster id (int64 array)."""
    ids = np.asarray(cluster_ids, dtype=np.int64).astype(np.uint64)
    with np.errstate(over="ignore"):
        mixed = _splitmix64(ids ^ _splitmix64(np.full(ids.shape, seed, dtype=np.uint64)))
    return (mixed % np.uint64(k)).astype(np.int64)
