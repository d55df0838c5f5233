"""Masses for the catalogue's clusters, not for the X-ray/SZ-selected ones whose labels trained the model.

A model fitted on labelled clusters regresses log10 M500 on its inputs inside a sample selected by
X-ray flux or SZ signal: at a given richness the selected clusters are the massive ones, so its
estimate (the *score*) is biased high for the rest of the catalogue (on mock universes by +0.3 to
+0.5 dex). The forward direction survives a selection on mass: the score given the true mass,

    s = a + b (mu - 14.5) + c log10((1 + z) / 1.35) + N(0, sigma^2),     mu = log10(M500 / Msun),

fitted on the labelled clusters' out-of-fold scores against their labels (selecting on mass selects
on the regressor, which leaves the fit unbiased; the labels' own errors are taken out of the slope,
errors in variables). The population mass (`predictions.population_log10_m500`, written beside the
score) is the posterior mean of mu given s and z with the halo mass function (Tinker et al. 2008,
`cosmology.halo_mass_function`) as the prior, and its error the posterior standard deviation.

Assumptions: the labels' selection depends on mass and redshift, not on the score's scatter at fixed
mass; the catalogue's own richness selection is carried by the score (see docs/model.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np

from clustermass.cosmology import halo_mass_function

MASS_PIVOT = 14.5
#: Grid of the posterior: log10 M500/Msun and z (prior interpolated linearly in z).
MU_GRID = np.arange(12.5, 16.0001, 0.01)
Z_GRID = np.arange(0.0, 1.2001, 0.025)
#: Least intrinsic scatter (dex) of the forward relation, and least slope for a usable one.
MIN_SIGMA, MIN_SLOPE = 0.02, 0.05


def _zterm(z: np.ndarray) -> np.ndarray:
    return np.log10((1.0 + np.asarray(z, dtype=np.float64)) / 1.35)


@lru_cache(maxsize=1)
def _log_prior() -> np.ndarray:
    """(len(Z_GRID), len(MU_GRID)) log dn/dlog10 M (any constant), rows by z."""
    return np.stack([np.log(halo_mass_function(MU_GRID, max(float(z), 1e-3))) for z in Z_GRID])


@dataclass(frozen=True)
class PopulationCalibration:
    """The forward relation of a model's score on the true mass (dex; see the module docstring)."""

    a: float
    b: float
    c: float
    sigma: float
    n: int  # labelled clusters it was fitted on

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> PopulationCalibration:
        return cls(**{k: d[k] for k in ("a", "b", "c", "sigma", "n")})

    def posterior(self, score: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and standard deviation of log10 M500 (dex) given scores and redshifts (N,)."""
        score, z = np.asarray(score, dtype=np.float64), np.asarray(z, dtype=np.float64)
        zc = np.clip(np.nan_to_num(z, nan=0.0), Z_GRID[0], Z_GRID[-1])
        hi = np.clip(np.searchsorted(Z_GRID, zc), 1, len(Z_GRID) - 1)
        w = ((zc - Z_GRID[hi - 1]) / (Z_GRID[hi] - Z_GRID[hi - 1]))[:, None]
        prior = _log_prior()
        expected = self.a + self.b * (MU_GRID[None, :] - MASS_PIVOT) + self.c * _zterm(zc)[:, None]
        lp = (1.0 - w) * prior[hi - 1] + w * prior[hi] - 0.5 * ((score[:, None] - expected) / self.sigma) ** 2
        p = np.exp(lp - lp.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        mean = p @ MU_GRID
        sd = np.sqrt(np.maximum(p @ MU_GRID**2 - mean**2, 0.0))
        bad = ~(np.isfinite(score) & np.isfinite(z))
        return np.where(bad, np.nan, mean), np.where(bad, np.nan, sd)


def population_masses(
    population: PopulationCalibration | None, score: np.ndarray, z: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """`population.posterior(score, z)`; NaN for every cluster of a model without a population relation."""
    if population is None:
        return np.full(len(score), np.nan), np.full(len(score), np.nan)
    return population.posterior(score, z)


def fit_population(score: np.ndarray, label: np.ndarray, label_err: np.ndarray, z: np.ndarray) -> PopulationCalibration | None:
    """The forward relation from out-of-fold scores, labels and the labels' 1-sigma errors (dex), or None
    where it cannot be fitted (fewer than 10 clusters, or a score that does not rise with mass)."""
    s, y, e, z = (np.asarray(v, dtype=np.float64) for v in (score, label, label_err, z))
    ok = np.isfinite(s) & np.isfinite(y) & np.isfinite(e) & np.isfinite(z)
    s, y, e, z = s[ok], y[ok], e[ok], z[ok]
    if len(s) < 10:
        return None
    x = np.column_stack([np.ones(len(s)), y - MASS_PIVOT, _zterm(z)])
    xtx = x.T @ x
    xtx[1, 1] -= np.sum(e**2)  # the labels' noise variance, out of the mass column (errors in variables)
    try:
        a, b, c = np.linalg.solve(xtx, x.T @ s)
    except np.linalg.LinAlgError:
        return None
    if not b > MIN_SLOPE:
        return None
    resid = s - x @ np.array([a, b, c])
    sigma = np.sqrt(max(np.var(resid) - b**2 * np.mean(e**2), MIN_SIGMA**2))
    return PopulationCalibration(float(a), float(b), float(c), float(sigma), int(len(s)))
