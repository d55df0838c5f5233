"""Calibrated errors on plain data: synthetic heteroscedastic residuals with known sigma(lambda, z)."""

from __future__ import annotations

import numpy as np
import pytest

from clustermass.model.baseline import linear_terms
from clustermass.model.calibration import (
    LABEL_SCATTER_DEX,
    Calibration,
    coverage,
    cross_fitted_sigma,
    fit_calibration,
    label_errors,
    passes,
    thirds,
)

TRUE_COEF = (np.log(0.12), -0.6, 1.5)  # sigma 0.12 dex at lambda = 40, z = 0.35; smaller for rich clusters


def _sample(n: int, seed: int = 0):
    """(residual vs label, residual vs truth, tau, lambda, z) with sigma = exp(TRUE_COEF . x) and labels
    that carry their own error (PSZ2-like, 0.03-0.08 dex) or none (MCXC-like, LABEL_SCATTER_DEX)."""
    rng = np.random.default_rng(seed)
    lam = 20.0 * (1.0 + rng.pareto(1.5, n))
    z = rng.uniform(0.08, 0.55, n)
    sigma = np.exp(linear_terms(lam, z) @ np.asarray(TRUE_COEF))
    own = np.where(rng.random(n) < 0.3, rng.uniform(0.03, 0.08, n), np.nan)
    tau = label_errors(own)
    vs_truth = rng.normal(0.0, sigma)
    vs_label = vs_truth - rng.normal(0.0, tau)  # prediction - label = (prediction - truth) - (label - truth)
    return vs_label, vs_truth, tau, lam, z


def test_label_errors_use_the_catalogue_scatter_where_a_label_has_none():
    np.testing.assert_allclose(label_errors(np.array([0.05, np.nan, 0.0, -1.0])), [0.05] + [LABEL_SCATTER_DEX] * 3)


def test_fit_recovers_a_heteroscedastic_sigma():
    vs_label, _, tau, lam, z = _sample(4000)
    cal = fit_calibration(vs_label, tau, lam, z)
    assert cal.coef == pytest.approx(TRUE_COEF, abs=0.25)
    x = linear_terms(lam, z)
    np.testing.assert_allclose(cal.sigma(lam, z), np.exp(x @ np.asarray(TRUE_COEF)), rtol=0.15)
    assert Calibration.from_dict(cal.as_dict()) == cal


def test_calibrated_errors_cover_68_and_95_percent_overall_and_in_thirds():
    vs_label, vs_truth, tau, lam, z = _sample(3000, seed=1)
    fold = np.arange(len(z)) % 5
    sigma = cross_fitted_sigma(vs_label, tau, lam, z, fold)
    pred = 14.0 + 0.8 * np.log10(lam / 40.0)  # thirds of predicted mass = thirds of richness here
    for mask in [np.ones(len(z), bool), *thirds(pred), *thirds(z)]:
        for level in (68, 95):
            for resid, half in ((vs_truth, sigma), (vs_label, np.hypot(sigma, tau))):
                frac, lo, hi = coverage(resid[mask], half[mask], level)
                assert passes(lo, hi, level), (level, frac, lo, hi)


def test_a_constant_error_misses_in_the_thirds_that_the_check_looks_at():
    vs_label, vs_truth, tau, lam, z = _sample(3000, seed=2)
    const = np.full(len(z), np.std(vs_truth))
    low, _, high = thirds(lam)
    frac_low, *ci_low = coverage(vs_truth[low], const[low], 68)
    frac_high, *ci_high = coverage(vs_truth[high], const[high], 68)
    assert frac_low < 0.68 < frac_high  # too small for poor clusters, too large for rich ones
    assert not passes(*ci_low, 68) and not passes(*ci_high, 68)


def test_cross_fitting_keeps_a_fold_out_of_its_own_calibration():
    vs_label, _, tau, lam, z = _sample(500, seed=3)
    fold = np.arange(len(z)) % 5
    base = cross_fitted_sigma(vs_label, tau, lam, z, fold)
    changed = vs_label.copy()
    changed[fold == 0] *= 5.0
    moved = cross_fitted_sigma(changed, tau, lam, z, fold)
    np.testing.assert_array_equal(moved[fold == 0], base[fold == 0])
    assert np.all(moved[fold != 0] > base[fold != 0])


def test_sigma_does_not_extrapolate_beyond_the_training_range():
    vs_label, _, tau, lam, z = _sample(500, seed=4)
    cal = fit_calibration(vs_label, tau, lam, z)
    edge = cal.sigma(np.array([lam.max(), 50 * lam.max()]), np.array([z.max(), 3.0]))
    assert edge[0] == pytest.approx(edge[1])


def test_coverage_and_its_binomial_interval():
    frac, lo, hi = coverage(np.array([0.1, -0.5, 2.0, np.nan]), np.array([1.0, 1.0, 1.0, 1.0]), 68)
    assert frac == pytest.approx(2 / 3) and 0.09 < lo < 0.1 and 0.99 < hi <= 1.0
    assert coverage(np.array([1.5]), np.array([1.0]), 95)[0] == 1.0  # within 1.96 sigma
    assert passes(0.6, 0.7, 68) and not passes(0.7, 0.8, 68) and passes(0.93, 0.97, 95)
