"""The ImageSource interface and the cutout grid every source and model agrees on.

A cutout is a (5, size, size) float32 array in nanomaggies per pixel, bands in the fixed
order u, g, r, i, z, on a TAN grid centred on the cluster, north up, east left. Its angular
size is a fixed *physical* aperture at the cluster redshift by default (so pixel scale varies
from cluster to cluster), or a fixed angle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence

import numpy as np
import pandas as pd
from astropy.wcs import WCS

from clustermass.cosmology import arcsec_per_mpc

BANDS = "ugriz"
DEFAULT_SIZE = 64  # pixels on a side
DEFAULT_APERTURE_MPC = 1.5  # physical side length, Mpc
SDSS_PIXEL_ARCSEC = 0.396


@dataclass(frozen=True)
class CutoutGrid:
    """How big a cutout is: `size` pixels a side, spanning `aperture_mpc` (physical) or `aperture_arcsec`."""

    size: int = DEFAULT_SIZE
    aperture_mpc: float | None = DEFAULT_APERTURE_MPC
    aperture_arcsec: float | None = None

    def pixel_scale(self, z: float | None) -> float:
        """Arcsec per pixel for a cluster at redshift z."""
        if self.aperture_arcsec is not None:
            return self.aperture_arcsec / self.size
        if z is None or not np.isfinite(z) or z <= 0:
            raise ValueError("a physical aperture needs a positive redshift; give aperture_arcsec instead")
        return float(self.aperture_mpc * arcsec_per_mpc(z)) / self.size

    def as_dict(self) -> dict:
        return {"size": self.size, "aperture_mpc": self.aperture_mpc, "aperture_arcsec": self.aperture_arcsec}


def cutout_wcs(ra: float, dec: float, size: int, pixel_scale: float) -> WCS:
    """TAN WCS of a size x size grid centred on (ra, dec) deg, `pixel_scale` arcsec/pix, north up, east left."""
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [float(ra), float(dec)]
    w.wcs.crpix = [(size + 1) / 2.0, (size + 1) / 2.0]  # FITS 1-based centre
    scale = pixel_scale / 3600.0
    w.wcs.cdelt = [-scale, scale]
    w.wcs.cunit = ["deg", "deg"]
    return w


@dataclass
class Cutout:
    """A cluster's ugriz cutout (nanomaggies per pixel) and how much of it real data covers."""

    cluster_id: int | None
    ra: float
    dec: float
    pixel_scale: float  # arcsec / pixel
    data: np.ndarray  # (5, size, size) float32, NaN where no frame covers
    covered_fraction: float = 1.0  # fraction of pixels (all bands) with data
    meta: dict = field(default_factory=dict)  # e.g. frames used

    @property
    def size(self) -> int:
        return int(self.data.shape[-1])

    @property
    def wcs(self) -> WCS:
        return cutout_wcs(self.ra, self.dec, self.size, self.pixel_scale)


class ImageSource(Protocol):
    """Something that makes ugriz cutouts of clusters.

    `clusters` has columns id, ra, dec (deg), z and richness (either may be NaN). Sources
    that read frames group the work so each frame is read once per call.
    """

    name: str

    def cutouts(self, clusters: pd.DataFrame, grid: CutoutGrid, bands: Sequence[str] = BANDS) -> list[Cutout]:
        ...
