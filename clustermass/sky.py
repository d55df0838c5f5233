"""HEALPix sky indexing: the hpx29 column, tiles, tile specs and cone searches.

Positions are indexed with the NESTED scheme at order 29 (`hpx29`, ~0.4 mas pixels). Because
NESTED indices of a pixel's children are contiguous, a tile of order k holds exactly the rows
with ``hpx29 >> 2*(29-k) == pix``: one B-tree range scan.
"""

from __future__ import annotations

from dataclasses import dataclass

import healpy as hp
import numpy as np

MAX_ORDER = 29


def hpx29(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """NESTED order-29 HEALPix index (int64) of positions in degrees; vectorised."""
    ra = np.asarray(ra, dtype=np.float64)
    dec = np.asarray(dec, dtype=np.float64)
    return hp.ang2pix(1 << MAX_ORDER, ra, dec, nest=True, lonlat=True).astype(np.int64)


def tile_of(hpx: np.ndarray | int, order: int) -> np.ndarray:
    """Tile index at `order` of order-29 indices."""
    _check_order(order)
    return np.asarray(hpx, dtype=np.int64) >> (2 * (MAX_ORDER - order))


def tile_range(order: int, pix: int) -> tuple[int, int]:
    """Inclusive [lo, hi] hpx29 range of tile `pix` at `order`."""
    _check_order(order)
    shift = 2 * (MAX_ORDER - order)
    if not 0 <= pix < 12 * 4**order:
        raise ValueError(f"pixel {pix} does not exist at order {order} (0..{12 * 4**order - 1})")
    return int(pix) << shift, ((int(pix) + 1) << shift) - 1


def _check_order(order: int) -> None:
    if not 0 <= order <= MAX_ORDER:
        raise ValueError(f"HEALPix order must be in 0..{MAX_ORDER}, got {order}")


@dataclass(frozen=True)
class TileSpec:
    """A set of tiles: all tiles of `order` that hold data (pixels None) or the listed ones."""

    order: int
    pixels: tuple[int, ...] | None = None

    def resolve(self, hpx: np.ndarray) -> np.ndarray:
        """The tile pixels to process given the hpx29 indices of the rows that exist."""
        present = np.unique(tile_of(hpx, self.order))
        if self.pixels is None:
            return present
        return np.array(sorted(set(self.pixels)), dtype=np.int64)


def parse_tiles(spec: str) -> TileSpec:
    """Parse '3' (all order-3 tiles holding data) or '3:12,13,40' (those pixels at order 3)."""
    text = spec.strip()
    order_s, sep, pix_s = text.partition(":")
    try:
        order = int(order_s)
        _check_order(order)
        if not sep:
            return TileSpec(order)
        pixels = tuple(int(p) for p in pix_s.split(",") if p.strip())
    except ValueError as exc:
        raise ValueError(
            f"bad tile spec {spec!r}: use ORDER (e.g. '3') or ORDER:PIX,PIX (e.g. '3:12,13,40'); {exc}"
        ) from None
    if not pixels:
        raise ValueError(f"bad tile spec {spec!r}: no pixels after ':'")
    npix = 12 * 4**order
    bad = [p for p in pixels if not 0 <= p < npix]
    if bad:
        raise ValueError(f"bad tile spec {spec!r}: pixels {bad} do not exist at order {order} (0..{npix - 1})")
    return TileSpec(order, pixels)


def ranges_to_order29(pixels: np.ndarray, order: int) -> list[tuple[int, int]]:
    """Merge tiles at `order` into sorted, disjoint inclusive hpx29 ranges."""
    pixels = np.unique(np.asarray(pixels, dtype=np.int64))
    if pixels.size == 0:
        return []
    # Split where consecutive pixels are not adjacent, then map run ends to order 29.
    breaks = np.flatnonzero(np.diff(pixels) != 1) + 1
    starts = np.concatenate([[pixels[0]], pixels[breaks]])
    ends = np.concatenate([pixels[breaks - 1], [pixels[-1]]])
    shift = 2 * (MAX_ORDER - order)
    return [(int(s) << shift, ((int(e) + 1) << shift) - 1) for s, e in zip(starts, ends)]


def cone_ranges(ra: float, dec: float, radius_deg: float, order: int | None = None) -> list[tuple[int, int]]:
    """hpx29 ranges that cover a cone (a superset: follow with `angular_separation` < radius).

    `order` defaults to the coarsest order whose pixels are smaller than the radius, so the
    ranges are few and not much larger than the cone.
    """
    if order is None:
        # Pixel size at order k is ~58.6 deg / 2**k; aim for pixels about the radius or smaller.
        order = int(np.clip(np.floor(np.log2(58.6 / max(radius_deg, 1e-9))) + 1, 0, 20))
    vec = hp.ang2vec(ra, dec, lonlat=True)
    pix = hp.query_disc(1 << order, vec, np.radians(radius_deg), nest=True, inclusive=True)
    return ranges_to_order29(pix, order)


def angular_separation(ra1: np.ndarray, dec1: np.ndarray, ra2: np.ndarray, dec2: np.ndarray) -> np.ndarray:
    """Great-circle separation in degrees (Vincenty formula, stable at all separations)."""
    ra1, dec1, ra2, dec2 = (np.radians(np.asarray(a, dtype=np.float64)) for a in (ra1, dec1, ra2, dec2))
    dra = ra2 - ra1
    s1, c1, s2, c2 = np.sin(dec1), np.cos(dec1), np.sin(dec2), np.cos(dec2)
    num = np.hypot(c2 * np.sin(dra), c1 * s2 - s1 * c2 * np.cos(dra))
    den = s1 * s2 + c1 * c2 * np.cos(dra)
    return np.degrees(np.arctan2(num, den))
