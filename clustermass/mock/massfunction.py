"""Haloes per (redshift, mass) cell: the Tinker et al. (2008) mass function times the comoving volume.

`cosmology.halo_mass_function` (colossus, Diemer 2018, in the project's cosmology); M500c in Msun.
Used for the clusters' haloes (population.py) and the line-of-sight groups (groups.py).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from clustermass.cosmology import COSMO, halo_mass_function

#: Redshift range of every mock halo.
Z_RANGE = (0.02, 0.70)


@lru_cache(maxsize=4)
def density_grid(logm_lo: float, logm_hi: float, n_m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(z edges, log10 M edges, expected haloes per steradian in each cell) over Z_RANGE in 68 z bins and
    [logm_lo, logm_hi] in n_m bins of log10 M500c/Msun."""
    z_edges = np.linspace(*Z_RANGE, 69)
    lm_edges = np.linspace(logm_lo, logm_hi, n_m + 1)
    zc, lmc = 0.5 * (z_edges[1:] + z_edges[:-1]), 0.5 * (lm_edges[1:] + lm_edges[:-1])
    dndlnm = np.stack([halo_mass_function(lmc, z) for z in zc])  # per comoving Mpc^3 per ln M
    dvdz = COSMO.differential_comoving_volume(zc).to_value("Mpc3 / sr")
    cells = dndlnm * dvdz[:, None] * np.diff(z_edges)[:, None] * np.log(10) * np.diff(lm_edges)[None, :]
    return z_edges, lm_edges, cells


@lru_cache(maxsize=4)
def _grid_cdf(logm_lo: float, logm_hi: float, n_m: int) -> np.ndarray:
    cells = density_grid(logm_lo, logm_hi, n_m)[2].ravel()
    cdf = np.cumsum(cells / cells.sum())
    return cdf / cdf[-1]


def sample_grid(rng: np.random.Generator, n: int, logm_lo: float, logm_hi: float, n_m: int) -> tuple[np.ndarray, np.ndarray]:
    """n haloes (z, log10 M500c/Msun) distributed as density_grid(logm_lo, logm_hi, n_m), uniform within a cell
    (the cell drawn as Generator.choice with those probabilities draws it)."""
    return grid_quantile(rng.random(n), rng.random(n), rng.random(n), logm_lo, logm_hi, n_m)


def grid_quantile(u_cell: np.ndarray, u_z: np.ndarray, u_m: np.ndarray, logm_lo: float, logm_hi: float,
                  n_m: int) -> tuple[np.ndarray, np.ndarray]:
    """(z, log10 M500c/Msun) of haloes from uniforms: u_cell picks the cell of density_grid(logm_lo, logm_hi, n_m),
    u_z and u_m the place within it."""
    z_edges, lm_edges, cells = density_grid(logm_lo, logm_hi, n_m)
    k = _grid_cdf(logm_lo, logm_hi, n_m).searchsorted(u_cell, side="right")
    iz, im = np.divmod(k, cells.shape[1])
    return z_edges[iz] + u_z * np.diff(z_edges)[iz], lm_edges[im] + u_m * np.diff(lm_edges)[im]
