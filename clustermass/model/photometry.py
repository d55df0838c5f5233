"""Photometric features of a cluster's calibrated cutouts: what the per-image normalisation hides.

`preprocess.normalise` divides each single-band image by its own noise sigma, so a source's value
mixes its flux with the field's sky and seeing: the brightest cluster galaxy's (BCG's) magnitude and
the magnitude gap to the next galaxy, which carry much of the mass information beyond richness, do
not survive it. These features are measured on the cutouts in nanomaggies per pixel (sky
subtracted, as `images.base` makes them), before any normalisation. They have no weights and see
no labels, so a ridge head on a few hundred labels can use them (`stage2.photometry`).

Feature sets (`PHOTOMETRY`), each per band in ugriz order, as SDSS asinh magnitudes (Lupton,
Gunn & Szalay 1999; defined for zero and negative fluxes too):
- `bcg`: the central galaxy, the flux within BCG_RADIUS_MPC of the cutout centre (the catalogue's
  centre, which redMaPPer puts on its central galaxy; at least the central pixels), and the brightest
  other source between BCG_RADIUS_MPC and SECOND_RADIUS_MPC (the magnitude gap), the flux in a box of
  side ~2 SOURCE_HALF_MPC about its peak on the detection image (r + i); 10 features, the central
  galaxy's 5 first. On development seed 0 (mock v4) the central aperture's r magnitude follows the true
  BCG's with an NMAD of 0.27 mag, the brightest 3x3-pixel box within 0.25 Mpc (the first definition)
  with 0.55: neighbours outshine the BCG's core.
- `apertures`: the total flux within APERTURES_MPC of the centre; 15 features, aperture-major.
- `bcgfit`: the BCG's total r magnitude and the magnitude gap from profile fits on a second, finer cutout
  (`model.bcgfit`; 2 features, appended last by `inference.stage2_features` and not penalised by a ridge head).
Distances in pixels follow from the grid's fixed physical side (`grid.aperture_mpc / grid.size`).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from clustermass.images.base import BANDS, CutoutGrid
from clustermass.model.preprocess import robust_background

PHOTOMETRY = ("bcg", "apertures", "bcgfit")
#: The sets measured on a model's own cutouts (`bcgfit` needs its fine ones).
CUTOUT_SETS = ("bcg", "apertures")
#: Columns of the `bcgfit` set: the BCG's magnitude and the gap (`model.bcgfit.bcg_features`).
N_BCGFIT = 2
#: SDSS asinh-magnitude softening b per band (ugriz; fluxes in units of 3631 Jy = 1e9 nanomaggies).
ASINH_B = np.array([1.4e-10, 0.9e-10, 1.2e-10, 1.8e-10, 7.4e-10])
NANOMAGGIES_PER_F0 = 1e9
#: Radius of the central galaxy's aperture about the cutout centre, Mpc (at least 1 pixel).
BCG_RADIUS_MPC = 0.03
#: Outer radius of the second brightest source's search (the mock's magnitude gap is measured within
#: 0.5 Mpc), Mpc.
SECOND_RADIUS_MPC = 0.5
#: Half side of the box whose flux is a source's flux, Mpc (at least 1 pixel: a 3x3 box).
SOURCE_HALF_MPC = 0.035
#: Radii of the total-flux apertures, Mpc.
APERTURES_MPC = (0.25, 0.5, 0.75)
#: Bands summed into the detection image on which sources are found.
DETECTION_BANDS = ("r", "i")


def asinh_magnitude(flux: np.ndarray) -> np.ndarray:
    """SDSS asinh magnitudes of fluxes (..., 5) in nanomaggies, ugriz on the last axis."""
    x = np.asarray(flux, dtype=np.float64) / NANOMAGGIES_PER_F0
    return -2.5 / np.log(10.0) * (np.arcsinh(x / (2.0 * ASINH_B)) + np.log(ASINH_B))


def n_photometric_features(which: tuple[str, ...]) -> int:
    """How many photometric features a stage-2 head reads for the sets `which`: `photometric_features`' columns and,
    for `bcgfit`, the BCG fit's two (`inference.stage2_features` appends them)."""
    return sum({"bcg": 2 * len(BANDS), "apertures": len(APERTURES_MPC) * len(BANDS), "bcgfit": N_BCGFIT}[w] for w in _checked(which))


def n_unpenalised(which: tuple[str, ...]) -> int:
    """How many of the last photometric features a ridge head leaves unpenalised (the BCG fit's two, which, like
    richness, are few well-measured catalogue-like numbers: one shared penalty would shrink them with the trunk's)."""
    return N_BCGFIT if "bcgfit" in _checked(which) else 0


def _checked(which: tuple[str, ...]) -> tuple[str, ...]:
    for w in which:
        if w not in PHOTOMETRY:
            raise ValueError(f"unknown photometry {w!r}; expected any of {', '.join(PHOTOMETRY)}")
    return tuple(which)


def _radius_px(h: int, w: int) -> np.ndarray:
    """(h, w) distance of each pixel centre from the cutout centre, pixels."""
    yy, xx = np.mgrid[:h, :w]
    return np.hypot(yy - (h - 1) / 2, xx - (w - 1) / 2)


def photometric_features(images: np.ndarray, grid: CutoutGrid, which: tuple[str, ...]) -> np.ndarray:
    """(N, 5, H, W) cutouts in nanomaggies per pixel -> (N, F) float32, the sets of `which` in CUTOUT_SETS
    (`bcgfit` comes from `model.bcgfit` on the fine cutouts).

    Each band's median is subtracted first (what the frames' sky subtraction left), and uncovered
    (NaN) pixels count as that background.
    """
    which = tuple(w for w in _checked(which) if w in CUTOUT_SETS)
    n, b, h, w = images.shape
    if not which:
        return np.zeros((n, 0), np.float32)
    if grid.aperture_mpc is None:
        raise ValueError("photometric features need a grid of fixed physical side (grid.aperture_mpc)")
    mpc_per_px = grid.aperture_mpc / grid.size
    med, _ = robust_background(images)
    x = np.nan_to_num(images.astype(np.float64) - med[..., None, None], nan=0.0)
    r = _radius_px(h, w) * mpc_per_px
    out = []
    for name in which:
        if name == "bcg":
            central = r < max(BCG_RADIUS_MPC, mpc_per_px)
            out.append(asinh_magnitude(x[..., central].sum(-1)))
            out.append(_second(x, r, central, max(1, int(round(SOURCE_HALF_MPC / mpc_per_px)))))
        else:
            out += [asinh_magnitude(x[..., r < rad].sum(-1)) for rad in APERTURES_MPC]
    return np.concatenate(out, axis=1).astype(np.float32)


def _second(x: np.ndarray, r: np.ndarray, central: np.ndarray, half: int) -> np.ndarray:
    """(N, 5) magnitudes of the brightest source outside the central aperture and within SECOND_RADIUS_MPC.

    x: (N, 5, H, W) background-subtracted fluxes; r: (H, W) radius in Mpc; central: (H, W) the central
    aperture; half: a source's box half side, pixels. A source is a local maximum of the detection image's
    pixels, ranked by its box flux.
    """
    n = len(x)
    side = 2 * half + 1
    box = ndimage.uniform_filter(x, size=(1, 1, side, side), mode="constant") * side**2  # (N, 5, H, W) box fluxes
    bands = [BANDS.index(c) for c in DETECTION_BANDS]
    det, pixels = box[:, bands].sum(1), x[:, bands].sum(1)  # (N, H, W): box fluxes and pixels of the detection image
    peaks = pixels == ndimage.maximum_filter(pixels, size=(1, 3, 3), mode="constant", cval=-np.inf)
    second = np.where(peaks & ~central & (r < SECOND_RADIUS_MPC), det, -np.inf).reshape(n, -1).argmax(1)
    return asinh_magnitude(box.reshape(n, x.shape[1], -1)[np.arange(n), :, second])
