"""Scoring and plots: the richness baseline, CNN and hybrid side by side on the same folds.

Pure functions on arrays/DataFrames; plots are PNG files written with matplotlib's Agg backend.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from clustermass.images.base import BANDS
from clustermass.model.calibration import LEVELS, coverage, label_errors, thirds
from clustermass.model.metrics import mass_metrics

METRIC_COLUMNS = ["n", "mae", "bias", "nmad", "rms", "outlier_frac"]
COVERAGE_COLUMNS = ["coverage68", "coverage68_ci", "coverage95", "coverage95_ci"]
THIRDS = ("low", "mid", "high")
#: The subsets on which coverage is checked: all, thirds of predicted mass, thirds of redshift.
COVERAGE_SUBSETS = ["all", *(f"mass {t}" for t in THIRDS), *(f"z {t}" for t in THIRDS)]


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
                             **_coverage(pred[ok] - ref[ok], None if half is None else half[ok])})
    return pd.DataFrame(rows, columns=["model", "subset", "reference", *METRIC_COLUMNS, *COVERAGE_COLUMNS])


def _figure(ncols: int = 1, width: float = 5.0):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, 4.5), squeeze=False)
    return plt, fig, axes[0]


def _save(plt, fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_pred_vs_true(true: np.ndarray, predictions: Mapping[str, np.ndarray], path: Path, label: str = "measured") -> Path:
    """Predicted vs measured log10 M500 per model, with the 1:1 line and the MAE in the legend."""
    plt, fig, axes = _figure(len(predictions), 4.2)
    lo, hi = np.nanmin(true) - 0.3, np.nanmax(true) + 0.3
    for ax, (name, pred) in zip(axes, predictions.items()):
        mae = mass_metrics(pred, true)["mae"]
        ax.scatter(true, pred, s=8, alpha=0.6, label=f"MAE {mae:.3f} dex")
        ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="1:1")
        ax.set(xlim=(lo, hi), ylim=(lo, hi), xlabel=f"{label} log10 M500 [Msun]", ylabel="predicted log10 M500", title=name)
        ax.legend(loc="upper left")
    return _save(plt, fig, path)


def plot_residuals(
    true: np.ndarray, predictions: Mapping[str, np.ndarray], z: np.ndarray, richness: np.ndarray, path: Path
) -> Path:
    """Residuals (predicted - measured, dex) against z and log10 lambda, one colour per model."""
    plt, fig, (ax_z, ax_l) = _figure(2)
    for name, pred in predictions.items():
        r = np.asarray(pred) - true
        ax_z.scatter(z, r, s=6, alpha=0.5, label=name)
        ax_l.scatter(np.log10(richness), r, s=6, alpha=0.5, label=name)
    for ax, xl in ((ax_z, "redshift z"), (ax_l, "log10 richness lambda")):
        ax.axhline(0, color="k", lw=1)
        ax.set(xlabel=xl, ylabel="residual [dex]")
        ax.legend()
    return _save(plt, fig, path)


def plot_learning_curves(histories: Mapping[str, list[dict[str, Any]]], path: Path) -> Path:
    """Training curves: one line per series per key (e.g. stage-1 loss/accuracy, fold val MAE)."""
    plt, fig, (ax,) = _figure(1, 6.0)
    for name, hist in histories.items():
        if not hist:
            continue
        for key in dict.fromkeys(k for h in hist for k in h if k != "epoch"):  # a key may start late
            pts = [(h["epoch"], h[key]) for h in hist if key in h]
            ax.plot(*zip(*pts), label=f"{name} {key}", lw=1)
    ax.set(xlabel="epoch", ylabel="value", yscale="log")
    ax.legend(fontsize=5, loc="upper right", ncol=2)
    return _save(plt, fig, path)


def plot_confusion(confusion: np.ndarray, path: Path) -> Path:
    """The stage-1 band confusion matrix (rows true band, columns predicted), row-normalised."""
    plt, fig, (ax,) = _figure(1, 4.8)
    cm = np.asarray(confusion, dtype=float)
    frac = cm / np.clip(cm.sum(1, keepdims=True), 1, None)
    ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(cm)):
        for j in range(len(cm)):
            ax.text(j, i, f"{frac[i, j]:.2f}", ha="center", va="center", fontsize=8)
    ax.set(xticks=range(len(BANDS)), yticks=range(len(BANDS)), xticklabels=list(BANDS), yticklabels=list(BANDS),
           xlabel="predicted band", ylabel="true band", title="band classifier (held out)")
    return _save(plt, fig, path)


def plot_mae_vs_n(curve: pd.DataFrame, path: Path) -> Path:
    """Learning curve: MAE (dex) vs number of labelled clusters, one line per model column."""
    plt, fig, (ax,) = _figure(1, 5.5)
    for col in curve.columns:
        if col != "n_labels":
            ax.plot(curve["n_labels"], curve[col], marker="o", label=col)
    ax.set(xlabel="labelled clusters", ylabel="cross-validated MAE [dex]", xscale="log")
    ax.legend()
    return _save(plt, fig, path)
