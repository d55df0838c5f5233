"""Photometric features of the calibrated cutouts: what the per-image normalisation hides."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clustermass.images.base import CutoutGrid
from clustermass.model.inference import extract_features, stage2_features
from clustermass.model.networks import Trunk
from clustermass.model.photometry import asinh_magnitude, n_photometric_features, photometric_features
from clustermass.model.preprocess import normalise
from model_helpers import mock_clusters, mock_images

GRID = CutoutGrid(size=32, aperture_mpc=1.5)  # 0.047 Mpc per pixel


def _sky(n: int = 1, size: int = 32, seed: int = 0) -> np.ndarray:
    """(n, 5, size, size) pure sky noise, 0.02 nanomaggies per pixel."""
    return np.random.default_rng(seed).normal(0.0, 0.02, (n, 5, size, size)).astype(np.float32)


def test_a_brighter_cluster_in_a_noisier_field_changes_the_photometry_not_the_normalised_features():
    """Scaling a cutout by 4 (every source 1.5 mag brighter, the sky noise 4x): the normalised images,
    hence every trunk feature, stay the same; the magnitudes of the BCG, the second source and the
    apertures all move by 2.5 log10 4."""
    images = mock_images(mock_clusters(3, seed=4), size=GRID.size)
    brighter = 4.0 * images
    torch.manual_seed(0)
    trunk = Trunk(4, (1, 1), ("mean", "max", "centre"))
    before = extract_features(trunk, normalise(images), tta=False)
    after = extract_features(trunk, normalise(brighter), tta=False)
    assert np.allclose(before, after, atol=1e-4)
    which = ("bcg", "apertures")
    shift = photometric_features(brighter, GRID, which) - photometric_features(images, GRID, which)
    bright = photometric_features(images, GRID, which) < 21.0  # well above the asinh softening
    assert bright.sum() > 20
    assert np.allclose(shift[bright], -2.5 * np.log10(4.0), atol=0.02)


def test_the_bcg_the_second_source_and_the_apertures_follow_the_physical_grid():
    images = _sky()
    r_px = 0.25 / (1.5 / 32)  # 0.25 Mpc in pixels
    images[0, :, 16, 16] += 20.0  # the BCG, at the centre (15.5, 15.5)
    images[0, :, 16, 16 + 6] += 5.0  # 0.28 Mpc away: not the BCG, but the second source
    images[0, :, 2, 2] += 100.0  # the brightest of all, in the corner: neither
    f = photometric_features(images, GRID, ("bcg", "apertures"))[0]
    bcg, second, apertures = f[:5], f[5:10], f[10:].reshape(3, 5)
    assert np.allclose(bcg, 22.5 - 2.5 * np.log10(20.0), atol=0.05)
    assert np.allclose(second, 22.5 - 2.5 * np.log10(5.0), atol=0.05)
    assert 6 > r_px - 1  # so that the second source lies between 0.25 and 0.5 Mpc
    assert np.allclose(apertures[0], bcg, atol=0.1) and np.allclose(apertures[1], 22.5 - 2.5 * np.log10(25.0), atol=0.1)
    # the same pixels on a grid twice as wide: the second source is 0.56 Mpc from the centre, out of reach
    wide = photometric_features(images, CutoutGrid(size=32, aperture_mpc=3.0), ("bcg",))[0]
    assert np.allclose(wide[:5], bcg, atol=0.05) and np.all(wide[5:] > second + 1.0)
    assert n_photometric_features(("bcg", "apertures")) == f.size == 25


def test_asinh_magnitudes_are_pogson_for_bright_sources_and_finite_for_none():
    flux = np.array([[1.0, 10.0, 100.0, 1000.0, 1e4], [0.0, -1.0, 0.0, -1.0, 0.0]])
    mags = asinh_magnitude(flux)
    assert np.allclose(mags[0, 1:], 22.5 - 2.5 * np.log10(flux[0, 1:]), atol=0.01)
    assert np.all(np.isfinite(mags)) and np.all(mags[1] > 22.5)  # zero flux: 24.63, 25.11, 24.80, 24.36, 22.83


def test_stage2_features_are_the_trunks_then_the_photometry():
    images = mock_images(mock_clusters(2, seed=5), size=GRID.size)
    torch.manual_seed(0)
    trunk = Trunk(4, (1, 1))
    x = normalise(images)
    plain = stage2_features(trunk, images, x, True, (), GRID)
    both = stage2_features(trunk, images, x, True, ("bcg",), GRID)
    assert np.array_equal(plain, extract_features(trunk, x, True))
    assert np.array_equal(both, np.hstack([plain, photometric_features(images, GRID, ("bcg",))]))
    with pytest.raises(ValueError, match="unknown photometry 'bgc'"):
        stage2_features(trunk, images, x, True, ("bgc",), GRID)
