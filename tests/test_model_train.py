"""Training on arrays: noise-only band classification, a tiny mock end to end, folds, determinism."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from clustermass.errors import ConfigError
from clustermass.model import baseline, workflow
from clustermass.model.datasets import aux_inputs
from clustermass.model.folds import fold_of
from clustermass.model.inference import extract_features
from clustermass.model.networks import Trunk
from clustermass.model.preprocess import normalise
from clustermass.model.train import confusion_matrix, cross_validate, train_stage1
from clustermass.mock.instrument import cutout_noise, sky_nmgy_per_pixel
from model_helpers import mock_clusters, mock_images, tiny_train_config

S1, S2 = tiny_train_config().stage1, tiny_train_config().stage2


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def mock():
    """120 rendered mock clusters (32 px), normalised, with their true masses."""
    clusters = mock_clusters(120)
    return clusters, normalise(mock_images(clusters))


def test_pure_noise_stays_near_chance():
    """Sky level and noise differ per band (as in SDSS): raw pixels give the band away, normalised ones must not."""
    rng = np.random.default_rng(0)
    sky = sky_nmgy_per_pixel()[:, None, None] * 10.0
    sigma = cutout_noise(8.0)[:, None, None]
    noise = (sky + sigma * rng.standard_normal((150, 5, 16, 16))).astype(np.float32)
    cfg = replace(S1, epochs=3)
    normed = train_stage1(normalise(noise), cfg, seed=0)
    assert normed.accuracy < 0.35  # chance is 0.2
    raw = train_stage1(((noise - sky.mean()) / sigma.mean()).astype(np.float32), cfg, seed=0)
    assert raw.accuracy > max(0.4, normed.accuracy + 0.15)  # the shortcut exists without the normalisation


def test_tiny_mock_end_to_end_beats_constant(mock):
    clusters, images = mock
    res = train_stage1(images, S1, seed=0)
    assert res.confusion.shape == (5, 5) and res.confusion.sum() == 5 * res.n_holdout
    assert len(res.history) == S1.epochs
    feats = extract_features(res.model.trunk, images, tta=True)
    assert feats.shape == (len(clusters), 5 * res.model.trunk.n_features)
    y = clusters["log10_m500"].to_numpy()
    aux = aux_inputs(clusters["richness"].to_numpy(), clusters["z"].to_numpy())
    cv = cross_validate(feats, aux, y, clusters["id"].to_numpy(), S2, seed=0, hybrid=True)
    assert np.isfinite(cv.oof).all() and len(cv.fits) == 5
    constant = np.mean(np.abs(y - np.median(y)))
    assert np.mean(np.abs(cv.oof - y)) < 0.8 * constant


def test_folds_shared_with_baseline(mock):
    clusters, images = mock
    feats = np.random.default_rng(0).normal(size=(len(clusters), 10)).astype(np.float32)
    data = workflow.LabelledData(clusters.assign(source="mcxc"), feats,
                                 aux_inputs(clusters["richness"].to_numpy(), clusters["z"].to_numpy()), 0)
    cfg = replace(S2, max_epochs=5)
    ids, y = clusters["id"].to_numpy(), clusters["log10_m500"].to_numpy()
    ref = baseline.cross_validate(ids, clusters["richness"].to_numpy(), clusters["z"].to_numpy(), y, 5, 7)
    oof_r, fold_r, _ = workflow.cv_predictions(data, cfg, "richness", 7)
    oof_c, fold_c, _ = workflow.cv_predictions(data, cfg, "cnn", 7)
    np.testing.assert_array_equal(fold_r, ref["fold"])
    np.testing.assert_array_equal(fold_c, fold_of(ids, 5, 7))
    np.testing.assert_array_equal(fold_c, fold_r)
    np.testing.assert_allclose(oof_r, ref["predicted"])


def test_same_seed_same_metrics(mock):
    clusters, images = mock
    sub = images[:40]
    a, b = train_stage1(sub, S1, seed=3), train_stage1(sub, S1, seed=3)
    assert a.history == b.history
    for (k, va), vb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(va, vb), k
    c = train_stage1(sub, S1, seed=4)
    assert c.history != a.history
    feats = extract_features(a.model.trunk, images, tta=False)
    y = clusters["log10_m500"].to_numpy()
    aux = aux_inputs(clusters["richness"].to_numpy(), clusters["z"].to_numpy())
    r1 = cross_validate(feats, aux, y, clusters["id"].to_numpy(), S2, seed=1)
    r2 = cross_validate(feats, aux, y, clusters["id"].to_numpy(), S2, seed=1)
    np.testing.assert_array_equal(r1.oof, r2.oof)


def test_confusion_matrix():
    cm = confusion_matrix(np.array([0, 1, 1, 4]), np.array([0, 1, 2, 4]))
    assert cm[1, 2] == 1 and cm[1, 1] == 1 and cm.trace() == 3 and cm.sum() == 4


def test_ridge_heads_choose_their_penalty_and_round_trip():
    """Linear heads: uninformative features are shrunk away (hybrid -> the richness relation),
    informative ones are used; the fitted head survives a state-dict round trip."""
    from clustermass.model.registry import build_head
    from clustermass.model.train import RIDGE_ALPHAS

    rng = np.random.default_rng(0)
    n = 300
    ids = np.arange(1, n + 1)
    lam, z = 20.0 * (1.0 + rng.pareto(1.5, n)), rng.uniform(0.1, 0.45, n)
    aux = aux_inputs(lam, z)
    signal = rng.normal(size=n)
    y = 14.3 + 0.8 * aux[:, 0] + 0.8 * aux[:, 1] + 0.1 * signal + rng.normal(0, 0.05, n)
    noise = rng.normal(size=(n, 40)).astype(np.float32)
    cfg = replace(S2, head="ridge")

    ref = baseline.cross_validate(ids, lam, z, y, 5, 0)["predicted"]
    blind = cross_validate(noise, aux, y, ids, cfg, seed=0, hybrid=True)
    assert all(f.penalty >= 100 for f in blind.fits)  # noise features are shrunk hard
    assert np.mean(np.abs(blind.oof - y)) < 1.05 * np.mean(np.abs(ref - y))

    informative = np.hstack([noise, signal[:, None].astype(np.float32)])
    seen = cross_validate(informative, aux, y, ids, cfg, seed=0, hybrid=True)
    assert np.mean(np.abs(seen.oof - y)) < 0.8 * np.mean(np.abs(ref - y))  # it uses the image-like signal
    assert all(f.penalty in RIDGE_ALPHAS and f.history == [] for f in seen.fits)

    with pytest.raises(ConfigError, match="stage2.head is 'forest'"):
        cross_validate(noise, aux, y, ids, replace(cfg, head="forest"))

    fit = seen.fits[0]
    arch = {"n_in": informative.shape[1], "hidden": 0, "dropout": 0.0}
    again = build_head(arch, hybrid=True, state=fit.head.state_dict())
    with torch.no_grad():
        a = fit.head(torch.from_numpy(informative), torch.from_numpy(aux))
        b = again(torch.from_numpy(informative), torch.from_numpy(aux))
    torch.testing.assert_close(a, b)


def test_finetuning_keeps_its_best_epoch_and_its_trunk_makes_the_predictions(mock):
    """Fine-tuned folds: the kept (trunk, head) is the epoch best on the inner split, the trunk moves
    when that epoch is > 0, the out-of-fold predictions come from that fold's own trunk, and
    the same seed gives the same result."""
    from clustermass.model.inference import head_predict
    from clustermass.model.train import FineTune

    clusters, images = mock
    trunk = train_stage1(images, S1, seed=0).model.trunk
    feats = extract_features(trunk, images, tta=False)
    y = clusters["log10_m500"].to_numpy()
    ids = clusters["id"].to_numpy()
    aux = aux_inputs(clusters["richness"].to_numpy(), clusters["z"].to_numpy())
    cfg = replace(S2, head="ridge", finetune_epochs=4, finetune_lr=3e-3)
    tune = FineTune(images, trunk, tta=False)
    cv = cross_validate(feats, aux, y, ids, cfg, seed=0, hybrid=True, finetune=tune)
    start = {k: v.clone() for k, v in trunk.state_dict().items()}
    moved = 0
    for i, fit in enumerate(cv.fits):
        val = [h["val_mae"] for h in fit.history]
        assert [h["epoch"] for h in fit.history] == [0, 1, 2, 3, 4]
        assert fit.best_epoch == int(np.argmin(val)) and fit.info["finetune_epoch"] == fit.best_epoch
        same = all(torch.equal(fit.trunk[k], start[k]) for k in start)
        assert same == (fit.best_epoch == 0)
        moved += not same
        own = Trunk(width=S1.width, blocks=S1.blocks)
        own.load_state_dict(fit.trunk)
        test = cv.fold == i
        np.testing.assert_allclose(head_predict(fit.head, extract_features(own, images[test], tta=False), aux[test]),
                                   cv.oof[test], rtol=0, atol=1e-5)
    assert moved >= 1  # fine-tuning helped on the inner split of at least one fold
    assert all(torch.equal(v, start[k]) for k, v in trunk.state_dict().items())  # the stage-1 trunk is untouched
    again = cross_validate(feats, aux, y, ids, cfg, seed=0, hybrid=True, finetune=tune)
    np.testing.assert_array_equal(again.oof, cv.oof)
    with pytest.raises(ValueError, match="needs the images and trunk"):
        cross_validate(feats, aux, y, ids, cfg, seed=0)
    with pytest.raises(ConfigError, match="finetune_epochs is -1"):
        cross_validate(feats, aux, y, ids, replace(cfg, finetune_epochs=-1), seed=0)


def test_a_ridge_head_leaves_the_bcg_fits_unpenalised():
    """Among 600 noise features the ridge picks a large penalty; the BCG fit's two columns (last) carry the signal.
    With photometry 'bcgfit' they keep their full slope; as ordinary features they are shrunk with the rest."""
    from clustermass.model.inference import head_predict
    from clustermass.model.train import fit_ridge

    rng = np.random.default_rng(0)
    n = 200
    bcg = rng.normal(0.0, 1.0, (n, 2))
    feats = np.hstack([rng.normal(0.0, 1.0, (n, 600)), bcg]).astype(np.float32)
    y = 14.0 - 0.2 * bcg[:, 0] + rng.normal(0.0, 0.05, n)
    aux = np.zeros((n, 3), np.float32)
    probe = np.zeros((2, 602), np.float32)
    probe[1, 600] = 1.0  # one unit brighter BCG, nothing else
    slopes = {}
    for which in ((), ("bcgfit",)):
        cfg = replace(tiny_train_config().stage2, head="ridge", photometry=which)
        head = fit_ridge(feats, aux, y, cfg, 0, hybrid=False).head
        p = head_predict(head, probe, None)
        slopes[which] = float(p[1] - p[0])
    assert abs(slopes[("bcgfit",)] + 0.2) < 0.01
    assert abs(slopes[()]) < 0.5 * 0.2
