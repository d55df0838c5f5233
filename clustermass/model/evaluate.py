"""Scoring: the richness baseline, CNN and hybrid side by side on the same folds.

Pure functions on arrays/DataFrames; their figures are drawn by clustermass.plots.model.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd

from clustermass.model.metrics import mass_metrics

METRIC_COLUMNS = ["n", "mae", "bias", "nmad", "rms", "outlier_frac"]


def comparison_table(
    labels: pd.DataFrame, predictions: Mapping[str, np.ndarray], fold: np.ndarray, truth: np.ndarray | None = None
) -> pd.DataFrame:
    """One row per (model, subset, reference) with mass_metrics in dex.

    labels: N rows with log10_m500 (the measured label) and source (label catalogue kind);
    predictions: model name -> (N,) out-of-fold log10 M500 on the same rows; fold: (N,) test
    fold; truth: optional (N,) true log10 M500 (mock only; NaN where unknown). Subsets: 'all',
    'fold i', 'source s'; reference: 'label' or 'truth'.
    """
    refs = {"label": labels["log10_m500"].to_numpy(dtype=float)}
    if truth is not None:
        refs["truth"] = np.asarray(truth, dtype=float)
    subsets: list[tuple[str, np.ndarray]] = [("all", np.ones(len(labels), bool))]
    subsets += [(f"fold {int(f)}", fold == f) for f in np.unique(fold)]
    subsets += [(f"source {s}", (labels["source"] == s).to_numpy()) for s in sorted(labels["source"].unique())]
    rows = []
    for model, pred in predictions.items():
        pred = np.asarray(pred, dtype=float)
        for ref_name, ref in refs.items():
            for subset, mask in subsets:
                ok = mask & np.isfinite(ref) & np.isfinite(pred)
                rows.append({"model": model, "subset": subset, "reference": ref_name, **mass_metrics(pred[ok], ref[ok])})
    return pd.DataFrame(rows, columns=["model", "subset", "reference", *METRIC_COLUMNS])
