"""SDSS camera numbers per band (u, g, r, i, z) and each field's observing conditions.

Calibration (nanomaggies per count) and gain are typical DR12 values. Every mock field has its
own seeing and sky (`Conditions`, drawn by `field_conditions` from one Generator per (seed, run,
camcol, field)), so a cluster's direct cutout and its frames see the same PSF and noise:
- seeing: r-band PSF FWHM log-normal about the SDSS median 1.32" with 0.15 ln-scatter (SDSS DR7,
  Abazajian et al. 2009: median ~1.4" in r, 5-95% about 1.0-1.9"; the real photoField of run 3900
  camcol 6 here: median 1.38", 5-95% 1.06-1.71"), the other bands scaled by the median ratios
  with 3% jitter;
- sky: the median dark sky per band (22.1, 21.9, 20.9, 20.2, 19.0 mag/arcsec^2) brightened or
  darkened by a common N(0, 0.18) mag and a per-band N(0, 0.05) mag (run 3900: r sky 5-95% spans
  0.6 mag);
- SCORE: window_flist's field quality in 0..1, falling with seeing and sky (0.92 - 0.6 (FWHM_r - 1.2")
  - 0.3 (sky excess, mag), clipped to 0.05..1; run 3900's median is 0.85).
The per-pixel noise of a sky-subtracted frame follows from Poisson statistics of the sky:
sigma = sqrt(sky_nmgy * nmgy_per_count / gain): 0.016 nmgy (g) and 0.046 nmgy (u) at the median.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clustermass.images.base import SDSS_PIXEL_ARCSEC

SKY_MU = np.array([22.1, 21.9, 20.9, 20.2, 19.0])
#: SDSS median seeing FWHM (arcsec) per band u, g, r, i, z.
PSF_FWHM = np.array([1.53, 1.44, 1.32, 1.26, 1.29])
NMGY_PER_COUNT = np.array([0.0123, 0.0038, 0.0049, 0.0065, 0.031])
GAIN = np.array([1.6, 3.85, 4.7, 4.6, 4.6])
SEEING_LN_SCATTER, SEEING_BAND_JITTER, SEEING_RANGE = 0.15, 0.03, (0.8, 2.6)
SKY_MAG_SCATTER, SKY_BAND_SCATTER = 0.18, 0.05


@dataclass(frozen=True)
class Conditions:
    """A field's seeing FWHM (arcsec) and sky surface brightness (mag/arcsec^2) per band."""

    psf_fwhm: np.ndarray
    sky_mu: np.ndarray

    @property
    def sky_flux(self) -> np.ndarray:
        """Sky per band in nanomaggies per arcsec^2 (window_flist's SKYFLUX)."""
        return 10 ** (0.4 * (22.5 - self.sky_mu))

    @property
    def score(self) -> float:
        """Field quality in 0..1 (window_flist's SCORE): worse with seeing and a bright sky."""
        excess = float(np.mean(SKY_MU[1:4] - self.sky_mu[1:4]))
        return float(np.clip(0.92 - 0.6 * (self.psf_fwhm[2] - 1.2) - 0.3 * excess, 0.05, 1.0))


MEDIAN = Conditions(PSF_FWHM, SKY_MU)


def field_conditions(seed: int, run: int, camcol: int, field: int) -> Conditions:
    """The observing conditions of a mock field (deterministic in seed and the field's ids)."""
    rng = np.random.default_rng([seed, 6, run, camcol, field])
    fwhm_r = np.exp(np.log(PSF_FWHM[2]) + SEEING_LN_SCATTER * rng.standard_normal())
    fwhm = np.clip(fwhm_r * PSF_FWHM / PSF_FWHM[2] * np.exp(SEEING_BAND_JITTER * rng.standard_normal(5)), *SEEING_RANGE)
    sky = SKY_MU + SKY_MAG_SCATTER * rng.standard_normal() + SKY_BAND_SCATTER * rng.standard_normal(5)
    return Conditions(fwhm, sky)


def sky_nmgy_per_pixel(cond: Conditions = MEDIAN) -> np.ndarray:
    """Sky level per 0.396" pixel in nanomaggies, per band."""
    return cond.sky_flux * SDSS_PIXEL_ARCSEC**2


def frame_noise(cond: Conditions = MEDIAN) -> np.ndarray:
    """1-sigma noise per 0.396" pixel of a corrected frame (nanomaggies), per band."""
    return np.sqrt(sky_nmgy_per_pixel(cond) * NMGY_PER_COUNT / GAIN)


def cutout_noise(pixel_scale: float, cond: Conditions = MEDIAN) -> np.ndarray:
    """1-sigma noise per cutout pixel of `pixel_scale` arcsec (flux summed over frame pixels), per band."""
    return frame_noise(cond) * (pixel_scale / SDSS_PIXEL_ARCSEC)
