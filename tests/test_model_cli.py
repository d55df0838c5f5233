"""`cmcat train / evaluate / models list / learning-curve` on a real PostgreSQL with mock cutouts."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from clustermass.errors import ModelError
from clustermass.model import registry
from clustermass.model.bcgfit import FINE_GRID
from clustermass.model.calibration import passes
from clustermass.model.data import labelled_clusters
from clustermass.model.registry import RichnessPredictor
from clustermass.model.train import RIDGE_ALPHAS
from clustermass.model.trainconfig import load_train_config
from model_helpers import load_into_db, mock_clusters, mock_images, tiny_config


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.mark.slow
def test_train_evaluate_list_and_predict(cli, db, settings, tmp_path):
    clusters = mock_clusters(40, seed=1)
    load_into_db(db, clusters)
    cfg = tiny_config(tmp_path)
    out = json.loads(cli("train", "--config", str(cfg), "--seed", "2", "--json").stdout)
    kinds = [m["kind"] for m in out["models"]]
    assert kinds == ["band-classifier", "cnn", "hybrid", "richness"]
    assert all(m["trained"] for m in out["models"])
    assert out["models"][1]["n_labels"] == 40
    # same data, config and seed: nothing is trained again
    again = json.loads(cli("train", "--config", str(cfg), "--seed", "2", "--json").stdout)
    assert [m["name"] for m in again["models"]] == [m["name"] for m in out["models"]]
    assert not any(m["trained"] for m in again["models"])
    # the richness relation (all labels and each fold's) and the hybrid's catalogue inputs carry the z^2 term
    rich = registry.get_model(db, "richness").config
    assert len(rich["coef"]) == 4 and [len(c) for c in rich["fold_coef"]] == [4] * 5
    assert [h.n_aux for h in registry.load_predictor(db, settings, "hybrid").heads] == [3] * 5
    # the cutouts went through the store
    with db.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM cutouts WHERE status = 'ok'").scalar_one() == 40

    ev = json.loads(cli("evaluate", "hybrid", "--json", "--out", str(tmp_path / "plots")).stdout)
    rows = [r for r in ev["rows"] if r["subset"] == "all" and r["reference"] == "label"]
    assert sorted(r["model"] for r in rows) == ["cnn", "hybrid", "richness"]
    assert {r["n"] for r in rows} == {40}  # same clusters for every model
    assert {r["subset"] for r in ev["rows"]} >= {"fold 0", "fold 4", "source mcxc", "source psz2"}
    assert all((tmp_path / "plots").joinpath(p.split("/")[-1]).is_file() for p in ev["plots"])
    assert any("band-confusion" in p for p in ev["plots"])
    # error coverage on every row, with its binomial interval, overall and in thirds of mass and z
    assert {r["subset"] for r in ev["rows"]} >= {"mass low", "mass mid", "mass high", "z low", "z mid", "z high"}
    for r in rows:
        assert 0 < r["coverage68"] < r["coverage95"] <= 1
        assert r["coverage68_ci"][0] <= r["coverage68"] <= r["coverage68_ci"][1]
    assert [r["n"] for r in ev["rows"] if r["model"] == "hybrid" and r["subset"].startswith("mass ")] == [14, 13, 13]
    shown = " ".join(cli("evaluate", "hybrid", "--out", str(tmp_path / "plots")).stdout.split())  # at 80 columns
    assert "error coverage" in shown and "within 1.96" in shown and "z high" in shown  # headers wrap too

    # predict: the labelled clusters get the prediction of the fold that held them out, so the MAE
    # against their labels in SQL is the cross-validated MAE of `cmcat evaluate`
    for kind in ("richness", "cnn", "hybrid"):
        cli("predict", "--tiles", "0", "--model", kind, "--workers", "1", "--json")
    with db.connect() as conn:
        sql = conn.exec_driver_sql(
            "SELECT m.kind, avg(abs(p.log10_m500 - l.log10_m500)), count(*) FROM predictions p "
            "JOIN labels l ON l.cluster_id = p.cluster_id JOIN models m ON m.id = p.model_id "
            "WHERE p.fold IS NOT NULL GROUP BY m.kind").all()
        n_folds = conn.exec_driver_sql("SELECT count(DISTINCT fold) FROM predictions").scalar_one()
        # a model with a population relation writes the population mass beside every prediction, and none otherwise
        mismatched = conn.exec_driver_sql(
            "SELECT count(*) FROM predictions p JOIN models m ON m.id = p.model_id "
            "WHERE (jsonb_typeof(m.metrics->'population') = 'object') <> (p.population_log10_m500 IS NOT NULL)").scalar_one()
        n_population = conn.exec_driver_sql(
            "SELECT count(*) FROM predictions WHERE population_log10_m500 IS NOT NULL").scalar_one()
    assert mismatched == 0 and n_population > 0
    cv_mae = {r["model"]: r["mae"] for r in rows}
    assert {kind for kind, _, _ in sql} == set(cv_mae) and {n for _, _, n in sql} == {40} and n_folds == 5
    for kind, mae, _ in sql:
        assert abs(float(mae) - cv_mae[kind]) < 0.001, (kind, mae, cv_mae[kind])

    listed = json.loads(cli("models", "list", "--json").stdout)
    assert [m["kind"] for m in listed] == kinds

    # the registered ensembles predict from cutouts; richness from the catalogue alone
    hyb = registry.load_predictor(db, settings, "hybrid")
    m, err = hyb.predict(mock_images(clusters.iloc[:4]), clusters.iloc[:4])
    assert m.shape == (4,) and np.all(np.isfinite(m)) and np.all(err > 0)
    rich = registry.load_predictor(db, settings, "richness")
    assert isinstance(rich, RichnessPredictor) and not rich.needs_images
    m_r, _ = rich.predict(None, clusters)
    assert np.mean(np.abs(m_r - clusters["log10_m500"])) < np.mean(np.abs(clusters["log10_m500"] - clusters["log10_m500"].median()))

    curve = json.loads(cli("learning-curve", "--model", "hybrid", "--sizes", "20,40", "--json",
                           "--out", str(tmp_path / "lc.png")).stdout)
    assert [r["n_labels"] for r in curve["curve"]] == [20, 40]
    assert (tmp_path / "lc.png").is_file()


def test_evaluate_reports_error_coverage_overall_and_in_thirds(cli, db, settings, tmp_path):
    clusters = mock_clusters(90, seed=4)
    load_into_db(db, clusters, label_noise=0.1)
    labels = labelled_clusters(db)
    y, rng = labels["log10_m500"].to_numpy(), np.random.default_rng(0)
    # richness: residuals of 0.2 dex against the labels; hybrid: 0.02 dex, far inside the 0.16 dex
    # assumed for labels without an error of their own, so its intervals hold every label
    for kind, scale in (("richness", 0.2), ("hybrid", 0.02)):
        oof = {"cluster_id": labels["id"].tolist(), "fold": (np.arange(len(y)) % 5).tolist(),
               "pred": (y + rng.normal(0.0, scale, len(y))).tolist()}
        registry.save_model(db, settings, name=kind, kind=kind, config={"coef": [14.0, 1.0, 0.0]}, metrics={},
                            training={"group": "g", "oof": oof})
    truth = tmp_path / "truth.csv"
    clusters[["ra", "dec", "log10_m500"]].to_csv(truth, index=False)
    ev = json.loads(cli("evaluate", "hybrid", "--truth", str(truth), "--json", "--out", str(tmp_path)).stdout)
    rows = {(r["model"], r["reference"], r["subset"]): r for r in ev["rows"]}
    for model in ("richness", "hybrid"):
        for ref in ("label", "truth"):
            for third in ("low", "mid", "high"):
                assert rows[model, ref, f"mass {third}"]["n"] == rows[model, ref, f"z {third}"]["n"] == 30
    rich, hyb = rows["richness", "label", "all"], rows["hybrid", "label", "all"]
    for level in (68, 95):
        lo, hi = rich[f"coverage{level}_ci"]
        assert lo <= rich[f"coverage{level}"] <= hi and passes(lo, hi, level)
    assert hyb["coverage68"] == 1.0 and not passes(*hyb["coverage68_ci"], 68)
    assert 0 < rows["richness", "truth", "all"]["coverage68"] < 1
    assert hyb["ratio"] == pytest.approx(hyb["mae"] / rich["mae"]) and hyb["ratio_ci95"][0] < hyb["ratio"]
    assert hyb["gain"] is None and hyb["gain_ci95"] is None  # no oracle in the database (as on real data)
    shown = " ".join(cli("evaluate", "hybrid", "--out", str(tmp_path)).stdout.split())  # titles wrap
    assert "error coverage" in shown and "z high" in shown and "ok" in shown and "MISS" in shown


def test_train_errors(cli, db, tmp_path):
    res = cli("train", "--stage", "3", ok=False)
    assert res.exit_code == 2 and "'3' is not one of" in res.output  # a usage error
    res = cli("train", "--stage", "2", "--config", str(tiny_config(tmp_path)), ok=False)
    assert res.exit_code != 0 and "no model 'band-classifier'" in str(res.exception)
    res = cli("evaluate", "nope", ok=False)
    assert res.exit_code != 0 and "no model 'nope'" in str(res.exception)
    res = cli("train", "--config", str(tmp_path / "missing.toml"), ok=False)
    assert res.exit_code != 0 and "does not exist" in str(res.exception)
    res = cli("learning-curve", "--device", "tpu", ok=False)
    assert res.exit_code == 2 and "'tpu' is not one of" in res.output


def test_train_with_fine_tuning_registers_a_trunk_per_fold(cli, db, settings, tmp_path):
    clusters = mock_clusters(30, seed=3)
    load_into_db(db, clusters)
    cfg = tiny_config(tmp_path)
    cfg.write_text(cfg.read_text().replace("[stage2]\n", '[stage2]\nkinds = ["hybrid"]\nhead = "ridge"\nfinetune_epochs = 2\n'))
    out = json.loads(cli("train", "--config", str(cfg), "--json").stdout)
    assert [m["kind"] for m in out["models"]] == ["band-classifier", "hybrid"]
    record = registry.get_model(db, "hybrid")
    typed = load_train_config(cfg)  # the row holds the plain TOML tables and gives the typed config back
    assert record.config["train"] == typed.as_dict() and record.train_config == typed
    assert [h[0]["epoch"] for h in record.metrics["history"]] == [0] * 5  # fine-tuning curves, from the frozen start
    pred = registry.load_predictor(db, settings, "hybrid")
    assert len(pred.trunks) == 5 == len(pred.heads)
    m, err = pred.predict(mock_images(clusters.iloc[:3]), clusters.iloc[:3])
    assert np.all(np.isfinite(m)) and np.all(err > 0)


def test_photometry_reaches_the_heads_in_training_and_prediction_alike(cli, db, settings, tmp_path):
    """With stage2.photometry the heads read the trunk's features and the photometric ones, and the
    registered predictor builds the same features from the cutouts: a trained-on cluster gets its
    out-of-fold prediction back."""
    clusters = mock_clusters(30, seed=6)
    load_into_db(db, clusters)
    cfg = tiny_config(tmp_path)
    stage2 = '[stage2]\nkinds = ["cnn", "hybrid"]\nphotometry = ["bcg", "apertures"]\n'
    cfg.write_text(cfg.read_text().replace("[stage2]\n", stage2))
    cli("train", "--config", str(cfg), "--json")
    for kind in ("cnn", "hybrid"):
        record = registry.get_model(db, kind)
        arch = record.config["arch"]
        trunk_features = registry.build_trunk(arch).n_cluster_features
        assert arch["n_in"] == trunk_features + 25 and arch["photometry"] == ["bcg", "apertures"]
        pred = registry.load_predictor(db, settings, kind)
        assert pred.photometry == ("bcg", "apertures")
        oof = dict(zip(record.training["oof"]["cluster_id"], record.training["oof"]["pred"]))
        rows = clusters.iloc[:6]
        m, _ = pred.predict(mock_images(rows), rows)
        assert np.allclose(m, [oof[c] for c in rows["id"]], atol=1e-4)


def test_bcg_fits_reach_the_heads_unpenalised_in_training_and_prediction_alike(cli, db, settings, tmp_path):
    """With photometry 'bcgfit' training renders each labelled cluster's fine cutout too, fits the red sequence on
    them and keeps it with the model; the predictor needs the fine cutouts and rebuilds the same features."""
    clusters = mock_clusters(30, seed=7)
    load_into_db(db, clusters)
    cfg = tiny_config(tmp_path)
    cfg.write_text(cfg.read_text().replace("[stage2]\n", '[stage2]\nkinds = ["hybrid"]\nphotometry = ["bcgfit"]\n'))
    cli("train", "--config", str(cfg), "--json")
    record = registry.get_model(db, "hybrid")
    arch = record.config["arch"]
    assert arch["n_in"] == registry.build_trunk(arch).n_cluster_features + 2
    assert set(arch["bcgfit"]) == {"grid", "g_r", "r_i", "fill", "max_offset_kpc", "n_candidates"} and arch["bcgfit"]["grid"]["size"] == FINE_GRID.size
    alphas = record.metrics["ridge_alpha"]  # each fold's penalty is kept
    assert len(alphas) == record.train_config.stage2.folds and set(alphas) <= set(RIDGE_ALPHAS)
    pred = registry.load_predictor(db, settings, "hybrid")
    assert pred.fine_grid == FINE_GRID
    rows = clusters.iloc[:4]
    with pytest.raises(ModelError, match="BCG fits"):
        pred.predict(mock_images(rows), rows)
    fine = mock_images(rows, size=FINE_GRID.size, aperture_mpc=FINE_GRID.aperture_mpc)
    m, _ = pred.predict(mock_images(rows), rows, fine)
    oof = dict(zip(record.training["oof"]["cluster_id"], record.training["oof"]["pred"]))
    assert np.allclose(m, [oof[c] for c in rows["id"]], atol=1e-4)
