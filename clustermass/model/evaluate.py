"""Scoring: the richness baseline, CNN and hybrid side by side on the same folds.

Pure functions on arrays/DataFrames; their figures are drawn by clustermass.plots.model.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd

from clustermass.model.calibration import LEVELS, coverage, label_errors, thirds
from clustermass.model.metrics import gain_vs_richness, mass_metrics

METRIC_COLUMNS = ["n", "mae", "bias", "nmad", "rms", "outlier_frac"]
COVERAGE_COLUMNS = ["coverage68", "coverage68_ci", "coverage95", "coverage95_ci"]
GAIN_COLUMNS = ["ratio", "ratio_ci68", "ratio_ci95", "gain", "gain_ci68", "gain_ci95", "gain_nonpositive", "gain_n"]
#: The baseline of the ratio and the gain, and the oracle kind each model's gain is measured against.
BASELINE = "richness"
ORACLE_OF = {"cnn": "oracle-cnn", "hybrid": "oracle-hybrid"}
THIRDS = ("low", "mid", "high")
#: The subsets on which coverage is checked: all, thirds of predicted mass, thirds of redshift.
COVERAGE_SUBSETS = ["all", *(f"mass {t}" for t in THIRDS), *(f"z {t}" for t in THIRDS)]
#: Subset of the rows that score the catalogue's unlabelled clusters against a mock's true masses.
UNLABELLED = "unlabelled"


def _coverage(resid: np.ndarray, half_width: np.ndarray | None) -> dict[str, Any]:
    """coverage68/95 of residuals by calibrated half-widths, with binomial 95% intervals [lo, hi]."""
    out: dict[str, Any] = {}
    for level in LEVELS:
        frac, lo, hi = coverage(resid, half_width, level) if half_width is not None else (np.nan,) * 3
        out[f"coverage{level}"], out[f"coverage{level}_ci"] = frac, [lo, hi]
    return out


def comparison_table(
    labels: pd.DataFrame, predictions: Mapping[str, np.ndarray], fold: np.ndarray, truth: np.ndarray | None = None,
    errors: Mapping[str, np.ndarray] | None = None,
) -> pd.DataFrame:
    """One row per (model, subset, reference) with mass_metrics in dex and error coverage.

    labels: N rows with log10_m500 (the measured label), log10_m500_err (its error, NaN if none),
    source (label catalogue kind) and z; predictions: model name -> (N,) out-of-fold log10 M500
    on the same rows; fold: (N,) test fold; truth: optional (N,) true log10 M500 (mock only; NaN
    where unknown); errors: model name -> (N,) calibrated 1-sigma error against the true mass.
    Subsets: 'all', 'fold i', 'source s', 'mass low/mid/high' (thirds of that model's predicted
    mass), 'z low/mid/high'; reference: 'label' or 'truth'. Coverage: the fraction of references
    within 1 (68) or 1.96 (95) times the error (against labels, sqrt(error^2 + tau^2) with tau
    from calibration.label_errors), with its binomial 95% interval; NaN without errors.
    """
    tau = label_errors(labels["log10_m500_err"].to_numpy(dtype=float))
    refs = {"label": labels["log10_m500"].to_numpy(dtype=float)}
    if truth is not None:
        refs["truth"] = np.asarray(truth, dtype=float)
    subsets: list[tuple[str, np.ndarray]] = [("all", np.ones(len(labels), bool))]
    subsets += [(f"fold {int(f)}", fold == f) for f in np.unique(fold)]
    subsets += [(f"source {s}", (labels["source"] == s).to_numpy()) for s in sorted(labels["source"].unique())]
    subsets += [(f"z {t}", m) for t, m in zip(THIRDS, thirds(labels["z"].to_numpy(dtype=float)))]
    rows = []
    for model, pred in predictions.items():
        pred = np.asarray(pred, dtype=float)
        err = None if errors is None else np.asarray(errors[model], dtype=float)
        by_mass = [(f"mass {t}", m) for t, m in zip(THIRDS, thirds(pred))]
        for ref_name, ref in refs.items():
            half = None if err is None else (np.hypot(err, tau) if ref_name == "label" else err)
            for subset, mask in subsets + by_mass:
                ok = mask & np.isfinite(ref) & np.isfinite(pred)
                rows.append({"model": model, "subset": subset, "reference": ref_name, **mass_metrics(pred[ok], ref[ok]),
                             **_coverage(pred[ok] - ref[ok], None if half is None else half[ok]),
                             **_gain(predictions, model, mask, ref)})
    return _table(rows)


def _table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The rows as the evaluation table; gain columns kept as objects, so that an undefined figure stays
    None (null in JSON), not NaN."""
    table = pd.DataFrame(rows, columns=["model", "subset", "reference", *METRIC_COLUMNS, *COVERAGE_COLUMNS, *GAIN_COLUMNS])
    for col in GAIN_COLUMNS:
        table[col] = pd.Series([r[col] for r in rows], index=table.index, dtype=object)
    return table


def _gain(predictions: Mapping[str, np.ndarray], model: str, mask: np.ndarray, ref: np.ndarray) -> dict[str, Any]:
    """The gain columns of one row: `model` against BASELINE and its oracle on the clusters in `mask`."""
    if BASELINE not in predictions:
        return dict.fromkeys(GAIN_COLUMNS)
    oracle = predictions.get(ORACLE_OF.get(model, ""))
    pick = lambda p: None if p is None else np.asarray(p, dtype=float)[mask]  # noqa: E731
    return gain_vs_richness(pick(predictions[model]), pick(predictions[BASELINE]), ref[mask], pick(oracle))


def unlabelled_table(predictions: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Rows (model, 'unlabelled', 'truth') scoring each model's masses of the unlabelled clusters.

    predictions: model name -> DataFrame of log10_m500, log10_m500_true and optionally log10_m500_err
    (the error it reports, dex; none: no coverage), one row per unlabelled cluster it predicted. These
    are the clusters the masses are for; the labelled ones were selected by their X-ray or SZ signal, so
    a regression fitted on them is biased for the rest (the bias column says by how much; see
    model.population). Gain columns are undefined.
    """
    rows = []
    for model, df in predictions.items():
        pred, true = df["log10_m500"].to_numpy(dtype=float), df["log10_m500_true"].to_numpy(dtype=float)
        err = df["log10_m500_err"].to_numpy(dtype=float) if "log10_m500_err" in df else None
        rows.append({"model": model, "subset": UNLABELLED, "reference": "truth", **mass_metrics(pred, true),
                     **_coverage(pred - true, err), **dict.fromkeys(GAIN_COLUMNS)})
    return _table(rows)
