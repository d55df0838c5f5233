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
    x = np.log10(1 / 1.35)
    np.testing.assert_allclose(aux, [[0.0, 0.0, 0.0], [1.0, x, x**2]], atol=1e-6)  # the baseline's z^2 term too
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


def _blob(x: torch.Tensor, cluster: int, band: int, row: int, col: int) -> None:
    """A bright 4x4 source at pixel (row, col) of one band of one cluster."""
    x[cluster, band, row:row + 4, col:col + 4] = 5.0


def test_colour_features_see_a_band_moved_where_per_band_pooling_cannot():
    """Cluster 0: the same source at the same place in g and r (no colour anywhere). Cluster 1: r's
    source moved by a whole number of last-map cells, away from the edges. Globally pooled per-band
    features are the same (the map only shifts); the g-r colour features are not."""
    from clustermass.model.networks import Trunk, band_features

    torch.manual_seed(0)
    trunk = Trunk(width=4, blocks=(1, 1), pooling=("mean", "max", "colour")).eval()
    assert trunk.n_features == 2 * 8 and trunk.n_colour_features == 4 * 2 * 8
    assert trunk.n_cluster_features == 5 * 16 + 64
    x = torch.zeros(2, 5, 64, 64)
    for cluster, r_col in ((0, 24), (1, 36)):  # a 3-cell shift (a cell is 4 px on this trunk's last map)
        _blob(x, cluster, 1, 24, 24)
        _blob(x, cluster, 2, 24, r_col)
    with torch.no_grad():
        f = band_features(trunk, x)
    assert f.shape == (2, trunk.n_cluster_features)
    per_band, colour = f[:, :80], f[:, 80:].reshape(2, 4, 2, 8)  # pairs u-g, g-r, r-i, i-z; ReLU(+d), ReLU(-d)
    torch.testing.assert_close(per_band[0], per_band[1], rtol=0, atol=1e-5)
    assert torch.all(colour[0, 1] == 0)  # g and r agree at every position in cluster 0
    assert (colour[1, 1] - colour[0, 1]).abs().sum() > 1e-2
    # u-g, i-z: one of the two bands is empty in both clusters, the other shifted only: the same pooled
    torch.testing.assert_close(colour[0, [0, 3]], colour[1, [0, 3]], rtol=0, atol=1e-5)


def test_ring_pooling_sees_radius_where_global_mean_cannot():
    """A source at the centre or near the edge of a band: the global mean is the same, the rings not;
    colour_rings pools the colour maps in the same annuli."""
    from clustermass.model.networks import N_RINGS, Trunk, band_features

    torch.manual_seed(0)
    trunk = Trunk(width=4, blocks=(1, 1), pooling=("mean", "rings", "colour_rings")).eval()
    assert trunk.n_features == (1 + N_RINGS) * 8 and trunk.n_colour_features == 4 * N_RINGS * 2 * 8
    x = torch.zeros(2, 5, 96, 96)
    _blob(x, 0, 2, 46, 46)  # the centre of the 24x24 last map
    _blob(x, 1, 2, 46, 70)  # 6 cells to the right: the middle ring, still far from the edges
    with torch.no_grad():
        f = band_features(trunk, x)
    assert f.shape == (2, trunk.n_cluster_features)
    r_block = f[:, 2 * trunk.n_features:3 * trunk.n_features]
    torch.testing.assert_close(r_block[0, :8], r_block[1, :8], rtol=0, atol=1e-5)  # mean
    rings = r_block[:, 8:].reshape(2, N_RINGS, 8)
    assert (rings[0, 0] - rings[1, 0]).abs().sum() > 1e-2 and (rings[0, 1] - rings[1, 1]).abs().sum() > 1e-2
    colour_rings = f[:, 5 * trunk.n_features:].reshape(2, 4, N_RINGS, 16)
    assert (colour_rings[0, 1, 0] - colour_rings[1, 1, 0]).abs().sum() > 1e-2  # g-r in the inner ring
    with pytest.raises(ValueError, match="too small for 3 rings"):
        band_features(trunk, torch.zeros(1, 5, 16, 16))


def test_colour_pooling_config_round_trip(tmp_path):
    """A config asking for the new poolings loads, serialises and rebuilds; its stage-2 trunk has them."""
    from clustermass.model import registry, workflow
    from clustermass.model.registry import ModelRecord
    from clustermass.model.trainconfig import TrainConfig, load_train_config

    user = tmp_path / "colour.toml"
    user.write_text('[stage2]\npooling = ["mean", "max", "colour", "rings"]\n')
    cfg = load_train_config(user)
    assert cfg.stage2.pooling == ("mean", "max", "colour", "rings")
    assert TrainConfig.from_dict(cfg.as_dict()) == cfg
    trunk_record = ModelRecord(1, "band-classifier-x", "band-classifier", None,
                               config={"arch": {"width": 4, "blocks": [1, 1]}})
    arch = workflow.stage2_arch(trunk_record, cfg.stage2)
    trunk = registry.build_trunk(arch)
    assert trunk.pooling == cfg.stage2.pooling
    assert trunk.n_cluster_features == 5 * (2 + 3) * 8 + 4 * 2 * 8
