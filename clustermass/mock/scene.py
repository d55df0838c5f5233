"""The mock sky around a position: field galaxies, stars, line-of-sight groups and the members of nearby clusters.

Both renderers (direct cutouts and frames) ask a Scene for the sources in a region, so they
draw exactly the same objects.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from clustermass.mock import relations as rel
from clustermass.mock.galaxies import Sources, cluster_sources, expand_profiles, field_sources
from clustermass.mock.groups import group_sources

#: Truth-table columns a rendered cluster needs.
HALO_COLUMNS = ["halo_id", "rm_id", "key_kind", "key_id", "ra", "dec", "halo_ra", "halo_dec", "off_x_mpc", "off_y_mpc",
                "z", "log10_m500", "n_red", "n_faint", "bcg_mr", "gap12", "c500", "lambda_true", "host_id"]


def unit_vectors(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    a, d = np.radians(ra), np.radians(dec)
    return np.stack([np.cos(d) * np.cos(a), np.cos(d) * np.sin(a), np.sin(d)], axis=-1)


def chord(deg: float | np.ndarray) -> np.ndarray:
    """Chord length on the unit sphere of an angle in degrees."""
    return 2 * np.sin(np.radians(deg) / 2)


def halo_sources(seed: int, halo: dict) -> Sources:
    """Members of a halo: a universe halo (halo_id > 0; its member key, the one its richness was measured
    with) or a synthetic one (halo_id 0, `key`)."""
    key = (int(halo["key_kind"]), int(halo["key_id"])) if halo["halo_id"] > 0 else (1, int(halo["key"]))
    return cluster_sources(seed, key, halo)


class Scene:
    """Sources of the mock sky for a render seed and (optionally) a universe's haloes (its whole truth
    table: clusters, X-ray/SZ-only haloes and line-of-sight neighbours are all drawn)."""

    def __init__(self, seed: int, haloes: pd.DataFrame | None = None) -> None:
        from scipy.spatial import cKDTree

        self.seed = int(seed)
        self.haloes = (haloes[HALO_COLUMNS].reset_index(drop=True) if haloes is not None
                       else pd.DataFrame(columns=HALO_COLUMNS))
        h = self.haloes
        self._rows = h.to_dict("records")
        self._reach = (rel.r_lambda_mpc(np.maximum(h.lambda_true.to_numpy(float), 1.0))
                       * rel.deg_per_mpc(h.z.to_numpy(float))) if len(h) else np.zeros(0)
        self._xyz = unit_vectors(h.halo_ra.to_numpy(float), h.halo_dec.to_numpy(float))
        self._tree = cKDTree(self._xyz) if len(h) else None
        self._clusters = np.flatnonzero(h.rm_id.to_numpy() > 0) if len(h) else np.zeros(0, int)
        self._cat_tree = (cKDTree(unit_vectors(h.ra.to_numpy(float)[self._clusters], h.dec.to_numpy(float)[self._clusters]))
                          if self._clusters.size else None)

    def match(self, ra: float, dec: float, arcsec: float) -> dict | None:
        """The catalogue cluster (rm_id > 0) whose catalogue centre is within `arcsec` of (ra, dec), or None."""
        if self._cat_tree is None:
            return None
        dist, i = self._cat_tree.query(unit_vectors(np.array(ra), np.array(dec)))
        return dict(self._rows[int(self._clusters[int(i)])]) if dist <= chord(arcsec / 3600.0) else None

    def nearby(self, ra: float, dec: float, radius_deg: float) -> list[dict]:
        """Clusters whose members (out to R_lambda) may fall within radius_deg of (ra, dec)."""
        if self._tree is None:
            return []
        idx = self._tree.query_ball_point(unit_vectors(np.array(ra), np.array(dec)),
                                          chord(radius_deg + float(self._reach.max())))
        if not idx:
            return []
        idx = np.sort(np.asarray(idx, dtype=int))
        sep = np.degrees(2 * np.arcsin(np.linalg.norm(self._xyz[idx] - unit_vectors(np.array(ra), np.array(dec)),
                                                      axis=-1) / 2))
        return [dict(self._rows[i]) for i in idx[sep <= radius_deg + self._reach[idx]]]

    def sources(self, ra: float, dec: float, radius_deg: float, extra: list[dict] = (), expand: bool = True) -> Sources:
        """Field sources and line-of-sight groups' members within a box of half-size radius_deg, members of nearby
        clusters and of `extra`
        (resolved Sersic galaxies as their Gaussian components unless expand is False: one row a galaxy)."""
        parts = [field_sources(self.seed, ra, dec, radius_deg), group_sources(self.seed, ra, dec, radius_deg)]
        parts += [halo_sources(self.seed, h) for h in self.nearby(ra, dec, radius_deg * np.sqrt(2))]
        parts += [halo_sources(self.seed, h) for h in extra]
        src = Sources.concat(parts)
        return expand_profiles(src) if expand else src
