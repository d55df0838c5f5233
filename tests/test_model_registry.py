"""Registry round trip on a real PostgreSQL: save, list, resolve, load a predictor, detect tampering."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from clustermass.errors import ModelError
from clustermass.model import registry
from clustermass.model.calibration import Calibration
from clustermass.model.datasets import aux_inputs
from clustermass.model.inference import extract_features, head_predict
from clustermass.model.networks import MassHead, Trunk
from clustermass.model.photometry import n_photometric_features
from clustermass.model.preprocess import normalise

ARCH = {"width": 4, "blocks": [1, 1], "hidden": 8, "dropout": 0.0}


def _save_cnn(db, settings, name: str = "cnn-test", kind: str = "cnn", fold_trunks: list[Trunk] | None = None,
              metrics: dict | None = None, training: dict | None = None, photometry: tuple[str, ...] = ()):
    torch.manual_seed(0)
    trunk = Trunk(width=4, blocks=(1, 1))
    arch = {**ARCH, "n_in": 5 * trunk.n_features + n_photometric_features(photometry)}
    if photometry:
        arch["photometry"] = list(photometry)
    heads = [MassHead(arch["n_in"], hidden=8, dropout=0.0, hybrid=kind == "hybrid") for _ in range(3)]
    for i, h in enumerate(heads):
        h.y_mean.fill_(14.0 + 0.01 * i)
    config = {"arch": arch, "grid": {"size": 16, "aperture_mpc": 1.5, "aperture_arcsec": None}, "softening": 3.0, "tta": False}
    weights = {"trunk": trunk.state_dict(), "heads": [h.state_dict() for h in heads]}
    if fold_trunks is not None:
        weights["fold_trunks"] = [t.state_dict() for t in fold_trunks]
    return registry.save_model(
        db, settings, name=name, kind=kind, config=config, metrics=metrics or {"cv_scatter": 0.2, "cv": {"mae": 0.25}},
        training=training or {"n_labels": 3}, weights=weights,
    )


def _clusters(n: int) -> pd.DataFrame:
    return pd.DataFrame({"id": np.arange(1, n + 1), "ra": 10.0, "dec": 0.0, "z": 0.3, "richness": 40.0})


def test_round_trip_and_ensemble_error(db, settings):
    rec = _save_cnn(db, settings, kind="hybrid")
    assert registry.weights_file(settings, rec).parent == settings.model_dir
    assert [m.name for m in registry.list_models(db)] == ["cnn-test"]
    assert registry.get_model(db, "hybrid").id == rec.id == registry.get_model(db, str(rec.id)).id
    pred = registry.load_predictor(db, settings, "cnn-test")
    assert pred.needs_images and pred.grid.size == 16
    images = np.random.default_rng(1).normal(1.0, 0.1, size=(4, 5, 16, 16)).astype(np.float32)
    m, err = pred.predict(images, _clusters(4))
    assert m.shape == err.shape == (4,)
    # registered without a calibration: its CV scatter is every cluster's error
    np.testing.assert_allclose(err, 0.2)
    assert np.all(np.abs(m - 14.01) < 1.0)
    with pytest.raises(ModelError, match="shape"):
        pred.predict(images[:, :, :8, :8], _clusters(4))


def test_checksum_mismatch_is_detected(db, settings):
    rec = _save_cnn(db, settings)
    path = registry.weights_file(settings, rec)
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="checksum"):
        registry.load_predictor(db, settings, rec.id)
    path.unlink()
    with pytest.raises(ModelError, match="missing"):
        registry.load_predictor(db, settings, rec.id)


def test_unknown_and_duplicate_models(db, settings):
    with pytest.raises(ModelError, match="no model 'nope'"):
        registry.get_model(db, "nope")
    _save_cnn(db, settings)
    with pytest.raises(ModelError, match="already exists"):
        _save_cnn(db, settings)


def test_fine_tuned_ensembles_pair_each_head_with_its_own_trunk(db, settings):
    torch.manual_seed(1)
    trunks = [Trunk(width=4, blocks=(1, 1)) for _ in range(3)]
    pred = registry.load_predictor(db, settings, _save_cnn(db, settings, kind="hybrid", fold_trunks=trunks).id)
    assert len(pred.trunks) == 3 and len(pred.heads) == 3
    images = np.random.default_rng(1).normal(1.0, 0.1, size=(4, 5, 16, 16)).astype(np.float32)
    clusters = _clusters(4)
    m, _ = pred.predict(images, clusters)
    x, aux = normalise(images, 3.0), aux_inputs(clusters["richness"].to_numpy(), clusters["z"].to_numpy())
    by_fold = [head_predict(h, extract_features(t.eval(), x, tta=False), aux) for t, h in zip(trunks, pred.heads)]
    np.testing.assert_allclose(m, np.mean(by_fold, axis=0), atol=1e-6)
    shared = registry.load_predictor(db, settings, _save_cnn(db, settings, name="shared", kind="hybrid").id)
    assert len(shared.trunks) == 1
    assert not np.allclose(shared.predict(images, clusters)[0], m)  # the fold trunks were used, not the shared one


def test_trained_on_clusters_get_their_held_out_head_and_calibrated_errors(db, settings):
    cal = Calibration((float(np.log(0.1)), -0.5, 0.0), (-1.0, -1.0), (1.0, 1.0))
    oof = {"cluster_id": [1, 2], "fold": [2, 0], "pred": [0.0, 0.0]}
    rec = _save_cnn(db, settings, kind="hybrid", metrics={"calibration": cal.as_dict()}, training={"oof": oof})
    pred = registry.load_predictor(db, settings, rec.id)
    images = np.random.default_rng(1).normal(1.0, 0.1, size=(4, 5, 16, 16)).astype(np.float32)
    clusters = _clusters(4).assign(richness=[20.0, 40.0, 80.0, 160.0])
    m, err = pred.predict(images, clusters)
    x, aux = normalise(images, 3.0), aux_inputs(clusters["richness"].to_numpy(), clusters["z"].to_numpy())
    by_head = np.stack([head_predict(h, extract_features(pred.trunks[0], x, tta=False), aux) for h in pred.heads])
    np.testing.assert_array_equal(pred.folds(clusters["id"].to_numpy()), [2, 0, -1, -1])
    np.testing.assert_allclose(m, [by_head[2, 0], by_head[0, 1], *by_head.mean(0)[2:]], atol=1e-6)
    np.testing.assert_allclose(err, cal.sigma(clusters["richness"].to_numpy(), clusters["z"].to_numpy()))
    assert err[0] > err[1] > err[2]  # sigma falls with richness here


def test_hybrids_saved_before_the_z2_input_still_predict_from_two_catalogue_inputs(db, settings):
    """Heads saved with 2 aux inputs (log10 lambda, x; no x^2) load with their shapes and read the
    first two columns of today's aux inputs."""
    torch.manual_seed(2)
    trunk = Trunk(width=4, blocks=(1, 1))
    arch = {**ARCH, "n_in": 5 * trunk.n_features}
    heads = [MassHead(arch["n_in"], hidden=8, dropout=0.0, hybrid=True, n_aux=2) for _ in range(2)]
    for h in heads:
        h.aux_mean.copy_(torch.tensor([0.1, -0.02]))
        h.aux_std.copy_(torch.tensor([0.3, 0.05]))
    config = {"arch": arch, "grid": {"size": 16, "aperture_mpc": 1.5, "aperture_arcsec": None}, "softening": 3.0,
              "tta": False}
    rec = registry.save_model(db, settings, name="old-hybrid", kind="hybrid", config=config,
                              metrics={"cv_scatter": 0.2}, training={"n_labels": 3},
                              weights={"trunk": trunk.state_dict(), "heads": [h.state_dict() for h in heads]})
    pred = registry.load_predictor(db, settings, rec.id)
    assert [h.n_aux for h in pred.heads] == [2, 2]
    images = np.random.default_rng(1).normal(1.0, 0.1, size=(4, 5, 16, 16)).astype(np.float32)
    clusters = _clusters(4).assign(richness=[20.0, 40.0, 80.0, 160.0], z=[0.1, 0.3, 0.45, 0.6])
    m, _ = pred.predict(images, clusters)
    feats = extract_features(trunk.eval(), normalise(images, 3.0), tta=False)
    two = aux_inputs(clusters["richness"].to_numpy(), clusters["z"].to_numpy())[:, :2]
    with torch.no_grad():
        expected = np.mean([h.eval()(torch.from_numpy(feats), torch.from_numpy(two)).numpy() for h in heads], axis=0)
    np.testing.assert_allclose(m, expected, atol=1e-5)


def test_richness_model_predicts_trained_on_clusters_with_the_relation_of_their_fold(db, settings):
    # fold relations registered before the z^2 term (3 coefficients) and after it (4)
    coef, fold_coef = [14.3, 1.0, 0.0, -20.0], [[14.0, 1.0, 0.0], [14.5, 1.0, 0.0, 5.0]]
    registry.save_model(db, settings, name="rich", kind="richness", config={"coef": coef, "fold_coef": fold_coef},
                        metrics={"cv_scatter": 0.2}, training={"oof": {"cluster_id": [2, 3], "fold": [1, 0]}})
    pred = registry.load_predictor(db, settings, "rich")
    clusters = _clusters(3).assign(z=0.6)  # lambda = 40: the intercept, x = log10(1.6 / 1.35) and x^2
    m, err = pred.predict(None, clusters)
    x = np.log10(1.6 / 1.35)
    np.testing.assert_allclose(m, [14.3 - 20.0 * x**2, 14.5 + 5.0 * x**2, 14.0], atol=1e-9)
    np.testing.assert_array_equal(pred.folds(clusters["id"].to_numpy()), [-1, 1, 0])
    np.testing.assert_allclose(err, 0.2)


def test_photometry_models_predict_from_calibrated_cutouts_and_are_not_explained(db, settings):
    """A model whose heads read photometry predicts (its features built from the raw cutouts), but
    `cmcat explain`, whose maps attribute the normalised images only, refuses it."""
    from clustermass.pipeline.explain import load_explain_model

    rec = _save_cnn(db, settings, name="phot", kind="hybrid", photometry=("bcg",))
    pred = registry.load_predictor(db, settings, rec.id)
    assert pred.photometry == ("bcg",)
    m, _ = pred.predict(np.random.default_rng(1).normal(1.0, 0.1, size=(4, 5, 16, 16)).astype(np.float32), _clusters(4))
    assert np.all(np.isfinite(m))
    with pytest.raises(ModelError, match="reads photometric features"):
        load_explain_model(db, settings, rec.id)
