"""Explanations: IG completeness, Grad-CAM band order, a toy model's known region, the joint map,
enrichment on a case with a known answer, the figures, and `cmcat explain` end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from pipeline_helpers import add_clusters
from torch import nn

from clustermass.model import registry
from clustermass.model.explain import (
    EnsembleMass,
    disk_mask,
    enrichment,
    explain_image,
    grad_cam,
    integrated_gradients,
    joint_map,
    member_enrichment,
)
from clustermass.model.networks import BandClassifier, MassHead, Trunk
from clustermass.model.preprocess import normalise

torch.set_num_threads(1)
SIZE = 32


def _head(n_in: int, hybrid: bool = False) -> MassHead:
    """A head with every linear layer randomly initialised (however MassHead initialises itself),
    so that its output depends on the image."""
    head = MassHead(n_in, hidden=8, dropout=0.0, hybrid=hybrid)
    for m in head.modules():
        if isinstance(m, nn.Linear):
            m.reset_parameters()
    return head


def _nets(seed: int = 0, hybrid: bool = False) -> tuple[EnsembleMass, BandClassifier]:
    torch.manual_seed(seed)
    trunk = Trunk(width=4, blocks=(1, 1))
    heads = [_head(5 * trunk.n_features, hybrid) for _ in range(2)]
    for i, h in enumerate(heads):
        h.y_mean.fill_(14.0 + 0.1 * i)
        h.y_std.fill_(0.5)
    return EnsembleMass([trunk], heads).eval(), BandClassifier(trunk).eval()


def _image(seed: int = 1) -> np.ndarray:
    """A normalised-looking cutout: unit noise plus a few bright blobs."""
    rng = np.random.default_rng(seed)
    img = rng.normal(0.0, 1.0, (5, SIZE, SIZE))
    yy, xx = np.mgrid[:SIZE, :SIZE]
    for x0, y0 in rng.uniform(4, SIZE - 4, (6, 2)):
        img += 4.0 * np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / 4.0)
    return img.astype(np.float32)


@pytest.mark.parametrize("hybrid", [False, True])
def test_ig_completeness_within_5_percent(hybrid):
    reg, _ = _nets(hybrid=hybrid)
    img = _image()
    aux = np.array([0.2, 0.05, 0.0025], np.float32)
    res = integrated_gradients(reg, img, aux)
    with torch.no_grad():
        a = torch.from_numpy(aux[None])
        fx = float(reg(torch.from_numpy(img[None]), a)[0])
        fb = float(reg(torch.zeros(1, 5, SIZE, SIZE), a)[0])
    assert res.attributions.shape == (5, SIZE, SIZE)
    assert res.prediction == pytest.approx(fx, abs=1e-5) and res.baseline_prediction == pytest.approx(fb, abs=1e-5)
    assert abs(fx - fb) > 1e-3  # the check below is meaningful
    assert abs(res.attributions.sum() - (fx - fb)) <= 0.05 * abs(fx - fb)
    assert res.completeness_error <= 0.05


class RegionModel(nn.Module):
    """A toy 'mass' that depends only on the i band (index 3) in one 4x4 box."""

    box = (slice(10, 14), slice(20, 24))

    def forward(self, images: torch.Tensor, aux: torch.Tensor | None = None) -> torch.Tensor:
        return 14.0 + 0.05 * (images[:, 3, self.box[0], self.box[1]] ** 2).sum(dim=(1, 2))


def test_toy_model_attribution_lies_in_its_region_and_band():
    img = _image(2)
    res = integrated_gradients(RegionModel(), img)
    mag = np.abs(res.attributions)
    in_box = mag[3, RegionModel.box[0], RegionModel.box[1]].sum()
    assert in_box / mag.sum() > 0.999
    assert np.all(mag[[0, 1, 2, 4]] == 0)  # band order: nothing leaks to u, g, r, z
    # the joint map keeps the location: with a flat CAM it is |IG| normalised
    joint = joint_map(res.attributions, np.ones_like(res.attributions))
    mask = np.zeros((SIZE, SIZE), bool)
    mask[RegionModel.box] = True
    assert enrichment(joint.sum(0), mask) == pytest.approx(SIZE * SIZE / 16, rel=1e-3)


def test_grad_cam_shapes_nonnegative_and_band_order():
    _, clf = _nets()
    with torch.no_grad():  # logit of class b = (b + 1) x logit of class 0: CAM of band b is (b + 1) x CAM of band 0
        clf.fc.weight.copy_(torch.arange(1, 6, dtype=torch.float32)[:, None] * clf.fc.weight[0:1])
        clf.fc.bias.zero_()
    same = np.repeat(_image(3)[:1], 5, axis=0)
    cam = grad_cam(clf, same)
    assert cam.shape == (5, SIZE, SIZE) and np.all(cam >= 0) and cam[0].max() > 0
    for b in range(5):
        np.testing.assert_allclose(cam[b], (b + 1) * cam[0], rtol=1e-4, atol=1e-7)
    e = explain_image(*_nets(), _image(), np.array([0.0, 0.0], np.float32))
    assert e.ig.attributions.shape == e.cam.shape == e.joint.shape == (5, SIZE, SIZE)
    assert e.joint_sum.shape == (SIZE, SIZE)


def test_joint_map_normalisation():
    ig = np.zeros((5, 4, 4))
    ig[1, 0, 0], ig[2, 1, 1], ig[4, 3, 3] = -2.0, 1.0, 1.0
    cam = np.zeros((5, 4, 4))
    cam[1] = 4.0  # flat: weight 1 everywhere
    cam[2, 1, 1], cam[2, 0, 0] = 1.0, 2.0  # weight 0.5 at (1, 1)
    # band 4 has an all-zero CAM: weight 0
    j = joint_map(ig, cam)
    assert j[1, 0, 0] == pytest.approx(0.5) and j[2, 1, 1] == pytest.approx(0.125) and j[4].sum() == 0
    assert j.min() >= 0


def test_enrichment_known_answers():
    shape = (20, 20)
    m = disk_mask(np.array([5.0]), np.array([5.0]), shape, 1.5)
    assert m.sum() == 9 and m[5, 5] and m[6, 6] and not m[5, 7]
    assert disk_mask(np.array([]), np.array([]), shape).sum() == 0
    attr = np.zeros(shape)
    attr[m] = 1.0
    attr[15, 15] = -5.0  # negative attribution is ignored
    assert enrichment(attr, m) == pytest.approx(400 / 9)
    attr2 = np.ones(shape)
    attr2[:10, :10] = 3.0  # half the (positive) attribution on a quarter of the area: 0.5 / 0.25 = 2
    quarter = np.zeros(shape, bool)
    quarter[:10, :10] = True
    assert enrichment(attr2, quarter) == pytest.approx(2.0)
    assert enrichment(np.ones(shape), quarter) == pytest.approx(1.0)
    assert np.isnan(enrichment(-np.ones(shape), quarter))
    scores = member_enrichment(attr, np.array([5.0, 15.0]), np.array([5.0, 15.0]), 1.5)
    assert scores["enrichment_bcg"] == pytest.approx(400 / 9)  # the BCG is the first position
    assert scores["enrichment_members"] == pytest.approx(400 / 18) and scores["area_members"] == pytest.approx(18 / 400)


def test_figures_are_written(tmp_path):
    import pandas as pd

    from clustermass.model.preprocess import colour_composite
    from clustermass.plots.explain import plot_enrichment, plot_explanation

    raw = np.abs(_image(4)).astype(np.float32) * 0.1 + 0.01
    e = explain_image(*_nets(), _image(4))
    png = plot_explanation(colour_composite(raw), e.joint, e.ig.attributions, e.cam, tmp_path / "x.png", "test", e.ig.prediction, 14.2,
                           members_xy=np.array([[16.0, 3.0], [16.0, 9.0]]))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    res = pd.DataFrame({"log10_m500_true": [14.0, 14.5], "log10_m500_pred": [14.1, 14.4], "z": [0.2, 0.4],
                        "enrichment_members": [3.5, 5.0], "enrichment_bcg": [10.0, 20.0]})
    out = plot_enrichment(res, tmp_path / "e.png")
    assert out.read_bytes()[:4] == b"\x89PNG" and out.stat().st_size > 10_000


# --------------------------------------------------------------------------- end to end


def _register_tiny(db, settings, held_out: dict[int, int] | None = None) -> str:
    """A tiny untrained-but-valid band classifier + CNN ensemble through the registry (trained on
    the labels of the clusters in `held_out`: cluster id -> fold)."""
    torch.manual_seed(0)
    trunk = Trunk(width=4, blocks=(1, 1))
    clf = BandClassifier(trunk)
    arch = {"width": 4, "blocks": [1, 1], "n_in": 5 * trunk.n_features, "hidden": 8, "dropout": 0.0}
    grid = {"size": SIZE, "aperture_mpc": 1.5, "aperture_arcsec": None}
    registry.save_model(db, settings, name="bc-tiny", kind="band-classifier", config={"arch": arch, "grid": grid, "softening": 3.0},
                        metrics={}, training={}, weights={"classifier": clf.state_dict(), "trunk": trunk.state_dict()})
    heads = [_head(arch["n_in"]) for _ in range(2)]
    for h in heads:
        h.y_mean.fill_(14.3)
        h.y_std.fill_(0.3)
    oof = {"cluster_id": list((held_out or {}).keys()), "fold": list((held_out or {}).values())}
    registry.save_model(db, settings, name="cnn-tiny", kind="cnn",
                        config={"arch": arch, "grid": grid, "softening": 3.0, "tta": True},
                        metrics={"cv_scatter": 0.2}, training={"trunk_model": "bc-tiny", "oof": oof},
                        weights={"trunk": trunk.state_dict(), "heads": [h.state_dict() for h in heads]})
    return "cnn-tiny"


def test_cmcat_explain_one_cluster(cli, db, settings, tmp_path):

    model = _register_tiny(db, settings)
    clusters = add_clusters(db, 3, seed=5, ra=(180.0, 180.5), dec=(20.0, 20.5))
    cid = int(clusters["id"].iloc[0])
    out = tmp_path / "explain"
    res = json.loads(cli("explain", str(cid), "--model", model, "--out", str(out), "--json").stdout)
    png, npz = out / f"explain-{cid}-model2.png", out / f"explain-{cid}-model2.npz"
    assert res["png"] == str(png) and png.stat().st_size > 20_000
    maps = np.load(npz)
    assert list(maps["bands"]) == list("ugriz")
    for key in ("image", "ig", "cam", "joint"):
        assert maps[key].shape == (5, SIZE, SIZE)
    assert res["completeness_error"] <= 0.05
    # the mock source synthesised this cluster from its richness: its members are known, the BCG among them
    assert res["n_members"] >= 1 and 0 < res["area_bcg"] <= res["area_members"] < 1
    assert res["enrichment_members"] is not None and res["log10_m500_true"] is not None
    assert res["log10_m500_pred"] == pytest.approx(float(maps["log10_m500_pred"]))
    # by name gives the same cluster; an unknown cluster and a model without images are clear errors
    by_name = json.loads(cli("explain", "C00000", "--model", model, "--out", str(out), "--json").stdout)
    assert by_name["cluster_id"] == cid and by_name["log10_m500_pred"] == pytest.approx(res["log10_m500_pred"])
    bad = cli("explain", "nope", "--model", model, ok=False)
    assert bad.exit_code != 0 and "no cluster with id or name 'nope'" in str(bad.exception)
    registry.save_model(db, settings, name="rich", kind="richness", config={"coef": [14.0, 1.0, 0.0]}, metrics={}, training={})
    bad = cli("explain", str(cid), "--model", "rich", ok=False)
    assert "nothing to explain" in str(bad.exception)


def test_cmcat_explain_of_a_trained_on_cluster_uses_the_head_that_held_it_out(cli, db, settings, tmp_path):
    clusters = add_clusters(db, 2, seed=5, ra=(180.0, 180.5), dec=(20.0, 20.5))
    trained, other = (int(c) for c in clusters["id"])
    model = _register_tiny(db, settings, held_out={trained: 1})
    pred = registry.load_predictor(db, settings, model)
    for cid, fold in ((trained, 1), (other, None)):
        res = json.loads(cli("explain", str(cid), "--model", model, "--out", str(tmp_path), "--json").stdout)
        x = torch.from_numpy(normalise(np.load(tmp_path / f"explain-{cid}-model2.npz")["image"], 3.0)[None])
        with torch.no_grad():
            by_head = [float(EnsembleMass(pred.trunks, [h])(x)[0]) for h in pred.heads]
        assert abs(by_head[1] - by_head[0]) > 1e-3  # the heads differ, so which one was used shows
        assert res["fold"] == fold
        expected = by_head[1] if fold == 1 else np.mean(by_head)
        assert res["log10_m500_pred"] == pytest.approx(expected, abs=1e-5)


@pytest.mark.slow
def test_cmcat_explain_tiles_summary_on_dask(cli, db, settings, tmp_path):

    model = _register_tiny(db, settings)
    add_clusters(db, 4, seed=6, ra=(180.0, 181.0), dec=(20.0, 21.0))
    out = tmp_path / "batch"
    args = ("explain", "--tiles", "0", "--model", model, "--out", str(out), "--summary", "--workers", "1", "--json")
    res = json.loads(cli(*args).stdout)
    assert res["status"] == "done" and res["n_explained"] == 4 and res["n_with_truth"] == 4
    assert res["completeness_error_max"] <= 0.05 and res["enrichment_members_mean"] > 0
    assert (out / f"run-{res['run_id']}" / "enrichment.png").stat().st_size > 10_000
    again = json.loads(cli(*args).stdout)  # resumable: the same command redoes nothing and reads the same results
    assert again["run_id"] == res["run_id"] and again["enrichment_members_mean"] == pytest.approx(res["enrichment_members_mean"])
