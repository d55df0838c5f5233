"""Calibrated 1-sigma errors of predicted masses, fitted on out-of-fold residuals (plain arrays).

The error of a prediction against the *true* mass is modelled as
sigma(lambda, z) = exp(a + b x1 + c x2), x = (log10(lambda/40), log10((1+z)/1.35)) (the
richness baseline's linear inputs, clipped to the range seen in training so that it does not
extrapolate), in dex. A residual against a label, prediction - label, is taken as
N(0, sigma^2 + tau^2), where tau is the label's own error or, for labels without one (MCXC),
LABEL_SCATTER_DEX. (a, b, c) maximise that Gaussian likelihood over the out-of-fold residuals.
Coverage: prediction +- sigma should hold the true mass 68.3% of the time and +- 1.96 sigma
95%; against labels the half-width is sqrt(sigma^2 + tau^2) (times 1 or 1.96).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize, stats

from clustermass.model.baseline import linear_terms

#: Scatter (dex) of a label without its own error: X-ray masses inferred from L500 through the
#: L-M relation (MCXC), 0.6 ln-scatter in L at fixed M (Pratt et al. 2009) over the slope 1.64
#: = 0.16 dex (0.166 dex measured on the mock's MCXC labels against their true masses).
LABEL_SCATTER_DEX = 0.16
#: Nominal coverages and the half-widths, in sigma, of their intervals.
LEVELS = {68: (0.6827, 1.0), 95: (0.95, 1.959964)}
#: Bounds of the log of sigma (dex) and of its slopes in the fit.
_LOG_SIGMA = (np.log(1e-3), np.log(3.0))
_SLOPE = (-10.0, 10.0)


@dataclass(frozen=True)
class Calibration:
    """sigma(lambda, z) = exp(coef . [1, x1, x2]) dex, x clipped to [x_min, x_max] (see module doc)."""

    coef: tuple[float, float, float]
    x_min: tuple[float, float] = (-np.inf, -np.inf)
    x_max: tuple[float, float] = (np.inf, np.inf)

    def sigma(self, richness: np.ndarray, z: np.ndarray) -> np.ndarray:
        """1-sigma error (dex) of a prediction against the true mass, per cluster."""
        x = linear_terms(richness, z)[:, 1:]
        x = np.clip(x, self.x_min, self.x_max)
        return np.exp(self.coef[0] + x @ np.asarray(self.coef[1:]))

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (for the model registry)."""
        return {"coef": list(self.coef), "x_min": list(self.x_min), "x_max": list(self.x_max)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Calibration:
        return cls(tuple(d["coef"]), tuple(d["x_min"]), tuple(d["x_max"]))

    @classmethod
    def constant(cls, sigma: float) -> Calibration:
        """The same error for every cluster (models registered before calibration: their CV scatter)."""
        return cls((float(np.log(max(sigma, 1e-3))), 0.0, 0.0))


def label_errors(err: np.ndarray) -> np.ndarray:
    """tau (dex) of each label: its own 1-sigma error where given (> 0), else LABEL_SCATTER_DEX."""
    err = np.asarray(err, dtype=np.float64)
    return np.where(np.isfinite(err) & (err > 0), err, LABEL_SCATTER_DEX)


def fit_calibration(resid: np.ndarray, tau: np.ndarray, richness: np.ndarray, z: np.ndarray) -> Calibration:
    """Maximum-likelihood sigma(lambda, z) from residuals prediction - label ~ N(0, sigma^2 + tau^2).

    resid, tau in dex; rows with a non-finite residual are ignored. Needs at least 3 rows.
    """
    resid, tau = np.asarray(resid, dtype=np.float64), np.asarray(tau, dtype=np.float64)
    ok = np.isfinite(resid) & np.isfinite(tau)
    if ok.sum() < 3:
        raise ValueError(f"calibration needs at least 3 residuals, got {int(ok.sum())}")
    x = linear_terms(np.asarray(richness)[ok], np.asarray(z)[ok])
    r2, t2 = resid[ok] ** 2, tau[ok] ** 2

    def nll(c: np.ndarray) -> tuple[float, np.ndarray]:
        s2 = np.exp(2 * (x @ c))
        v = s2 + t2
        g = (1.0 / v - r2 / v**2) * s2  # d nll / d (x.c), per row
        return 0.5 * float(np.sum(np.log(v) + r2 / v)), x.T @ g

    start = np.array([np.log(max(np.sqrt(max(np.mean(r2 - t2), 1e-4)), 1e-3)), 0.0, 0.0])
    res = optimize.minimize(nll, start, jac=True, method="L-BFGS-B", bounds=[_LOG_SIGMA, _SLOPE, _SLOPE])
    xs = x[:, 1:]
    return Calibration(tuple(float(v) for v in res.x), tuple(xs.min(0).tolist()), tuple(xs.max(0).tolist()))


def cross_fitted_sigma(
    resid: np.ndarray, tau: np.ndarray, richness: np.ndarray, z: np.ndarray, fold: np.ndarray
) -> np.ndarray:
    """sigma of each row from the calibration fitted on the other folds' rows only (for honest coverage)."""
    out = np.full(len(resid), np.nan)
    for f in np.unique(fold):
        test = fold == f
        cal = fit_calibration(resid[~test], tau[~test], richness[~test], z[~test])
        out[test] = cal.sigma(richness[test], z[test])
    return out


def coverage(resid: np.ndarray, half_width: np.ndarray, level: int) -> tuple[float, float, float]:
    """(fraction of |resid| <= k half_width, binomial 95% interval lo, hi) for level 68 or 95 (k = 1, 1.96).

    NaN rows are ignored; (nan, nan, nan) if none is left.
    """
    resid, half_width = np.asarray(resid, dtype=np.float64), np.asarray(half_width, dtype=np.float64)
    ok = np.isfinite(resid) & np.isfinite(half_width)
    n = int(ok.sum())
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    k = int(np.sum(np.abs(resid[ok]) <= LEVELS[level][1] * half_width[ok]))
    ci = stats.binomtest(k, n).proportion_ci(0.95, method="exact")
    return k / n, float(ci.low), float(ci.high)


def passes(lo: float, hi: float, level: int) -> bool:
    """True where the binomial interval [lo, hi] of an observed coverage holds the nominal one."""
    return bool(lo <= LEVELS[level][0] <= hi)


def thirds(values: np.ndarray) -> list[np.ndarray]:
    """Masks of the lower, middle and upper third of `values` (split at its 1/3 and 2/3 quantiles)."""
    v = np.asarray(values, dtype=np.float64)
    lo, hi = np.nanquantile(v, [1 / 3, 2 / 3])
    return [v <= lo, (v > lo) & (v <= hi), v > hi]
