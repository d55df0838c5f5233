"""Input normalisation that keeps colour and structure but removes sky-level/noise shortcuts.

Each single-band image is background-subtracted (its median), divided by a robust noise
estimate (1.4826 x the median absolute deviation, i.e. the sky sigma when most pixels are sky)
and asinh-stretched: x -> asinh(x / softening). After this, pure-noise images look the same in
every band (zero mean, unit sigma), so a band classifier cannot win on sky level or noise; what
remains is the signal-to-noise morphology of the sources. Uncovered pixels (NaN) become 0
(the background level after subtraction).
"""

from __future__ import annotations

import numpy as np

from clustermass.images.base import BANDS

#: Default asinh softening, in units of the sky noise sigma.
DEFAULT_SOFTENING = 3.0
_MIN_SIGMA = 1e-12


def robust_background(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-image median (background) and NMAD sigma (noise) over the last two axes, NaN-aware.

    images: (..., H, W) in any flux unit; returns two (...) arrays in the same unit.
    """
    flat = images.reshape(*images.shape[:-2], -1).astype(np.float64)
    med = np.nanmedian(flat, axis=-1)
    sigma = 1.4826 * np.nanmedian(np.abs(flat - med[..., None]), axis=-1)
    med = np.nan_to_num(med, nan=0.0)
    sigma = np.where(np.isfinite(sigma) & (sigma > _MIN_SIGMA), sigma, 1.0)
    return med, sigma


def normalise(images: np.ndarray, softening: float = DEFAULT_SOFTENING) -> np.ndarray:
    """asinh((image - median) / (sigma * softening)) per image; same shape, float32, NaN -> 0.

    images: (..., H, W) nanomaggies (e.g. (N, 5, H, W) ugriz cutouts).
    """
    if softening <= 0:
        raise ValueError("softening must be positive")
    med, sigma = robust_background(images)
    scaled = (images.astype(np.float64) - med[..., None, None]) / (sigma[..., None, None] * softening)
    return np.nan_to_num(np.arcsinh(scaled), nan=0.0).astype(np.float32)


def colour_composite(image: np.ndarray, q: float = 8.0) -> np.ndarray:
    """(H, W, 3) uint8 Lupton et al. (2004) composite of a (5, H, W) ugriz cutout: R=i, G=r, B=g.

    Each band is sky-subtracted (median); the stretch is 10 sky sigmas of the r band.
    """
    from astropy.visualization import make_lupton_rgb

    g, r, i = (np.nan_to_num(image[BANDS.index(b)].astype(np.float64)) for b in "gri")
    bands = np.stack([i, r, g])
    med, sigma = robust_background(bands)
    bands = bands - med[:, None, None]
    return make_lupton_rgb(bands[0], bands[1], bands[2], minimum=0.0, stretch=10.0 * float(sigma[1]), Q=q)
