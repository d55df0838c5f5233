"""Spectral energy distributions and their SDSS magnitudes (speclite's sdss2010 ugriz filters).

Three toy SEDs, each a black body modulated by a smooth 4000 A break and a UV drop:
- `red`: a passive early-type population (red sequence, BCGs), break depth tuned so its
  observed g-r and r-i against redshift follow the SPIDERS BCGs (see docs/mock.md);
- `blue`: a star-forming galaxy (weak break, hotter continuum) for field galaxies;
- stars: pure black bodies, 3,500-9,000 K.
Everything here is tabulated once (cached) on a redshift / temperature grid.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

BANDS = "ugriz"
Z_GRID = np.linspace(0.0, 1.2, 49)
T_GRID = np.linspace(2900.0, 9000.0, 62)
_WAVE = np.linspace(900.0, 12000.0, 4000)  # rest-frame Angstrom
_H_C_K = 1.4388e8  # h c / k in Angstrom K

#: (continuum temperature K, 4000 A break depth, UV drop depth) of the galaxy SEDs.
SED_PARAMS = {"red": (4700.0, 0.25, 0.75), "blue": (7000.0, 0.25, 0.4)}


def _planck(wave: np.ndarray, temp: float) -> np.ndarray:
    """Black-body f_lambda shape (arbitrary normalisation)."""
    return wave**-5 / np.expm1(_H_C_K / (wave * temp))


def galaxy_sed(kind: str, wave: np.ndarray = _WAVE) -> np.ndarray:
    """Rest-frame f_lambda shape of a 'red' or 'blue' galaxy."""
    temp, brk, uv = SED_PARAMS[kind]
    step = 1.0 / (1.0 + np.exp((wave - 4000.0) / 60.0))  # 1 blueward of the break
    uvstep = 1.0 / (1.0 + np.exp((wave - 2800.0) / 150.0))
    return _planck(wave, temp) * (1.0 - brk * step) * (1.0 - uv * uvstep)


@lru_cache(maxsize=1)
def _filters():
    import speclite.filters

    return speclite.filters.load_filters(*(f"sdss2010-{b}" for b in BANDS))


def _ab_mags(wave: np.ndarray, flam: np.ndarray) -> np.ndarray:
    """AB magnitudes in ugriz of an f_lambda shape (erg/s/cm2/A scale-free)."""
    import astropy.units as u

    tab = _filters().get_ab_magnitudes(flam * 1e-17 * u.erg / (u.s * u.cm**2 * u.Angstrom), wave * u.Angstrom)
    return np.array([tab[f"sdss2010-{b}"][0] for b in BANDS])


@lru_cache(maxsize=4)
def kcorr_table(kind: str) -> np.ndarray:
    """(len(Z_GRID), 5) K-corrections K_b(z): m_b = M_r + DM(z) + K_b(z) for an SED `kind`.

    M_r is the rest-frame r-band absolute magnitude (K_r(0) = 0).
    """
    flam = galaxy_sed(kind)
    rest_r = _ab_mags(_WAVE, flam)[2]
    out = np.empty((len(Z_GRID), 5))
    for i, z in enumerate(Z_GRID):
        out[i] = _ab_mags(_WAVE * (1 + z), flam) + 2.5 * np.log10(1 + z) - rest_r
    return out


def kcorr(kind: str, z: np.ndarray) -> np.ndarray:
    """(N, 5) K-corrections of SED `kind` at redshifts z (interpolated)."""
    tab = kcorr_table(kind)
    z = np.clip(np.asarray(z, dtype=np.float64), Z_GRID[0], Z_GRID[-1])
    return np.stack([np.interp(z, Z_GRID, tab[:, b]) for b in range(5)], axis=-1)


@lru_cache(maxsize=1)
def star_colour_table() -> np.ndarray:
    """(len(T_GRID), 5) magnitudes minus r of black-body stars."""
    out = np.empty((len(T_GRID), 5))
    for i, t in enumerate(T_GRID):
        m = _ab_mags(_WAVE, _planck(_WAVE, t))
        out[i] = m - m[2]
    return out


def star_colours(temp: np.ndarray) -> np.ndarray:
    """(N, 5) m_b - m_r of stars of temperature temp (K)."""
    tab = star_colour_table()
    return np.stack([np.interp(temp, T_GRID, tab[:, b]) for b in range(5)], axis=-1)
