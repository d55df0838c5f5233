"""Data pipeline of the CNN: normalisation, band order, augmentations, catalogue inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clustermass.model.datasets import augment, aux_inputs, band_samples, dihedral, shift
from clustermass.model.preprocess import normalise, robust_background


def test_normalise_removes_sky_level_and_noise_scale():
    rng = np.random.default_rng(0)
    sky = np.array([0.5, 0.2, 0.4, 0.7, 3.0])[:, None, None]
    noise = np.array([0.05, 0.01, 0.02, 0.03, 0.2])[:, None, None]
    images = (sky + noise * rng.normal(size=(5, 64, 64))).astype(np.float32)
    med, sigma = robust_background(images)
    np.testing.assert_allclose(med, sky[:, 0, 0], atol=0.01)
    np.testing.assert_allclose(sigma, noise[:, 0, 0], rtol=0.05)
    out = normalise(images, softening=3.0)
    assert out.shape == images.shape and out.dtype == np.float32
    # every band ends up with the same background (0) and the same noise level
    np.testing.assert_allclose(np.median(out, axis=(1, 2)), 0.0, atol=0.02)
    stds = out.std(axis=(1, 2))
    assert stds.max() / stds.min() < 1.05
    # a source 30 sigma above the sky is stretched (asinh), not clipped, and stays on top
    images[2, 32, 32] += 30 * noise[2, 0, 0]
    out2 = normalise(images, softening=3.0)
    assert out2[2, 32, 32] == pytest.approx(np.arcsinh(30 / 3.0), rel=0.05)


def test_normalise_nan_and_flat_images():
    x = np.ones((2, 16, 16), np.float32)
    x[0, :4] = np.nan
    out = normalise(x)
    assert np.isfinite(out).all() and np.all(out == 0.0)
    with pytest.raises(ValueError):
        normalise(x, softening=0)


def test_band_samples_order():
    cluster, band = band_samples(3)
    assert cluster.tolist() == [0] * 5 + [1] * 5 + [2] * 5
    assert band.tolist() == [0, 1, 2, 3, 4] * 3


def test_dihedral_group_and_shift():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    outs = {tuple(dihedral(x, k).flatten().tolist()) for k in range(8)}
    assert len(outs) == 8  # eight distinct symmetries of the square
    assert torch.equal(dihedral(x, 1), torch.rot90(x, 1, dims=(-2, -1)))
    s = shift(x, 1, -1)
    assert s[0, 0, 0].tolist() == [0.0, 0.0, 0.0, 0.0]  # shifted-in row is background
    assert s[0, 0, 1, :3].tolist() == [1.0, 2.0, 3.0] and s[0, 0, 1, 3] == 0.0
    assert torch.equal(shift(x, 0, 0), x)


def test_augment_keeps_bands_aligned_and_flux():
    rng = np.random.default_rng(0)
    base = torch.zeros(8, 5, 16, 16)
    base[:, :, 8, 5] = torch.arange(1.0, 6.0)[None, :]  # one point source, a different flux per band
    out = augment(base, rng, max_shift=2)
    assert out.shape == base.shape
    for i in range(8):
        # the five bands of a sample move together: the source sits on the same pixel in every band
        pos = [tuple(torch.nonzero(out[i, b])[0].tolist()) for b in range(5)]
        assert len(set(pos)) == 1
        # band order and flux unchanged (the source stays inside the frame: shifts <= 2 px)
        assert out[i].sum(dim=(1, 2)).tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    moved = [tuple(torch.nonzero(out[i, 0])[0].tolist()) for i in range(8)]
    assert len(set(moved)) > 1
    again = augment(base, np.random.default_rng(0), max_shift=2)
    assert torch.equal(out, again)  # seeded


def test_aux_inputs():
    aux = aux_inputs(np.array([40.0, 400.0]), np.array([0.35, 0.0]))
    np.testing.assert_allclose(aux, [[0.0, 0.0], [1.0, np.log10(1 / 1.35)]], atol=1e-6)
    assert aux.dtype == np.float32


def test_trunk_pooling_and_band_features():
    from clustermass.model.networks import Trunk, band_features

    torch.manual_seed(0)
    trunk = Trunk(width=4, blocks=(1, 1), pooling=("mean", "centre")).eval()
    assert trunk.n_features == 2 * 8
    x = torch.zeros(2, 5, 32, 32)
    x[1, 2, 14:18, 14:18] = 5.0  # a source in the centre of band r of cluster 1
    with torch.no_grad():
        f = band_features(trunk, x)
    assert f.shape == (2, 5 * 16)
    # bands are concatenated in order: only band r's block of cluster 1 differs from the empty images
    blocks = (f[1] - f[0]).abs().reshape(5, 16).sum(1)
    assert blocks[2] > 0 and torch.all(blocks[[0, 1, 3, 4]] == 0)
    assert trunk.feature_map(x[:, :1]).shape == (2, 8, 8, 8)
    with pytest.raises(ValueError, match="unknown pooling"):
        Trunk(pooling=("median",))
