"""Figures of training and evaluation: predicted vs measured, residuals, training curves, band
confusion, learning curve, richness baseline. Inputs are plain arrays; masses in log10(M500/Msun).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from clustermass.plots.figure import save, subplots


def _figure(ncols: int = 1, width: float = 5.0) -> tuple[Any, Any]:
    """A figure of `ncols` panels side by side, `width` inches each; (figure, row of axes)."""
    fig, axes = subplots(1, ncols, figsize=(width * ncols, 4.5))
    return fig, axes[0]


def plot_pred_vs_true(
    true: np.ndarray, predictions: Mapping[str, np.ndarray], mae: Mapping[str, float], path: Path, label: str = "measured"
) -> Path:
    """Predicted vs measured log10 M500 per model, with the 1:1 line and each model's MAE (dex) in the legend."""
    fig, axes = _figure(len(predictions), 4.2)
    lo, hi = np.nanmin(true) - 0.3, np.nanmax(true) + 0.3
    for ax, (name, pred) in zip(axes, predictions.items()):
        ax.scatter(true, pred, s=8, alpha=0.6, label=f"MAE {mae[name]:.3f} dex")
        ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="1:1")
        ax.set(xlim=(lo, hi), ylim=(lo, hi), xlabel=f"{label} log10 M500 [Msun]", ylabel="predicted log10 M500", title=name)
        ax.legend(loc="upper left")
    return save(fig, path, dpi=110)


def plot_residuals(
    true: np.ndarray, predictions: Mapping[str, np.ndarray], z: np.ndarray, richness: np.ndarray, path: Path
) -> Path:
    """Residuals (predicted - measured, dex) against z and log10 lambda, one colour per model."""
    fig, (ax_z, ax_l) = _figure(2)
    for name, pred in predictions.items():
        r = np.asarray(pred) - true
        ax_z.scatter(z, r, s=6, alpha=0.5, label=name)
        ax_l.scatter(np.log10(richness), r, s=6, alpha=0.5, label=name)
    for ax, xl in ((ax_z, "redshift z"), (ax_l, "log10 richness lambda")):
        ax.axhline(0, color="k", lw=1)
        ax.set(xlabel=xl, ylabel="residual [dex]")
        ax.legend()
    return save(fig, path, dpi=110)


def plot_learning_curves(histories: Mapping[str, list[dict[str, Any]]], path: Path) -> Path:
    """Training curves: one line per series per key (e.g. stage-1 loss/accuracy, fold val MAE)."""
    fig, (ax,) = _figure(1, 6.0)
    for name, hist in histories.items():
        if not hist:
            continue
        for key in dict.fromkeys(k for h in hist for k in h if k != "epoch"):  # a key may start late
            pts = [(h["epoch"], h[key]) for h in hist if key in h]
            ax.plot(*zip(*pts), label=f"{name} {key}", lw=1)
    ax.set(xlabel="epoch", ylabel="value", yscale="log")
    ax.legend(fontsize=5, loc="upper right", ncol=2)
    return save(fig, path, dpi=110)


def plot_confusion(confusion: np.ndarray, path: Path, bands: str = "ugriz") -> Path:
    """The stage-1 band confusion matrix (rows true band, columns predicted), row-normalised."""
    fig, (ax,) = _figure(1, 4.8)
    cm = np.asarray(confusion, dtype=float)
    frac = cm / np.clip(cm.sum(1, keepdims=True), 1, None)
    ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(cm)):
        for j in range(len(cm)):
            ax.text(j, i, f"{frac[i, j]:.2f}", ha="center", va="center", fontsize=8)
    ax.set(xticks=range(len(bands)), yticks=range(len(bands)), xticklabels=list(bands), yticklabels=list(bands),
           xlabel="predicted band", ylabel="true band", title="band classifier (held out)")
    return save(fig, path, dpi=110)


def plot_mae_vs_n(curve: pd.DataFrame, path: Path) -> Path:
    """Learning curve: MAE (dex) vs number of labelled clusters, one line per model column."""
    fig, (ax,) = _figure(1, 5.5)
    for col in curve.columns:
        if col != "n_labels":
            ax.plot(curve["n_labels"], curve[col], marker="o", label=col)
    ax.set(xlabel="labelled clusters", ylabel="cross-validated MAE [dex]", xscale="log")
    ax.legend()
    return save(fig, path, dpi=110)


def plot_baseline(path: Path, measured: np.ndarray, predicted: np.ndarray, groups: np.ndarray, title: str) -> Path:
    """PNG of predicted vs measured log10 M500 with the 1:1 line, coloured by group (label source)."""
    fig, ax = subplots(figsize=(5.5, 5.0), dpi=120, squeeze=True)
    lo = float(np.nanmin([measured.min(), predicted.min()])) - 0.1
    hi = float(np.nanmax([measured.max(), predicted.max()])) + 0.1
    ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="1:1")
    for g in np.unique(groups):
        sel = groups == g
        ax.scatter(measured[sel], predicted[sel], s=9, alpha=0.7, label=f"{g} ({int(sel.sum())})")
    ax.set(xlim=(lo, hi), ylim=(lo, hi), xlabel=r"measured $\log_{10} M_{500}/M_\odot$",
           ylabel=r"predicted $\log_{10} M_{500}/M_\odot$ (out of fold)", title=title)
    ax.legend(loc="upper left", fontsize=8)
    return save(fig, path)
