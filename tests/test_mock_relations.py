"""The mock's richness-mass constants against the published relations, converted to M500c by colossus."""

from __future__ import annotations

import numpy as np
import pytest

from clustermass.cosmology import _colossus
from clustermass.mock import relations as rel

#: Planck's h, in which Murata+2018 and Simet+2017 quote masses (h^-1 Msun), and their pivot redshift here.
H_PLANCK, Z_PIVOT = 0.6774, 0.25


def _m200m_h(m500c: np.ndarray) -> np.ndarray:
    """M200m in h^-1 Msun (h = H_PLANCK) of M500c in Msun (h = 0.7), Diemer & Joyce (2019) concentrations."""
    from colossus.halo import concentration, mass_defs

    _colossus()
    mh = np.asarray(m500c) * 0.7
    c = concentration.concentration(mh, "500c", Z_PIVOT, model="diemer19")
    return np.array([mass_defs.changeMassDefinition(m, cc, Z_PIVOT, "500c", "200m")[0] for m, cc in zip(mh, c)]) / 0.7 * H_PLANCK


def test_richness_relation_is_richer_and_tighter_than_murata_2018():
    """Murata+2018 (A 3.207, B 0.993, sigma0 0.456, q -0.169 at 3e14 h^-1 Msun M200m) is 3.04, 1.00, 0.485, -0.171 at
    2e14 Msun M500c (as relations.py says); the X-ray and SZ detected clusters need more members at fixed mass and
    less scatter at 1e14-1e15 Msun, by at most 0.45 in ln lambda (docs/mock.md)."""
    m500 = np.logspace(13.5, 15.3, 10)
    x = np.log(_m200m_h(m500) / 3e14)
    murata_mean, murata_sigma = 3.207 + 0.993 * x, 0.456 - 0.169 * x
    y = np.log(m500 / rel.LAMBDA_PIVOT_M)
    assert np.allclose(murata_mean, 3.0375 + 1.0041 * y, atol=0.04)
    assert np.allclose(murata_sigma, 0.4849 - 0.1709 * y, atol=0.01)
    heavy = (m500 >= 1e14) & (m500 <= 1e15)
    gain = np.log(rel.lambda_mean(m500)) - murata_mean
    assert np.all((gain[heavy] > 0.1) & (gain[heavy] < 0.45)), gain
    assert np.all(rel.lambda_total_scatter(m500)[heavy] < murata_sigma[heavy]), rel.lambda_total_scatter(m500)


def test_intrinsic_scatter_leaves_room_for_the_measured_part():
    m500 = np.logspace(13.0, 15.5, 30)
    total = rel.lambda_total_scatter(m500)
    intrinsic = rel.lambda_ln_scatter(m500)
    above_floor = intrinsic > rel.LAMBDA_MIN_INTRINSIC
    assert above_floor.any() and (~above_floor).any()
    assert np.allclose(intrinsic[above_floor] ** 2 + rel.LAMBDA_MEASUREMENT_SCATTER**2, total[above_floor] ** 2)
    assert np.all(np.diff(intrinsic) <= 0)  # poorer haloes scatter more (q < 0, as Murata's)


@pytest.mark.parametrize("lam", [20.0, 40.0, 80.0])
def test_mean_mass_at_fixed_richness_is_simet_2017_in_m500c(lam):
    target_m200m_h = 10**14.344 * (lam / 40.0) ** 1.33
    grid = np.logspace(13.5, 15.3, 400)
    m500 = np.interp(np.log(target_m200m_h), np.log(_m200m_h(grid)), grid)
    assert np.log10(rel.m500_of_lambda(lam)) == pytest.approx(np.log10(m500), abs=0.02)


def test_depth_boost_inflates_lambda_only_beyond_the_volume_limit():
    from clustermass.mock.population import DEPTH_BOOST, Z_VOLUME_LIMIT, depth_boost

    z = np.array([0.1, Z_VOLUME_LIMIT, 0.4, 0.55])
    assert np.allclose(depth_boost(z), [1.0, 1.0, np.exp(DEPTH_BOOST * 0.1), np.exp(DEPTH_BOOST * 0.25)])
