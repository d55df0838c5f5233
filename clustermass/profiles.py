"""Galaxy light profiles as mixtures of circular Gaussians: what the mock draws and what the model fits.

A Sersic profile of index n is approximated by Gaussians of fixed widths (sigma / r_e) with
non-negative weights (Hogg & Lang 2013): convolved with a Gaussian PSF it stays a mixture of
Gaussians, each integrated exactly over square pixels as a product of two 1-D erf differences.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.special import ndtr

#: Gaussian sigma per unit of half-light radius (a Gaussian's r_e is 1.1774 sigma).
GAUSS_RE_TO_SIGMA = 1.0 / 1.1774
#: Component widths (sigma / r_e) of the Gaussian mixtures of Sersic n = 1 and n = 4 profiles.
_MOG_WIDTHS = {1: np.array([0.15, 0.35, 0.6, 0.9, 1.3]), 4: np.array([0.02, 0.06, 0.15, 0.35, 0.8, 1.8, 4.0])}


@lru_cache(maxsize=4)
def sersic_mixture(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(flux weights, sigma / r_e) of a mixture of circular Gaussians fitting a Sersic profile of index n
    (non-negative least squares on the surface brightness, flux-weighted, out to 8 r_e; cf. Hogg & Lang 2013)."""
    from scipy.optimize import nnls

    r = np.logspace(-2.5, np.log10(8.0), 300)  # in r_e
    b = 2.0 * n - 1.0 / 3.0 + 4.0 / (405.0 * n)
    prof = np.exp(-b * (r ** (1.0 / n) - 1.0))
    prof /= np.trapezoid(2 * np.pi * r * prof, r)
    s = _MOG_WIDTHS[n]
    comp = np.exp(-(r[:, None] ** 2) / (2 * s**2)) / (2 * np.pi * s**2)
    w, _ = nnls(comp * r[:, None], prof * r)
    keep = w > 0
    return w[keep] / w[keep].sum(), s[keep]


def pixel_fractions(centre: np.ndarray, sigma: np.ndarray, n: int) -> np.ndarray:
    """(n, N) fraction of each 1-D Gaussian (centre, sigma in pixels; pixel k spans k-0.5..k+0.5)."""
    edges = np.arange(n + 1, dtype=np.float64) - 0.5
    cdf = ndtr((edges[:, None] - centre[None, :]) / sigma[None, :])
    return np.diff(cdf, axis=0)


def sersic_image(shape: tuple[int, int], x0: float, y0: float, r_e: float, psf_sigma: float, n: int = 4) -> np.ndarray:
    """(h, w) pixel fractions of a unit-flux Sersic-n source at pixel (x0, y0) (pixel centres at integers),
    half-light radius r_e and Gaussian PSF sigma in pixels, integrated over the pixels."""
    w, ratio = sersic_mixture(n)
    s = np.hypot(r_e * ratio, psf_sigma)  # (k,) component widths convolved with the PSF
    gy = pixel_fractions(np.full(s.size, float(y0)), s, shape[0])  # (h, k)
    gx = pixel_fractions(np.full(s.size, float(x0)), s, shape[1])  # (w, k)
    return np.einsum("k,ik,jk->ij", w, gy, gx)
