"""PNG figures comparing a mock universe with the real data (side by side), from calibrate.py's numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from clustermass.mock import calibrate


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_all(universe_dir: Path, real_dir: Path, out: Path) -> tuple[dict[str, Path], dict]:
    """Write the comparison PNGs under `out`; returns (name -> path, the numbers shown)."""
    plt = _pyplot()
    out.mkdir(parents=True, exist_ok=True)
    paths, numbers = {}, {}

    mock, real = calibrate.redmapper_pair(universe_dir, real_dir)
    ks = calibrate.ks_statistics(universe_dir, real_dir)
    numbers["ks"] = ks
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    bins = np.logspace(np.log10(20), np.log10(300), 30)
    ax[0].hist(real["lambda"], bins, histtype="step", density=True, label="real v5.10")
    ax[0].hist(mock["lambda"], bins, histtype="step", density=True, label="mock")
    ax[0].set(xscale="log", yscale="log", xlabel="lambda", title=f"richness (KS {ks['lambda']:.3f})")
    zb = np.arange(0.05, 0.6, 0.0125)
    ax[1].hist(real.redshift, zb, histtype="step", density=True, label="real v5.10")
    ax[1].hist(mock.redshift, zb, histtype="step", density=True, label="mock")
    ax[1].set(xlabel="z_lambda", title=f"redshift (KS {ks['z']:.3f})")
    ax[0].legend()
    paths["redmapper"] = _save(fig, out / "mock_vs_real_redmapper.png", plt)

    s = calibrate.baseline_summary(universe_dir)
    numbers["baseline"] = {k: s[k] for k in ("clusters", "labelled", "fraction", "xray", "sz", "mae", "coef")}
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
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
    paths["labels"] = _save(fig, out / "mock_labels_baseline.png", plt)

    bcg_m, bcg_r = calibrate.bcg_table(universe_dir), calibrate.spidders_bcgs(real_dir)
    off = calibrate.bcg_offsets(universe_dir, real_dir)
    numbers["bcg_offsets"] = off.round(3).to_dict(orient="records")
    fig, ax = plt.subplots(1, 3, figsize=(14, 4))
    for i, (a, b) in enumerate((("g", "r"), ("r", "i"), ("r", None))):
        yr = bcg_r[a] - bcg_r[b] if b else bcg_r[a]
        ym = bcg_m[a] - bcg_m[b] if b else bcg_m[a]
        ax[i].scatter(bcg_r.z, yr, s=5, label="SPIDERS BCGs")
        ax[i].scatter(bcg_m.z, ym, s=3, alpha=0.4, label="mock BCGs (X-ray detected)")
        ax[i].set(xlabel="z", ylabel=f"{a}-{b}" if b else a, xlim=(0, 0.6))
    ax[0].legend()
    paths["bcg"] = _save(fig, out / "mock_vs_spiders_bcg.png", plt)

    f = calibrate.field_comparison(real_dir)
    numbers["field"] = f
    fig, ax = plt.subplots(1, 3, figsize=(13, 4))
    kinds = ("galaxies", "stars")
    x = np.arange(2)
    for j, (key, title) in enumerate((("per_deg2", "counts / deg^2 (18<r<21.5)"), ("gr", "median g-r"), ("ri", "median r-i"))):
        ax[j].bar(x - 0.2, [f[k][f"real_{key}"] for k in kinds], 0.4, label="real photoObj")
        ax[j].bar(x + 0.2, [f[k][f"mock_{key}"] for k in kinds], 0.4, label="mock")
        ax[j].set(xticks=x, xticklabels=kinds, title=title)
    ax[0].legend()
    paths["field"] = _save(fig, out / "mock_vs_photoobj_field.png", plt)

    proj, eff = calibrate.projection_shares(universe_dir), calibrate.assembly_effects(universe_dir)
    numbers["projection"], numbers["assembly"] = proj, eff
    fig, ax = plt.subplots(1, 3, figsize=(14, 4))
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
    paths["effects"] = _save(fig, out / "mock_effects.png", plt)
    return paths, numbers


def plot_gallery(cutouts: list, out: Path) -> Path:
    """g, r, i false-colour images of a few cutouts (asinh stretch)."""
    plt = _pyplot()
    n = len(cutouts)
    fig, ax = plt.subplots(1, n, figsize=(3 * n, 3.2), squeeze=False)
    for a, c in zip(ax[0], cutouts):
        rgb = np.stack([c.data[3], c.data[2], c.data[1]], axis=-1)
        rgb = np.arcsinh(np.clip(rgb, 0, None) / (0.5 * c.pixel_scale)) / 3.0
        a.imshow(np.clip(rgb, 0, 1), origin="lower")
        a.set(xticks=[], yticks=[], title=c.meta.get("title", ""))
    return _save(fig, out / "mock_gallery.png", plt)


def _save(fig, path: Path, plt) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
