"""MockSource: the direct (fast) renderer of the mock sky as an ImageSource.

A row that lies within MATCH_ARCSEC of a cluster of the universe (`universe_dir`, written by
`cmcat mock universe`) shows that cluster's true members; any other row (e.g. a real redMaPPer
position, or every row when universe_dir is None) gets a cluster synthesised from its richness
and redshift, deterministic in (seed, position). Field galaxies and stars come from the same
per-cell sky as `cmcat mock frames`, so both paths draw the same galaxies. Noise is drawn per
cutout from (seed, position).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from clustermass.errors import ImageError
from clustermass.images.base import BANDS, Cutout, CutoutGrid
from clustermass.mock import relations as rel
from clustermass.mock.galaxies import Sources, cluster_sources, field_sources
from clustermass.mock.instrument import cutout_noise
from clustermass.mock.render import render_cutout
from clustermass.sky import hpx29

MATCH_ARCSEC = 2.0
#: The halo columns a rendered cluster needs (truth table columns).
HALO_COLUMNS = ["halo_id", "ra", "dec", "z", "log10_m500", "n_red", "n_faint", "bcg_mr", "lambda_true"]


def _unit(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    a, d = np.radians(ra), np.radians(dec)
    return np.stack([np.cos(d) * np.cos(a), np.cos(d) * np.sin(a), np.sin(d)], axis=-1)


def synthetic_halo(seed: int, ra: float, dec: float, z: float, richness: float) -> dict:
    """A cluster consistent with an observed richness and redshift, deterministic in (seed, position)."""
    key = int(hpx29(np.array([ra]), np.array([dec]))[0])
    rng = np.random.default_rng([seed, 3, key])
    lam = float(richness) if np.isfinite(richness) and richness > 0 else 0.0
    n_red = int(max(0, round(lam + rng.normal(0.0, np.sqrt(0.1 * lam + 2.0))))) if lam > 0 else 0
    logm = float(np.log10(rel.m500_of_lambda(max(lam, 5.0)))) + rng.normal(0.0, 0.1)
    from clustermass.mock.population import _schechter_ratio

    return {
        "halo_id": 0, "key": key, "ra": ra, "dec": dec, "z": z, "log10_m500": logm, "n_red": n_red,
        "n_faint": int(rng.poisson(n_red * _schechter_ratio())),
        "bcg_mr": float(rel.bcg_mr_mean(10**logm, z)) + rng.normal(0.0, rel.BCG_MAG_SCATTER),
        "lambda_true": max(lam, 1.0),
    }


def halo_sources(seed: int, halo: dict) -> Sources:
    """The member galaxies of a halo row (universe truth or synthetic)."""
    key = (0, int(halo["halo_id"])) if halo["halo_id"] > 0 else (1, int(halo["key"]))
    return cluster_sources(seed, key, halo["ra"], halo["dec"], halo["z"], halo["log10_m500"],
                           halo["n_red"], halo["n_faint"], halo["bcg_mr"], halo["lambda_true"])


class MockSource:
    """ImageSource that renders cutouts directly from the mock sky (nanomaggies per cutout pixel)."""

    name = "mock"

    def __init__(self, universe_dir: Path | str | None = None, seed: int = 0, noise: bool = True) -> None:
        self.seed = int(seed)
        self.noise = noise
        self.haloes: pd.DataFrame | None = None
        self._tree = None
        if universe_dir is not None:
            from scipy.spatial import cKDTree

            from clustermass.mock.writers import read_truth

            truth = read_truth(Path(universe_dir))
            self.haloes = truth[truth.rm_id > 0][HALO_COLUMNS].reset_index(drop=True)
            self._tree = cKDTree(_unit(self.haloes.ra.to_numpy(), self.haloes.dec.to_numpy()))

    def match(self, ra: float, dec: float) -> dict | None:
        """The universe cluster within MATCH_ARCSEC of (ra, dec), as a dict, or None."""
        if self._tree is None:
            return None
        dist, i = self._tree.query(_unit(np.array(ra), np.array(dec)))
        if dist > 2 * np.sin(np.radians(MATCH_ARCSEC / 3600.0) / 2):
            return None
        return self.haloes.iloc[int(i)].to_dict()

    def sky_sources(self, ra: float, dec: float, radius_deg: float, halo: dict | None) -> Sources:
        """Field sources around a position plus the members of `halo` (if any)."""
        parts = [field_sources(self.seed, ra, dec, radius_deg)]
        if halo is not None:
            parts.append(halo_sources(self.seed, halo))
        return Sources.concat(parts)

    def render(self, ra: float, dec: float, z: float, richness: float, grid: CutoutGrid,
               bands: Sequence[str] = BANDS, cluster_id: int | None = None) -> Cutout:
        """One cutout centred on (ra, dec)."""
        try:
            scale = grid.pixel_scale(z)
        except ValueError as exc:
            raise ImageError(f"cluster {cluster_id} at ({ra:.5f}, {dec:.5f}): {exc}") from exc
        halo = self.match(ra, dec)
        if halo is None and np.isfinite(z) and z > 0:
            halo = synthetic_halo(self.seed, ra, dec, z, richness)
        idx = [BANDS.index(b) for b in bands]
        half_deg = grid.size * scale / 3600.0 / 2 + 10.0 / 3600.0
        src = self.sky_sources(ra, dec, half_deg, halo)
        img = render_cutout(src.ra, src.dec, src.r_e, src.flux, ra, dec, grid.size, scale, idx)
        if self.noise:
            key = int(hpx29(np.array([ra]), np.array([dec]))[0])
            rng = np.random.default_rng([self.seed, 4, key])
            img += rng.standard_normal(img.shape) * cutout_noise(scale)[idx][:, None, None]
        meta = {"source": "mock", "seed": self.seed, "halo_id": None if halo is None or halo["halo_id"] == 0 else int(halo["halo_id"])}
        return Cutout(cluster_id, float(ra), float(dec), scale, img.astype(np.float32), 1.0, meta)

    def cutouts(self, clusters: pd.DataFrame, grid: CutoutGrid, bands: Sequence[str] = BANDS) -> list[Cutout]:
        """Cutouts of rows with id, ra, dec, z, richness (see the module docstring)."""
        out = []
        for row in clusters.itertuples(index=False):
            z = float(getattr(row, "z", np.nan))
            rich = float(getattr(row, "richness", np.nan))
            cid = getattr(row, "id", None)
            out.append(self.render(float(row.ra), float(row.dec), z, rich, grid, bands,
                                   None if cid is None else int(cid)))
        return out
