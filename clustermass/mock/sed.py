"""Spectral energy distributions and their SDSS magnitudes (speclite's sdss2010 ugriz filters).

Three toy SEDs, each a black body modulated by a smooth 4000 A break and a UV drop:
- `red`: a passive early-type population (red sequence, BCGs), break depth tuned so its
  observed g-r and r-i against redshift follow the SPIDERS BCGs (see docs/mock.md);
- `blue`: a star-forming galaxy (weak break, hotter continuum, a redder red end) for field galaxies and
  blue members;
Stars are not SEDs but the SDSS stellar locus (`star_colours`), F/G turn-off stars to late M dwarfs.
The galaxy tables are computed once (cached) on a redshift grid.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

BANDS = "ugriz"
Z_GRID = np.linspace(0.0, 1.2, 49)
_WAVE = np.linspace(900.0, 12000.0, 4000)  # rest-frame Angstrom
_H_C_K = 1.4388e8  # h c / k in Angstrom K

#: (continuum temperature K, 4000 A break depth, UV drop depth, red-end slope) of the galaxy SEDs: beyond
#: RED_END_A (rest) f_lambda is tilted by (lambda / RED_END_A)^slope (the blue SED's older stars; tuned to the
#: real photoObj field's galaxy i-z).
SED_PARAMS = {"red": (4700.0, 0.25, 0.75, 0.0), "blue": (7000.0, 0.25, 0.4, 2.0)}
RED_END_A = 6000.0


def _planck(wave: np.ndarray, temp: float) -> np.ndarray:
    """Black-body f_lambda shape (arbitrary normalisation)."""
    return wave**-5 / np.expm1(_H_C_K / (wave * temp))


def galaxy_sed(kind: str, wave: np.ndarray = _WAVE) -> np.ndarray:
    """Rest-frame f_lambda shape of a 'red' or 'blue' galaxy."""
    temp, brk, uv, slope = SED_PARAMS[kind]
    step = 1.0 / (1.0 + np.exp((wave - 4000.0) / 60.0))  # 1 blueward of the break
    uvstep = 1.0 / (1.0 + np.exp((wave - 2800.0) / 150.0))
    tilt = np.where(wave > RED_END_A, (wave / RED_END_A) ** slope, 1.0)
    return _planck(wave, temp) * (1.0 - brk * step) * (1.0 - uv * uvstep) * tilt


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


#: The main-sequence stellar locus in SDSS colours against r-i: g-r from Juric et al. (2008, ApJ 673,
#: 864, eq. 3), i-z and u-g read off the median colours per spectral type of Covey et al. (2007, AJ
#: 134, 2398) and West et al. (2008, AJ 135, 785) for M dwarfs (approximate, to ~0.05 mag).
LOCUS_RI = np.array([-0.1, 0.0, 0.15, 0.25, 0.42, 0.6, 0.75, 1.03, 1.24, 1.5, 1.86, 2.2])
LOCUS_IZ = np.array([-0.07, -0.02, 0.05, 0.12, 0.24, 0.33, 0.41, 0.57, 0.67, 0.82, 1.02, 1.2])
LOCUS_GR_UG = (np.array([-0.2, 0.2, 0.3, 0.45, 0.6, 0.8, 1.05, 1.35, 1.6]),
               np.array([0.9, 0.95, 1.0, 1.25, 1.55, 1.9, 2.3, 2.55, 2.7]))


def locus_gr(ri: np.ndarray) -> np.ndarray:
    """g-r of main-sequence stars of colour r-i (Juric et al. 2008, eq. 3)."""
    x = np.asarray(ri, dtype=np.float64)
    return 1.39 * (1.0 - np.exp(-4.9 * x**3 - 2.45 * x**2 - 1.68 * x - 0.050))


def star_colours(ri: np.ndarray) -> np.ndarray:
    """(N, 5) m_b - m_r of main-sequence stars on the stellar locus at colour r-i."""
    ri = np.asarray(ri, dtype=np.float64)
    gr = locus_gr(ri)
    ug = np.interp(gr, *LOCUS_GR_UG)
    iz = np.interp(ri, LOCUS_RI, LOCUS_IZ)
    return np.stack([ug + gr, gr, np.zeros_like(ri), -ri, -ri - iz], axis=-1)
