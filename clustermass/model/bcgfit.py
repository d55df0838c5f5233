"""The brightest cluster galaxy's (BCG's) total magnitude and the magnitude gap, by profile fits on a fine cutout.

Why: on the quick grid (23 kpc pixels) the light in a central aperture follows the true BCG magnitude at fixed
(lambda, z) with a partial correlation of only 0.44 (docs/model.md, #15 part 5): an aperture catches a varying
share of a de Vaucouleurs profile, and the catalogue centre is another galaxy for about one cluster in four.
Here, on a cutout of fixed physical side at a few kpc per pixel (`FINE_GRID`):

1. Candidates (`fit_candidates`): the local maxima of the r image smoothed by one pixel, above DETECT_SIGMA
   times its noise and within MAX_OFFSET_KPC of the centre; the N_CANDIDATES brightest in a 5x5-pixel box,
   and always the one nearest the centre. The search reaches 600 kpc because the galaxy that sets the gap lies
   up to ~0.5 Mpc from the BCG, which is itself off the catalogue centre in about one cluster in four.
2. Each candidate: flux, half-light radius, centre and background of a PSF-convolved de Vaucouleurs profile
   fitted to the r stamp about it (least squares, other sources masked where the smoothed residual exceeds
   MASK_SIGMA); each band's flux is then a linear fit of that shape, so the magnitudes are total ones (ugriz
   asinh), with r_e and the offset from the centre in kpc.
3. The red sequence at z (`RedSequence`): a robust quadratic in z of the central candidates' g - r and r - i
   over a sample of clusters (no labels), kept with the model that uses it.
4. `bcg_features`: the BCG is the brightest candidate in r that is extended (r_e > MIN_RE_KPC; stars are not)
   and within COLOUR_TOL of the red sequence in both colours; its magnitude is returned less the distance
   modulus (a linear term in z cannot follow the distance modulus's curve: measured, docs/model.md); the gap is
   the r magnitude of the next such candidate minus the BCG's (GAP_MISSING when there is none).

Images are in nanomaggies per pixel (sky subtracted: each band's median is subtracted again here).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage, optimize

from clustermass.cosmology import COSMO
from clustermass.images.base import BANDS, CutoutGrid
from clustermass.model.photometry import N_BCGFIT, asinh_magnitude
from clustermass.profiles import sersic_image

#: The fine cutout the fits run on: 1.2 Mpc in 300 pixels (4 kpc, ~1" at z 0.25; SDSS pixels are 0.396").
FINE_GRID = CutoutGrid(size=300, aperture_mpc=1.2)
#: Detection threshold of a candidate's smoothed peak, in units of the smoothed image's noise.
DETECT_SIGMA = 5.0
#: Candidates: up to this many of the brightest peaks (plus the one nearest the centre) ...
N_CANDIDATES = 14
#: ... within this distance of the catalogue centre, kpc (redMaPPer's miscentring offsets are a few tenths of R_lambda).
MAX_OFFSET_KPC = 600.0
#: The search of models saved before it was widened (their stored `BcgFit` lacks these fields; its grid is 0.8 Mpc).
LEGACY_SEARCH = {"max_offset_kpc": 400.0, "n_candidates": 6}
#: Half side of the square stamp fitted about a candidate, pixels.
STAMP_HALF = 15
#: Pixels whose smoothed fit residual exceeds this many noise sigmas (and their neighbours) are masked.
MASK_SIGMA = 1.5
#: A BCG candidate must be at least this extended (half-light radius, kpc) ...
MIN_RE_KPC = 2.0
#: ... and within this of the red sequence in both g - r and r - i, mag.
COLOUR_TOL = 0.2
#: The largest half-light radius a fit may take, kpc: unbounded, a fit on a 31-pixel stamp could extrapolate a
#: bright neighbour's or the sky's light into wings of r_e up to 180 kpc (BCGs' r_e are ~10-30 kpc).
MAX_RE_KPC = 60.0
#: The gap where only one candidate qualifies, mag.
GAP_MISSING = 1.5
#: What stands in for the BCG when no training cluster has a candidate: a typical BCG's r less the distance modulus.
TYPICAL_BCG_MAG = -22.5
#: Typical SDSS r-band seeing (FWHM, arcsec; the DR8 median is ~1.3-1.4"), the PSF of the fits.
PSF_FWHM_ARCSEC = 1.35
COLUMNS = [*BANDS, "r_e_kpc", "offset_kpc", "central"]


def fit_candidates(image: np.ndarray, kpc_per_px: float, psf_sigma_px: float, max_offset_kpc: float = MAX_OFFSET_KPC,
                   n_candidates: int = N_CANDIDATES) -> pd.DataFrame:
    """One cluster's (5, H, W) fine cutout -> its BCG candidates: ugriz total magnitudes, r_e_kpc, offset_kpc, central.

    Empty when no peak passes DETECT_SIGMA or every candidate's stamp leaves the cutout."""
    x = np.nan_to_num(image - np.nanmedian(image, axis=(1, 2), keepdims=True))
    r = x[BANDS.index("r")]
    sig = 1.4826 * np.median(np.abs(r - np.median(r)))
    h, w = r.shape
    c0y, c0x = (h - 1) / 2, (w - 1) / 2
    sm = ndimage.gaussian_filter(r, 1.0)
    yy, xx = np.mgrid[:h, :w]
    off = np.hypot(yy - c0y, xx - c0x) * kpc_per_px
    # a 1-pixel Gaussian smoothing divides white noise by 2 sqrt(pi) ~ 3.5; use 2 to stay conservative
    peak = (sm == ndimage.maximum_filter(sm, 5)) & (off < max_offset_kpc) & (sm > DETECT_SIGMA * sig / 2.0)
    py, px = np.nonzero(peak)
    if not len(py):
        return pd.DataFrame(columns=COLUMNS)
    box = ndimage.uniform_filter(r, 5, mode="constant")[py, px]
    order = np.argsort(-box)[:n_candidates]
    central = int(np.argmin(off[py, px]))
    rows = []
    for j in np.unique(np.r_[order, central]):
        a, b = int(py[j]), int(px[j])
        if min(a, b) < STAMP_HALF or a >= h - STAMP_HALF or b >= w - STAMP_HALF:
            continue
        stamp = x[:, a - STAMP_HALF:a + STAMP_HALF + 1, b - STAMP_HALF:b + STAMP_HALF + 1]
        mags, r_e = _fit_one(stamp, sig, psf_sigma_px, float(box[j]) * 25.0, MAX_RE_KPC / kpc_per_px)
        rows.append([*mags, r_e * kpc_per_px, off[a, b], j == central])
    return pd.DataFrame(rows, columns=COLUMNS)


def _fit_one(stamp: np.ndarray, sig: float, psf: float, flux0: float, max_re: float) -> tuple[np.ndarray, float]:
    """(ugriz total asinh magnitudes, r_e in pixels) of the de Vaucouleurs source at the centre of a (5, s, s) stamp,
    its r_e at most max_re pixels."""
    r = stamp[BANDS.index("r")]
    s = r.shape[0]
    c = (s - 1) / 2
    mask = np.ones(r.shape, bool)
    p = np.array([max(flux0, sig), np.log(min(2.0, max_re / 2)), c, c, 0.0])  # flux, ln r_e (px), x0, y0, background
    lo, hi = [0.0, np.log(0.1), c - 3, c - 3, -np.inf], [np.inf, np.log(max_re), c + 3, c + 3, np.inf]
    for _ in range(2):
        fit = optimize.least_squares(
            lambda q: ((q[0] * sersic_image(r.shape, q[2], q[3], np.exp(q[1]), psf) + q[4] - r) / sig)[mask],
            p, bounds=(lo, hi))
        p = fit.x
        shape = sersic_image(r.shape, p[2], p[3], np.exp(p[1]), psf)
        resid = ndimage.gaussian_filter(r - p[0] * shape - p[4], 1.0)
        mask = ~ndimage.binary_dilation(resid > MASK_SIGMA * sig, iterations=2)
    design = np.column_stack([shape[mask], np.ones(int(mask.sum()))])
    flux = np.linalg.lstsq(design, stamp[:, mask].T, rcond=None)[0][0]  # (5,) total fluxes
    return asinh_magnitude(flux[None])[0], float(np.exp(p[1]))


def candidates_table(images: np.ndarray, z: np.ndarray, grid: CutoutGrid = FINE_GRID,
                     psf_fwhm_arcsec: float = PSF_FWHM_ARCSEC, max_offset_kpc: float = MAX_OFFSET_KPC,
                     n_candidates: int = N_CANDIDATES) -> pd.DataFrame:
    """`fit_candidates` of (N, 5, H, W) fine cutouts at redshifts z, with a `cluster` column (row index)."""
    if grid.aperture_mpc is None:
        raise ValueError("the BCG fits need a grid of fixed physical side (grid.aperture_mpc)")
    kpc_per_px = grid.aperture_mpc * 1000.0 / grid.size
    parts = []
    for k, (img, zk) in enumerate(zip(images, np.asarray(z, float))):
        psf_px = psf_fwhm_arcsec / 2.3548 / grid.pixel_scale(float(zk))
        parts.append(fit_candidates(img, kpc_per_px, psf_px, max_offset_kpc, n_candidates).assign(cluster=k))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=[*COLUMNS, "cluster"])


@dataclass(frozen=True)
class RedSequence:
    """g - r and r - i of the red sequence as quadratics in z (numpy.polyfit coefficients, highest power first)."""

    g_r: tuple[float, float, float]
    r_i: tuple[float, float, float]

    @classmethod
    def fit(cls, cands: pd.DataFrame, z: np.ndarray, clip: float = 3.0, iterations: int = 5) -> RedSequence:
        """Robust quadratics of the central candidates' colours over the clusters (outliers beyond `clip` NMADs out)."""
        cen = cands[cands.central.astype(bool)]
        zc = np.asarray(z, float)[cen.cluster.to_numpy(int)]
        coefs = []
        for colour in (cen.g - cen.r, cen.r - cen.i):
            c = colour.to_numpy(float)
            ok = np.isfinite(c)
            for _ in range(iterations):
                coef = np.polyfit(zc[ok], c[ok], 2)
                res = c - np.polyval(coef, zc)
                ok = np.isfinite(c) & (np.abs(res) <= clip * 1.4826 * np.median(np.abs(res[ok])))
            coefs.append(tuple(float(v) for v in coef))
        return cls(*coefs)

    def colours(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(g - r, r - i) of the red sequence at z."""
        return np.polyval(self.g_r, z), np.polyval(self.r_i, z)


def bcg_features(cands: pd.DataFrame, z: np.ndarray, red: RedSequence, n: int) -> np.ndarray:
    """(n, 2) float: the BCG's r magnitude less the distance modulus at z, and the gap to the next red-sequence
    candidate (mag), per cluster 0..n-1.

    A cluster without a qualifying candidate gets the central candidate's magnitude (NaN without one)."""
    out = np.full((n, N_BCGFIT), np.nan)
    if not len(cands):
        return out
    z = np.asarray(z, float)
    gr, ri = red.colours(z[cands.cluster.to_numpy(int)])
    ok = ((cands.r_e_kpc > MIN_RE_KPC) & (np.abs(cands.g - cands.r - gr) < COLOUR_TOL)
          & (np.abs(cands.r - cands.i - ri) < COLOUR_TOL)).to_numpy()
    for k, g in cands.assign(ok=ok).groupby("cluster"):
        m = np.sort(g.r[g.ok].to_numpy(float))
        if m.size:
            out[k] = m[0], (m[1] - m[0]) if m.size > 1 else GAP_MISSING
        elif g.central.any():
            out[k] = float(g.r[g.central.astype(bool)].iloc[0]), GAP_MISSING
    out[:, 0] -= COSMO.distmod(z).value
    return out


@dataclass(frozen=True)
class BcgFit:
    """What a model reading the BCG fits keeps: the fine grid, the red sequence, the values that stand in for
    a cluster without any candidate (the training clusters' medians) and the candidate search it was trained with."""

    grid: CutoutGrid
    red: RedSequence
    fill: tuple[float, float]
    max_offset_kpc: float = MAX_OFFSET_KPC
    n_candidates: int = N_CANDIDATES

    @classmethod
    def learn(cls, fine: np.ndarray, z: np.ndarray, grid: CutoutGrid = FINE_GRID) -> tuple[BcgFit, np.ndarray]:
        """Fit the red sequence on these clusters' (N, 5, H, W) fine cutouts; (the fit, their (N, 2) features)."""
        z = np.asarray(z, float)
        cands = candidates_table(fine, z, grid, max_offset_kpc=MAX_OFFSET_KPC, n_candidates=N_CANDIDATES)
        red = RedSequence.fit(cands, z)
        raw = bcg_features(cands, z, red, len(z))
        fill = tuple(float(v) for v in np.nanmedian(raw, axis=0)) if np.isfinite(raw).any() else (TYPICAL_BCG_MAG, GAP_MISSING)
        fit = cls(grid, red, fill)
        return fit, fit._filled(raw)

    def features(self, fine: np.ndarray, z: np.ndarray) -> np.ndarray:
        """(N, 2) float32: `bcg_features` of clusters at z from their fine cutouts."""
        z = np.asarray(z, float)
        cands = candidates_table(fine, z, self.grid, max_offset_kpc=self.max_offset_kpc, n_candidates=self.n_candidates)
        return self._filled(bcg_features(cands, z, self.red, len(z)))

    def _filled(self, raw: np.ndarray) -> np.ndarray:
        return np.where(np.isfinite(raw), raw, np.asarray(self.fill)[None]).astype(np.float32)

    def as_dict(self) -> dict:
        return {"grid": self.grid.as_dict(), "g_r": list(self.red.g_r), "r_i": list(self.red.r_i), "fill": list(self.fill),
                "max_offset_kpc": self.max_offset_kpc, "n_candidates": self.n_candidates}

    @classmethod
    def from_dict(cls, d: dict) -> BcgFit:
        search = {k: d.get(k, v) for k, v in LEGACY_SEARCH.items()}
        return cls(CutoutGrid(**d["grid"]), RedSequence(tuple(d["g_r"]), tuple(d["r_i"])), tuple(d["fill"]),
                   float(search["max_offset_kpc"]), int(search["n_candidates"]))
