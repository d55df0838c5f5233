"""PNG figures of explanations (matplotlib Agg): one cluster's maps, and enrichment vs mass and z.

Kept out of the compute modules so that explaining needs no plotting. Inputs are plain arrays
(the colour composite comes from clustermass.model.preprocess.colour_composite).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from clustermass.plots.figure import save, subplots


def _fmt_mass(value: float | None) -> str:
    return "-" if value is None or not np.isfinite(value) else f"{value:.2f}"


def plot_explanation(
    rgb: np.ndarray,
    joint: np.ndarray,
    ig: np.ndarray,
    cam: np.ndarray,
    out: Path,
    title: str,
    predicted: float,
    labelled: float | None = None,
    true: float | None = None,
    members_xy: np.ndarray | None = None,
    bands: str = "ugriz",
) -> Path:
    """One cluster's figure: composite, joint map over it, summed |IG| and CAM, and per-band joint maps.

    rgb: (H, W, 3) colour composite; joint, ig, cam: (5, H, W) in the order of `bands`; members_xy: (2, N)
    pixel positions (BCG first) drawn as circles when given. Masses are log10(M500/Msun).
    """
    joint_sum = joint.sum(0)
    fig, axes = subplots(2, 5, figsize=(16, 7.5))
    panels = [
        (rgb, "g, r, i composite"),
        (rgb, "joint map over composite"),
        (np.abs(ig).sum(0), "|integrated gradients|, all bands"),
        (cam.mean(0), "Grad-CAM, mean of bands"),
        (joint_sum, "joint map, all bands"),
    ]
    for ax, (data, name) in zip(axes[0], panels):
        ax.imshow(data, origin="lower", cmap=None if data.ndim == 3 else "magma", interpolation="nearest")
        ax.set_title(name, fontsize=9)
    peak = joint_sum.max() if joint_sum.max() > 0 else 1.0
    axes[0, 1].imshow(np.ma.masked_less(joint_sum / peak, 0.2), origin="lower", cmap="cool", alpha=0.6,
                      vmin=0, vmax=1, interpolation="nearest")
    vmax = joint.max() if joint.max() > 0 else 1.0
    for b, ax in enumerate(axes[1]):
        ax.imshow(joint[b], origin="lower", cmap="magma", vmin=0, vmax=vmax, interpolation="nearest")
        ax.set_title(f"joint map, {bands[b]} band", fontsize=9)
    if members_xy is not None and members_xy.shape[1]:
        for ax in (axes[0, 0], axes[0, 4]):
            ax.scatter(members_xy[0], members_xy[1], s=30, facecolors="none", edgecolors="lime", linewidths=0.7)
            ax.scatter(members_xy[0, :1], members_xy[1, :1], s=90, facecolors="none", edgecolors="red", linewidths=1.2)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(
        f"{title}\nlog10 M500: predicted {_fmt_mass(predicted)}, labelled {_fmt_mass(labelled)}"
        + (f", true {_fmt_mass(true)}" if true is not None and np.isfinite(true) else ""),
        fontsize=11,
    )
    return save(fig, out, dpi=90)


def plot_enrichment(results: pd.DataFrame, out: Path, threshold: float = 3.0) -> Path:
    """Member and BCG enrichment vs true (else predicted) log10 M500 and vs redshift, one point per cluster."""
    mass = results["log10_m500_true"].astype(float)
    mass_name = "true"
    if not mass.notna().any():
        mass, mass_name = results["log10_m500_pred"].astype(float), "predicted"
    fig, axes = subplots(1, 2, figsize=(11, 4.2), sharey=True)
    axes = axes[0]
    for ax, x, xlabel in ((axes[0], mass, f"{mass_name} log10 M500 [Msun]"), (axes[1], results["z"].astype(float), "redshift")):
        ax.scatter(x, results["enrichment_members"], s=12, label="member pixels")
        ax.scatter(x, results["enrichment_bcg"], s=12, marker="x", label="BCG pixels")
        ax.axhline(1.0, color="grey", lw=0.8, ls=":", label="uniform map")
        ax.axhline(threshold, color="k", lw=0.8, ls="--", label=f"target {threshold:g}")
        ax.set_xlabel(xlabel)
        ax.set_yscale("log")
    axes[0].set_ylabel("enrichment of joint attribution")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"attribution enrichment on cluster members ({int(results['enrichment_members'].notna().sum())} clusters)")
    return save(fig, out, dpi=90)
