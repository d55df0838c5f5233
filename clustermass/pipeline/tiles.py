"""Tile planning, pure: which HEALPix tiles a run has, what a run computes, its lock keys.

No database and no Dask here: counts come in as a function, so planning is tested on plain data.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import pandas as pd

from clustermass import sky

#: Tiles holding more clusters than this are split into their 4 children (recursively).
DEFAULT_MAX_PER_TILE = 2000
#: How many orders below the requested one a dense tile may be split.
MAX_SPLIT_DEPTH = 6


@dataclass(frozen=True, order=True)
class Pixel:
    """A HEALPix NESTED pixel: number `pixel` at `order` (as hats' HealpixPixel)."""

    order: int
    pixel: int

    def children(self) -> list[Pixel]:
        """The 4 pixels one order deeper that make up this one."""
        return [Pixel(self.order + 1, c) for c in range(4 * self.pixel, 4 * self.pixel + 4)]

    def __str__(self) -> str:
        return f"{self.order}/{self.pixel}"


@dataclass(frozen=True)
class Tile:
    """One unit of work: HEALPix NESTED pixel `npix` at order `norder`, holding `n_clusters`."""

    norder: int
    npix: int
    n_clusters: int

    @property
    def pixel(self) -> Pixel:
        return Pixel(self.norder, self.npix)


@dataclass(frozen=True)
class TileResult:
    """What one tile task reports to the runner: its outcome, cluster counts and its own figures."""

    pixel: Pixel
    status: str  # done | skipped | failed
    n_clusters: int = 0  # clusters in the tile
    n_done: int = 0  # clusters with a result written
    n_failed: int = 0  # clusters without one (the tile itself succeeded)
    error: str | None = None  # failed: the reason; done: a note on the clusters that failed
    reason: str | None = None  # skipped: why
    extra: Mapping[str, Any] = field(default_factory=dict)  # the task's own figures (fetch: cutouts per outcome)


def plan_tiles(
    spec: sky.TileSpec,
    count_at: Callable[[int], pd.Series],
    max_per_tile: int = DEFAULT_MAX_PER_TILE,
    max_depth: int = MAX_SPLIT_DEPTH,
) -> list[Tile]:
    """Tiles of `spec`, dense ones split into children until each holds <= `max_per_tile`.

    `count_at(order)` gives the number of clusters per pixel at `order` (index: pixel). With
    `spec.pixels` None, the tiles holding clusters; else exactly the listed tiles (empty ones
    kept, so they are recorded as done). Splitting stops `max_depth` orders below `spec.order`.
    Sorted largest first (better load balance).
    """
    counts: dict[int, pd.Series] = {}

    def n_of(p: Pixel) -> int:
        if p.order not in counts:
            counts[p.order] = count_at(p.order)
        return int(counts[p.order].get(p.pixel, 0))

    base = count_at(spec.order)
    counts[spec.order] = base
    if spec.pixels is None:
        pixels = [int(p) for p, n in base.items() if n > 0]
    else:
        pixels = sorted(set(int(p) for p in spec.pixels))
    stop = min(sky.MAX_ORDER, spec.order + max_depth)
    out: list[Tile] = []
    stack = [Pixel(spec.order, p) for p in pixels]
    while stack:
        pix = stack.pop()
        n = n_of(pix)
        if n > max_per_tile and pix.order < stop:
            stack.extend(c for c in pix.children() if n_of(c) > 0)
        else:
            out.append(Tile(pix.order, pix.pixel, n))
    return sorted(out, key=lambda t: (-t.n_clusters, t.norder, t.npix))


def run_scope(kind: str, identity: dict[str, Any]) -> str:
    """A short stable hash naming what a run computes (kind + identity): runs with the same
    scope produce the same results, so they share tile locks and done tiles."""
    payload = json.dumps({"kind": kind, "identity": identity}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def tile_lock_key(scope: str, norder: int, npix: int) -> int:
    """Signed 64-bit PostgreSQL advisory-lock key of one tile of a scope."""
    digest = hashlib.sha256(f"{scope}:{norder}:{npix}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def spec_string(spec: sky.TileSpec) -> str:
    """The CLI form of a TileSpec ('3' or '3:12,13')."""
    if spec.pixels is None:
        return str(spec.order)
    return f"{spec.order}:{','.join(str(p) for p in spec.pixels)}"
