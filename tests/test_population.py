"""model/population.py: masses for the catalogue population from a model fitted on mass-selected labels."""

from __future__ import annotations

import numpy as np
import pytest

from clustermass.cosmology import halo_mass_function
from clustermass.model.population import MU_GRID, PopulationCalibration, fit_population, population_masses

A, B, C, SIGMA = 14.6, 0.55, 0.4, 0.12


def _universe(rng: np.random.Generator, n: int = 2_000_000, threshold: float = 14.2):
    """A catalogue: haloes drawn from the mass function (z = 0.2-0.4, all masses of MU_GRID), scores from
    the forward relation, and those scoring above `threshold` kept (as a richness threshold would)."""
    z = rng.uniform(0.2, 0.4, n)
    w = halo_mass_function(MU_GRID, 0.3)
    mu = rng.choice(MU_GRID, n, p=w / w.sum()) + rng.uniform(-0.005, 0.005, n)
    score = A + B * (mu - 14.5) + C * np.log10((1 + z) / 1.35) + rng.normal(0, SIGMA, n)
    keep = score > threshold
    return mu[keep], z[keep], score[keep]


def test_fit_takes_the_label_noise_out_of_the_slope():
    rng = np.random.default_rng(0)
    mu, z, score = _universe(rng, 20000, threshold=-np.inf)  # every halo, no truncation of the score
    err = np.full(len(mu), 0.15)
    label = mu + rng.normal(0, err)
    fit = fit_population(score, label, err, z)
    assert fit.b == pytest.approx(B, abs=0.02) and fit.sigma == pytest.approx(SIGMA, abs=0.02)
    naive = np.polyfit(label - 14.5, score, 1)[0]
    assert naive < B - 0.05  # what ignoring the label errors would give


def test_posterior_is_unbiased_for_the_population_a_mass_selected_regression_is_not():
    """Labels only for the massive clusters (a soft cut at 10^14.3): the regression of the label on the
    score, fitted on them, is biased high for the rest; the posterior from the forward relation is not."""
    rng = np.random.default_rng(1)
    mu, z, score = _universe(rng)
    selected = rng.random(len(mu)) < 1 / (1 + np.exp(-(mu - 14.3) / 0.05))
    err = np.full(len(mu), 0.1)
    label = mu + rng.normal(0, err)
    coef = np.polyfit(score[selected], label[selected], 1)
    rest = ~selected
    regressed = np.polyval(coef, score[rest]) - mu[rest]
    assert np.median(regressed) > 0.15
    fit = fit_population(score[selected], label[selected], err[selected], z[selected])
    mean, sd = fit.posterior(score[rest], z[rest])
    resid = mean - mu[rest]
    assert abs(np.median(resid)) < 0.03
    assert np.mean(np.abs(resid) <= sd) == pytest.approx(0.683, abs=0.03)
    assert np.mean(np.abs(resid) <= 1.96 * sd) == pytest.approx(0.95, abs=0.02)


def test_unusable_fits_and_inputs():
    rng = np.random.default_rng(2)
    assert fit_population(rng.normal(size=5), rng.normal(size=5), np.full(5, 0.1), np.full(5, 0.3)) is None
    flat = fit_population(rng.normal(14, 0.1, 100), rng.normal(14.5, 0.3, 100), np.full(100, 0.05), np.full(100, 0.3))
    assert flat is None  # the score does not rise with mass
    cal = PopulationCalibration(A, B, C, SIGMA, 100)
    assert PopulationCalibration.from_dict(cal.as_dict()) == cal
    mean, sd = cal.posterior(np.array([14.5, np.nan, 14.5]), np.array([0.3, 0.3, np.nan]))
    assert np.isfinite(mean[0]) and np.isnan(mean[1:]).all() and np.isnan(sd[1:]).all()
    none = population_masses(None, np.array([14.5, 14.6]), np.array([0.3, 0.3]))
    assert all(np.isnan(v).all() and v.shape == (2,) for v in none)  # a model without a relation
