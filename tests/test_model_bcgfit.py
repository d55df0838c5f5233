"""The BCG's total magnitude and the gap by profile fits: synthetic fine cutouts whose galaxies are known."""

from __future__ import annotations

import numpy as np
import pandas as pd

from clustermass.cosmology import COSMO
from clustermass.images.base import BANDS, CutoutGrid
from clustermass.model.bcgfit import (FINE_GRID, LEGACY_SEARCH, MAX_RE_KPC, BcgFit, RedSequence, bcg_features,
                                       candidates_table)
from clustermass.profiles import sersic_image

Z = 0.25
RED = {"g_r": 1.4, "r_i": 0.55}  # the red sequence of this test, at every z
RED_SEQUENCE = RedSequence(g_r=(0.0, 0.0, RED["g_r"]), r_i=(0.0, 0.0, RED["r_i"]))
KPC_PX = FINE_GRID.aperture_mpc * 1000 / FINE_GRID.size
DM = float(COSMO.distmod(Z).value)  # the features' BCG magnitude is r less this


def _ugriz(r: float, g_r: float, r_i: float) -> np.ndarray:
    """Fluxes (nanomaggies) of a source of r magnitude r and colours g - r, r - i (u and z: g + 1, i - 0.3)."""
    mags = np.array([r + g_r + 1.0, r + g_r, r, r - r_i, r - r_i - 0.3])
    return 10 ** (-0.4 * (mags - 22.5))


def _cutout(sources: list[tuple[float, float, float, float, float, float]], seed: int = 0) -> np.ndarray:
    """(5, size, size) fine cutout on FINE_GRID: sources (dx_kpc, dy_kpc, r, g-r, r-i, r_e_kpc; r_e 0: a star) on sky noise."""
    size = FINE_GRID.size
    c = (size - 1) / 2
    psf = 1.35 / 2.3548 / FINE_GRID.pixel_scale(Z)
    img = np.random.default_rng(seed).normal(0.0, 0.03, (5, size, size))
    for dx, dy, r, g_r, r_i, r_e in sources:
        shape = sersic_image((size, size), c + dx / KPC_PX, c + dy / KPC_PX, max(r_e / KPC_PX, 1e-3), psf)
        img += _ugriz(r, g_r, r_i)[:, None, None] * shape[None]
    return img


def test_the_profile_fitted_bcg_is_the_brightest_extended_red_galaxy_with_its_total_magnitude():
    """A miscentred cluster: its centre on a red satellite (r 18.5), the BCG (de Vaucouleurs, r 17.2, 12 kpc)
    200 kpc away, a brighter star (r 16) and a brighter blue galaxy (r 16.8) nearby. The BCG's total magnitude
    comes back within 0.05 mag (a 30 kpc aperture misses ~0.3 mag of it), less the distance modulus, and the gap
    is the satellite's."""
    img = _cutout([(0, 0, 18.5, RED["g_r"], RED["r_i"], 4.0), (200, 0, 17.2, RED["g_r"], RED["r_i"], 12.0),
                   (-150, 120, 16.0, 1.4, 0.55, 0.0), (60, -250, 16.8, 0.6, 0.3, 8.0)])
    cands = candidates_table(img[None], np.array([Z]))
    assert len(cands) >= 4 and cands.central.sum() == 1
    m_bcg, gap = bcg_features(cands, np.array([Z]), RED_SEQUENCE, 1)[0]
    assert abs(m_bcg - (17.2 - DM)) < 0.05
    assert abs(gap - 1.3) < 0.1
    r = np.hypot(*np.mgrid[:FINE_GRID.size, :FINE_GRID.size] - (FINE_GRID.size - 1) / 2) * KPC_PX
    bcg_only = _cutout([(0, 0, 17.2, RED["g_r"], RED["r_i"], 12.0)])
    aperture = 22.5 - 2.5 * np.log10(bcg_only[BANDS.index("r")][r < 30].sum())
    assert aperture - 17.2 > 0.2  # what an aperture would have said


def test_a_cluster_without_red_extended_candidates_falls_back_to_its_central_source():
    img = _cutout([(0, 0, 17.5, 0.5, 0.2, 6.0)], seed=1)  # one blue galaxy at the centre
    cands = candidates_table(img[None], np.array([Z]))
    m_bcg, gap = bcg_features(cands, np.array([Z]), RED_SEQUENCE, 1)[0]
    assert abs(m_bcg - (17.5 - DM)) < 0.05 and gap == 1.5
    empty = bcg_features(candidates_table(np.zeros((1, 5, 200, 200)), np.array([Z])), np.array([Z]), RED_SEQUENCE, 1)
    assert np.isnan(empty).all()


def test_a_fitted_half_light_radius_stays_within_the_bound():
    """A source far more extended than a BCG (r_e 150 kpc) is fitted with r_e at MAX_RE_KPC, not extrapolated."""
    cands = candidates_table(_cutout([(0, 0, 15.5, RED["g_r"], RED["r_i"], 150.0)], seed=2)[None], np.array([Z]))
    assert len(cands) and cands.r_e_kpc.max() <= MAX_RE_KPC + 1e-6
    assert cands.r_e_kpc.max() > 0.9 * MAX_RE_KPC


def test_the_red_sequence_is_a_robust_quadratic_of_the_central_candidates_colours():
    rng = np.random.default_rng(3)
    z = rng.uniform(0.1, 0.5, 300)
    g_r, r_i = 0.9 + 2.5 * z - 1.0 * z**2, 0.3 + 0.8 * z + 0.5 * z**2
    g_r_obs = g_r + rng.normal(0, 0.03, z.size)
    g_r_obs[:30] -= 0.8  # blue centrals (miscentred on a blue galaxy): clipped
    cands = pd.DataFrame({"u": 0.0, "r": 18.0, "g": 18.0 + g_r_obs, "i": 18.0 - r_i, "z": 0.0, "r_e_kpc": 10.0,
                          "offset_kpc": 0.0, "central": True, "cluster": np.arange(z.size)})
    red = RedSequence.fit(pd.concat([cands, cands.assign(central=False, g=25.0)]), z)
    fitted_gr, fitted_ri = red.colours(z)
    assert np.max(np.abs(fitted_gr - g_r)) < 0.02 and np.max(np.abs(fitted_ri - r_i)) < 0.01


def test_the_gap_galaxy_is_found_beyond_400_kpc_where_the_narrower_legacy_search_missed_it():
    """The BCG at the centre and the second red galaxy 520 kpc away (the mock's gap galaxy lies up to 0.5 Mpc from
    the BCG): the search to MAX_OFFSET_KPC finds the gap (1.1 mag); the search of models saved before it was widened
    (400 kpc) does not."""
    img = _cutout([(0, 0, 17.0, RED["g_r"], RED["r_i"], 12.0), (520, 0, 18.1, RED["g_r"], RED["r_i"], 6.0)], seed=4)
    gap = bcg_features(candidates_table(img[None], np.array([Z])), np.array([Z]), RED_SEQUENCE, 1)[0, 1]
    assert abs(gap - 1.1) < 0.1
    legacy = candidates_table(img[None], np.array([Z]), **LEGACY_SEARCH)
    assert bcg_features(legacy, np.array([Z]), RED_SEQUENCE, 1)[0, 1] == 1.5


def test_a_stored_bcg_fit_keeps_its_search_and_one_saved_before_it_was_widened_gets_the_old_one():
    fit = BcgFit(FINE_GRID, RED_SEQUENCE, (-22.5, 1.5))
    assert BcgFit.from_dict(fit.as_dict()) == fit
    old = {k: v for k, v in fit.as_dict().items() if k not in LEGACY_SEARCH}
    old["grid"] = CutoutGrid(size=200, aperture_mpc=0.8).as_dict()
    legacy = BcgFit.from_dict(old)
    assert (legacy.max_offset_kpc, legacy.n_candidates) == (LEGACY_SEARCH["max_offset_kpc"], LEGACY_SEARCH["n_candidates"])
