"""Scores of mass estimates, in dex, shared by the baseline, training and evaluation."""

from __future__ import annotations

import numpy as np

OUTLIER_DEX = 0.3


def mass_metrics(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """MAE, median bias, NMAD scatter, RMS and outlier fraction (|error| > 0.3 dex), all in dex.

    NMAD = 1.4826 * median(|r - median(r)|) of the residuals r = pred - true: a robust sigma.
    """
    pred = np.asarray(pred, dtype=np.float64)
    true = np.asarray(true, dtype=np.float64)
    r = pred - true
    if r.size == 0:
        return {"n": 0, "mae": float("nan"), "bias": float("nan"), "nmad": float("nan"),
                "rms": float("nan"), "outlier_frac": float("nan")}
    med = float(np.median(r))
    return {
        "n": int(r.size),
        "mae": float(np.mean(np.abs(r))),
        "bias": med,
        "nmad": float(1.4826 * np.median(np.abs(r - med))),
        "rms": float(np.sqrt(np.mean(r**2))),
        "outlier_frac": float(np.mean(np.abs(r) > OUTLIER_DEX)),
    }


#: Bootstrap resamples of the paired intervals, and the interval levels (central shares).
N_BOOT = 2000
CI_LEVELS = {68: 0.6827, 95: 0.95}


def _interval(values: np.ndarray, level: float) -> list[float]:
    """Central percentile interval [lo, hi] of `values` holding the share `level`."""
    return [float(v) for v in np.quantile(values, [(1 - level) / 2, (1 + level) / 2])]


def gain_vs_richness(
    pred: np.ndarray, richness: np.ndarray, ref: np.ndarray, oracle: np.ndarray | None = None,
    n_boot: int = N_BOOT, seed: int = 0,
) -> dict[str, object]:
    """MAE ratio to richness and fraction of the oracle gain, with paired bootstrap intervals over clusters.

    All arrays: (N,) log10 M500 on the same clusters (dex); rows with any non-finite value are
    dropped. ratio = MAE(pred) / MAE(richness); G = (MAE_richness - MAE_pred) / (MAE_richness -
    MAE_oracle): 0 for richness, 1 for the oracle. Each resample draws N clusters with replacement
    and scores all three estimators on the same draw. G is undefined (None) where its denominator
    is <= 0 (the oracle no better than richness): its point value then, and those resamples, which
    are counted ('gain_nonpositive'); an interval is taken over the other resamples, and is None
    where they are more than half of the interval's excluded share (they could fill a tail).
    Without an oracle every gain field is None. Intervals are [lo, hi] for 68% and 95%.
    """
    cols = [pred, richness, ref] + ([] if oracle is None else [oracle])
    arrays = [np.asarray(a, dtype=np.float64) for a in cols]
    ok = np.logical_and.reduce([np.isfinite(a) for a in arrays])
    err = np.abs(np.stack([a[ok] for a in arrays[:2] + arrays[3:]]) - arrays[2][ok])  # (2 or 3, n)
    out: dict[str, object] = {"ratio": None, "ratio_ci68": None, "ratio_ci95": None, "gain": None,
                              "gain_ci68": None, "gain_ci95": None, "gain_nonpositive": None, "gain_n": int(ok.sum())}
    n = err.shape[1]
    if n == 0:
        return out
    mae = err.mean(axis=1)
    draws = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    boot = np.stack([e[draws].mean(axis=1) for e in err])  # (2 or 3, n_boot)
    if mae[1] > 0:
        out["ratio"] = float(mae[0] / mae[1])
        ratios = boot[0] / np.where(boot[1] > 0, boot[1], np.nan)
        ratios = ratios[np.isfinite(ratios)]
        for key, level in CI_LEVELS.items():
            out[f"ratio_ci{key}"] = _interval(ratios, level) if ratios.size else None
    if oracle is None:
        out["gain_n"] = None
        return out
    den, boot_den = mae[1] - mae[2], boot[1] - boot[2]
    good = boot_den > 0
    out["gain_nonpositive"] = int((~good).sum())
    if den > 0:
        out["gain"] = float((mae[1] - mae[0]) / den)
    gains = (boot[1][good] - boot[0][good]) / boot_den[good]
    for key, level in CI_LEVELS.items():
        if (~good).sum() <= n_boot * (1 - level) / 2 and gains.size:
            out[f"gain_ci{key}"] = _interval(gains, level)
    return out
