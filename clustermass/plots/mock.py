"""PNG figures comparing a mock universe with the real data (side by side), from the numbers of
clustermass.mock.calibrate.comparison."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from clustermass.plots.figure import save, subplots


def plot_all(data: dict[str, Any], out: Path) -> dict[str, Path]:
    """Write the comparison PNGs of `calibrate.comparison(...)` under `out`; name -> path."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {}

    mock, real = data["redmapper"]
    ks = data["ks"]
    fig, ax = _row(2, (10, 4))
    bins = np.logspace(np.log10(20), np.log10(300), 30)
    ax[0].hist(real["lambda"], bins, histtype="step", density=True, label="real v5.10")
    ax[0].hist(mock["lambda"], bins, histtype="step", density=True, label="mock")
    ax[0].set(xscale="log", yscale="log", xlabel="lambda", title=f"richness (KS {ks['lambda']:.3f})")
    zb = np.arange(0.05, 0.6, 0.0125)
    ax[1].hist(real.redshift, zb, histtype="step", density=True, label="real v5.10")
    ax[1].hist(mock.redshift, zb, histtype="step", density=True, label="mock")
    ax[1].set(xlabel="z_lambda", title=f"redshift (KS {ks['z']:.3f})")
    ax[0].legend()
    paths["redmapper"] = save(fig, out / "mock_vs_real_redmapper.png", dpi=90)

    s = data["baseline"]
    fig, ax = _row(2, (10, 4))
    for src in np.unique(s["source"]):
        m = s["source"] == src
        ax[0].scatter(s["measured"][m], s["predicted"][m], s=6, label=f"{src} ({m.sum()})")
    lim = [13.5, 15.5]
    ax[0].plot(lim, lim, "k-", lw=0.8)
    ax[0].set(xlabel="label log10 M500", ylabel="baseline (5-fold CV)",
              title=f"mock richness baseline: MAE {s['mae']:.3f} dex (real 0.156)")
    ax[0].legend()
    ax[1].hist(s["label_z"], np.arange(0, 0.65, 0.025), histtype="step", label="mock labels")
    ax[1].set(xlabel="z", title=f"labelled: {s['labelled']} of {s['clusters']} ({100 * s['fraction']:.2f}%)")
    paths["labels"] = save(fig, out / "mock_labels_baseline.png", dpi=90)

    bcg_m, bcg_r = data["bcg"]
    fig, ax = _row(3, (14, 4))
    for i, (a, b) in enumerate((("g", "r"), ("r", "i"), ("r", None))):
        yr = bcg_r[a] - bcg_r[b] if b else bcg_r[a]
        ym = bcg_m[a] - bcg_m[b] if b else bcg_m[a]
        ax[i].scatter(bcg_r.z, yr, s=5, label="SPIDERS BCGs")
        ax[i].scatter(bcg_m.z, ym, s=3, alpha=0.4, label="mock BCGs (X-ray detected)")
        ax[i].set(xlabel="z", ylabel=f"{a}-{b}" if b else a, xlim=(0, 0.6))
    ax[0].legend()
    paths["bcg"] = save(fig, out / "mock_vs_spiders_bcg.png", dpi=90)

    f = data["field"]
    fig, ax = _row(3, (13, 4))
    kinds = ("galaxies", "stars")
    x = np.arange(2)
    for j, (key, title) in enumerate((("per_deg2", "counts / deg^2 (18<r<21.5)"), ("gr", "median g-r"), ("ri", "median r-i"))):
        ax[j].bar(x - 0.2, [f[k][f"real_{key}"] for k in kinds], 0.4, label="real photoObj")
        ax[j].bar(x + 0.2, [f[k][f"mock_{key}"] for k in kinds], 0.4, label="mock")
        ax[j].set(xticks=x, xticklabels=kinds, title=title)
    ax[0].legend()
    paths["field"] = save(fig, out / "mock_vs_photoobj_field.png", dpi=90)

    proj, eff = data["projection"], data["assembly"]
    fig, ax = _row(3, (14, 4))
    ax[0].bar(range(len(proj["share"])), list(proj["share"].values()), tick_label=list(proj["share"]))
    ax[0].axhline(0.16, color="k", ls="--", lw=0.8, label="~16% at low richness (Myles+2021)")
    ax[0].set(xlabel="lambda", ylabel="projected share of lambda", title="projection")
    ax[0].legend()
    ax[1].bar([0, 1], [1 - eff["miscentred_fraction"], eff["miscentred_fraction"]], tick_label=["centred", "miscentred"])
    ax[1].axhline(0.25, color="k", ls="--", lw=0.8, label="Zhang+2019: 0.25 +- 0.08")
    ax[1].set(title=f"miscentring (offset {eff['miscentred_offset_rlambda']:.2f} R_lambda, lambda x{eff['miscentred_lambda_ratio']:.2f})")
    ax[1].legend()
    ax[2].bar([0, 1], [eff["sigma_logm_lambda"], eff["sigma_logm_lambda_gap"]], tick_label=["lambda, z", "+ gap m12"])
    ax[2].set(ylabel="sigma(log10 M | ...) [dex]",
              title=f"magnitude gap: {100 * eff['gap_scatter_reduction']:.0f}% lower (Hearin+2013: 15-20%)")
    paths["effects"] = save(fig, out / "mock_effects.png", dpi=90)
    return paths


def plot_gallery(cutouts: list, out: Path) -> Path:
    """g, r, i false-colour images of a few cutouts (asinh stretch)."""
    n = len(cutouts)
    fig, ax = subplots(1, n, figsize=(3 * n, 3.2))
    for a, c in zip(ax[0], cutouts):
        rgb = np.stack([c.data[3], c.data[2], c.data[1]], axis=-1)
        rgb = np.arcsinh(np.clip(rgb, 0, None) / (0.5 * c.pixel_scale)) / 3.0
        a.imshow(np.clip(rgb, 0, 1), origin="lower")
        a.set(xticks=[], yticks=[], title=c.meta.get("title", ""))
    return save(fig, out / "mock_gallery.png", dpi=90)


def _row(n: int, figsize: tuple[float, float]) -> tuple[Any, Any]:
    """A figure of `n` panels in a row; (figure, 1-D axes)."""
    fig, ax = subplots(1, n, figsize=figsize)
    return fig, ax[0]
