"""SDSS camera numbers per band (u, g, r, i, z): sky brightness, calibration, gain, noise.

Sky surface brightness is the SDSS median dark sky (mag/arcsec^2); calibration (nanomaggies per
count) and gain are typical DR12 values. The per-pixel noise of a sky-subtracted corrected frame
then follows from Poisson statistics of the sky: sigma = sqrt(sky_nmgy * nmgy_per_count / gain),
which gives 0.016 nmgy (g) and 0.046 nmgy (u), as measured on the real frames.
"""

from __future__ import annotations

import numpy as np

from clustermass.images.base import SDSS_PIXEL_ARCSEC

SKY_MU = np.array([22.1, 21.9, 20.9, 20.2, 19.0])
NMGY_PER_COUNT = np.array([0.0123, 0.0038, 0.0049, 0.0065, 0.031])
GAIN = np.array([1.6, 3.85, 4.7, 4.6, 4.6])


def sky_nmgy_per_pixel() -> np.ndarray:
    """Sky level per 0.396" pixel in nanomaggies, per band."""
    return 10 ** (0.4 * (22.5 - SKY_MU)) * SDSS_PIXEL_ARCSEC**2


def frame_noise() -> np.ndarray:
    """1-sigma noise per 0.396" pixel of a corrected frame (nanomaggies), per band."""
    return np.sqrt(sky_nmgy_per_pixel() * NMGY_PER_COUNT / GAIN)


def cutout_noise(pixel_scale: float) -> np.ndarray:
    """1-sigma noise per cutout pixel of `pixel_scale` arcsec (flux summed over frame pixels), per band."""
    return frame_noise() * (pixel_scale / SDSS_PIXEL_ARCSEC)
