"""Result plots as PNG (matplotlib Agg): Mollweide sky map and predicted mass vs richness."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from clustermass import sky
from clustermass.plots.figure import pyplot, save, subplots

SKYMAP_VALUES = ("mass", "count")


def healpix_map(hpx29: np.ndarray, values: np.ndarray | None, order: int) -> np.ndarray:
    """A NESTED HEALPix map at `order`: mean of `values` per pixel (None: counts); empty = UNSEEN."""
    import healpy as hp

    npix = 12 * 4**order
    pix = sky.tile_of(np.asarray(hpx29, dtype=np.int64), order)
    counts = np.bincount(pix, minlength=npix).astype(float)
    if values is None:
        out = counts
    else:
        sums = np.bincount(pix, weights=np.asarray(values, dtype=float), minlength=npix)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = sums / counts
    out[counts == 0] = hp.UNSEEN
    return out


def plot_skymap(df: pd.DataFrame, out: Path, value: str = "mass", order: int = 4, title: str = "") -> Path:
    """Mollweide map of the mean predicted log10 M500 (or cluster counts) per HEALPix pixel."""
    import healpy as hp

    if value not in SKYMAP_VALUES:
        raise ValueError(f"skymap value must be one of {SKYMAP_VALUES}, got {value!r}")
    m = healpix_map(df["hpx29"].to_numpy(), df["log10_m500"].to_numpy() if value == "mass" else None, order)
    unit = "mean log10(M500/Msun)" if value == "mass" else "clusters per pixel"
    hp.mollview(m, nest=True, title=title or f"{unit} (HEALPix order {order})", unit=unit, cmap="viridis")
    fig = pyplot().gcf()
    hp.graticule(dpar=30, dmer=60, alpha=0.3)
    return save(fig, out, dpi=100, tight=False)


def plot_mass_richness(df: pd.DataFrame, out: Path, title: str = "") -> Path:
    """Predicted log10 M500 vs log10 richness, coloured by redshift, with measured masses if any."""
    ok = (df["richness"] > 0) & df["log10_m500"].notna()
    d = df[ok]
    fig, ax = subplots(figsize=(7, 5.5), squeeze=True)
    sc = ax.scatter(np.log10(d["richness"]), d["log10_m500"], c=d["z"], s=4, cmap="plasma", alpha=0.7, lw=0)
    fig.colorbar(sc, ax=ax, label="redshift z")
    if "label_log10_m500" in d and d["label_log10_m500"].notna().any():
        lab = d[d["label_log10_m500"].notna()]
        ax.scatter(np.log10(lab["richness"]), lab["label_log10_m500"], s=14, facecolors="none", edgecolors="k",
                   lw=0.6, label="X-ray/SZ mass (labels)")
        ax.legend(loc="lower right")
    ax.set_xlabel("log10 richness lambda")
    ax.set_ylabel("predicted log10(M500 / Msun)")
    ax.set_title(title or f"predicted mass vs richness ({len(d)} clusters)")
    return save(fig, out, dpi=110)
