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
