"""`cmcat predict`: the predict tile task, the CLI on a real LocalCluster, rerun and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

from clustermass import sky
from clustermass.images.base import Cutout, CutoutGrid
from clustermass.mock.version import SOURCE_NAME
from clustermass.model import baseline
from clustermass.model.registry import save_model
from clustermass.pipeline import predict as predict_mod
from clustermass.pipeline.predict import predict_in_batches, predict_tile
from clustermass.pipeline.worker import worker_settings
from clustermass.pipeline.runs import prepare_run

from pipeline_helpers import TinyPredictor, add_clusters, fake_mass, run_tiles_status, tiny_loader

COEF = [14.3, 1.1, -0.3]


def torch_cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def richness_model(db, settings) -> int:
    rec = save_model(db, settings, name="rich", kind="richness", config={"coef": COEF}, metrics={"cv_scatter": 0.16}, training={})
    return rec.id


def expected_mass(df: pd.DataFrame) -> np.ndarray:
    return np.asarray(baseline.predict(np.asarray(COEF), df["richness"].to_numpy(), df["z"].to_numpy()))


def _predictions(db) -> pd.DataFrame:
    with db.connect() as conn:
        return pd.read_sql("SELECT cluster_id, model_id, run_id, log10_m500, log10_m500_err, created FROM predictions ORDER BY cluster_id", conn)


def test_predict_in_batches_equals_one_call():
    df = pd.DataFrame({"id": np.arange(10), "richness": np.linspace(20, 100, 10), "z": 0.3})
    p = TinyPredictor(1)
    images = np.random.default_rng(0).normal(size=(10, 5, 16, 16)).astype(np.float32)
    m1, e1 = predict_in_batches(p, images, df, batch_size=3)
    m2, e2 = p.predict(images, df)
    np.testing.assert_array_equal(m1, m2)
    np.testing.assert_array_equal(e1, e2)


def test_worker_settings_are_plain_and_without_database_url(settings):
    ws = worker_settings(settings)
    assert "database_url" not in ws and ws["data_dir"] == str(settings.data_dir)
    json.dumps(ws)


class FlakySource:
    """An ImageSource that renders constant images and fails for one cluster id."""

    name = "mock"

    def __init__(self, bad_id: int):
        self.bad_id = bad_id
        self.calls = 0

    def cutouts(self, clusters, grid, bands="ugriz"):
        self.calls += 1
        out = []
        for r in clusters.itertuples():
            cov = 0.0 if r.id == self.bad_id else 1.0
            data = np.full((5, grid.size, grid.size), np.nan if cov == 0 else 1.0, dtype=np.float32)
            out.append(Cutout(int(r.id), r.ra, r.dec, grid.pixel_scale(r.z), data, cov))
        return out


def test_predict_tile_with_images_from_store_then_cache(db, settings, monkeypatch):
    clusters = add_clusters(db, 30, ra=(20, 21), dec=(5, 6))
    model_id = richness_model(db, settings)  # a models row to reference; TinyPredictor does the work
    src = FlakySource(bad_id=int(clusters["id"].iloc[3]))
    monkeypatch.setattr(predict_mod, "image_source", lambda *a: src)
    url = db.url.render_as_string(hide_password=False)
    args = {"model_id": model_id, "settings": worker_settings(settings)}
    run_id, _, todo, *_ = prepare_run(db, "predict", sky.TileSpec(4), args)
    results = [predict_tile(url, run_id, t.norder, t.npix, **args, loader=tiny_loader) for t in todo]
    assert sum(r.n_done for r in results) == 29 and sum(r.n_failed for r in results) == 1
    pred = _predictions(db)
    assert len(pred) == 29 and int(clusters["id"].iloc[3]) not in set(pred["cluster_id"])
    merged = pred.merge(clusters, left_on="cluster_id", right_on="id")
    np.testing.assert_allclose(merged["log10_m500"], fake_mass(merged["richness"]))
    st = run_tiles_status(db, run_id)
    assert (st["status"] == "done").all() and st["error"].str.contains("1 without usable images").sum() == 1
    with db.connect() as conn:
        n_ok = conn.execute(text("SELECT count(*) FROM cutouts WHERE status = 'ok'")).scalar_one()
    assert n_ok == 29
    # a rerun reads the stored cutouts: the source is only asked for the one that failed
    calls = src.calls
    run2, _, todo2, *_ = prepare_run(db, "predict", sky.TileSpec(4), args, rerun=True)
    for t in todo2:
        predict_tile(url, run2, t.norder, t.npix, **args, loader=tiny_loader)
    assert src.calls - calls <= len(todo2)
    assert len(_predictions(db)) == 29 and set(_predictions(db)["run_id"]) == {run2}


def test_cli_predict_richness_on_local_cluster_rerun_is_idempotent(cli, db, settings):
    clusters = add_clusters(db, 160, ra=(130, 230), dec=(0, 50))
    model_id = richness_model(db, settings)
    out = cli("predict", "--tiles", "2", "--model", "richness", "--workers", "2", "--max-per-tile", "30", "--json")
    s = json.loads(out.stdout)
    assert s["status"] == "done" and s["n_done"] == 160 and s["n_tiles_failed"] == 0 and s["workers"] == 2
    pred = _predictions(db)
    assert len(pred) == 160 and pred["cluster_id"].is_unique and set(pred["model_id"]) == {model_id}
    merged = pred.merge(clusters, left_on="cluster_id", right_on="id")
    np.testing.assert_allclose(merged["log10_m500"], expected_mass(merged), rtol=0, atol=1e-9)
    np.testing.assert_allclose(merged["log10_m500_err"], 0.16)
    with db.connect() as conn:
        runs = conn.execute(text("SELECT id, status, model_id, n_clusters FROM runs")).all()
        workers = conn.execute(text("SELECT count(DISTINCT worker) FROM run_tiles")).scalar_one()
    assert [(r.status, r.model_id, r.n_clusters) for r in runs] == [("done", model_id, 160)]
    assert workers == 2  # both worker processes took tiles
    # the same command again: nothing recomputed or rewritten
    again = json.loads(cli("predict", "--tiles", "2", "--model", "richness", "--max-per-tile", "30", "--json").stdout)
    assert again["run_id"] == s["run_id"] and again["n_tiles_done"] == 0 and again["n_tiles_skipped"] == s["n_tiles"]
    pd.testing.assert_frame_equal(_predictions(db), pred)  # same rows, same `created` stamps
    # human-readable summary
    text_out = cli("predict", "--tiles", "2", "--model", "richness", "--max-per-tile", "30").stdout
    assert "already done" in text_out and f"{s['run_id']} (resumed)" in text_out


def test_trained_on_clusters_get_the_held_out_prediction_and_their_fold(db, settings):
    clusters = add_clusters(db, 20, ra=(20, 21), dec=(5, 6))
    trained = clusters["id"].to_numpy()[:6]
    fold_coef = [[14.0, 1.0, 0.0], [14.6, 1.0, 0.0]]
    model_id = save_model(db, settings, name="rich", kind="richness", config={"coef": COEF, "fold_coef": fold_coef},
                          metrics={"cv_scatter": 0.16},
                          training={"oof": {"cluster_id": trained.tolist(), "fold": [0, 1] * 3}}).id
    url = db.url.render_as_string(hide_password=False)
    args = {"model_id": model_id, "settings": worker_settings(settings)}
    run_id, _, todo, *_ = prepare_run(db, "predict", sky.TileSpec(4), args)
    for t in todo:
        predict_tile(url, run_id, t.norder, t.npix, **args)
    with db.connect() as conn:
        pred = pd.read_sql("SELECT cluster_id, log10_m500, fold FROM predictions ORDER BY cluster_id", conn)
    merged = pred.merge(clusters, left_on="cluster_id", right_on="id")
    held = merged["cluster_id"].isin(trained).to_numpy()
    assert merged.loc[held, "fold"].tolist() == [0, 1] * 3 and merged.loc[~held, "fold"].isna().all()
    expected = expected_mass(merged)
    for f, c in enumerate(fold_coef):
        rows = (merged["fold"] == f).to_numpy()
        expected[rows] = baseline.predict(np.asarray(c), merged["richness"][rows], merged["z"][rows])
    np.testing.assert_allclose(merged["log10_m500"], expected, atol=1e-9)


def test_cli_predict_errors_are_clear(cli, db, settings):
    bad = cli("predict", "--tiles", "2", ok=False)
    assert bad.exit_code != 0 and "--model" in str(bad.exception)
    bad = cli("predict", "--tiles", "2", "--model", "nope", ok=False)
    assert "no model 'nope'" in str(bad.exception)
    richness_model(db, settings)
    bad = cli("predict", "--tiles", "2:99999", "--model", "richness", ok=False)
    assert "do not exist at order 2" in str(bad.exception)
    bad = cli("predict", "--resume", "42", ok=False)
    assert "run 42 is not a predict run" in str(bad.exception)
    bad = cli("predict", "--tiles", "2", "--model", "richness", "--device", "tpu", ok=False)
    assert bad.exit_code == 2 and "'tpu' is not one of" in bad.output  # a usage error


@pytest.mark.skipif(torch_cuda_available(), reason="this machine has a CUDA GPU: the no-GPU error cannot show")
def test_cli_predict_device_cuda_without_a_gpu_says_so_and_writes_nothing(cli, db, settings):
    richness_model(db, settings)
    bad = cli("predict", "--tiles", "2", "--model", "richness", "--device", "cuda", ok=False)
    assert "torch sees no CUDA GPU here; use --device cpu" in str(bad.exception)
    with db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM runs")).scalar_one() == 0


def test_cli_predict_catalog_option_limits_the_clusters(cli, db, settings):
    add_clusters(db, 40, seed=1, ra=(130, 230), dec=(0, 50), name="cat-a")
    wanted = add_clusters(db, 30, seed=2, ra=(130, 230), dec=(0, 50), name="cat-b")
    richness_model(db, settings)
    s = json.loads(cli("predict", "--tiles", "1", "--model", "richness", "--catalog", "cat-b", "--workers", "1",
                       "--json").stdout)
    assert s["status"] == "done" and s["n_done"] == 30
    assert sorted(_predictions(db)["cluster_id"]) == sorted(wanted["id"])  # none of cat-a's 40
    bad = cli("predict", "--tiles", "1", "--model", "richness", "--catalog", "cat-c", ok=False)
    assert "no catalogue named 'cat-c'" in str(bad.exception) and "cat-a" in str(bad.exception)


@pytest.mark.slow
def test_resume_after_sigkill_completes_without_gaps_or_duplicates(db, settings, pg_url, tmp_path):
    n = 300
    clusters = add_clusters(db, n, ra=(120, 250), dec=(-5, 65))
    richness_model(db, settings)
    env = {**os.environ, "CMCAT_DATABASE_URL": pg_url, "CMCAT_DATA_DIR": str(tmp_path / "data")}
    cmd = [sys.executable, "-m", "clustermass", "predict", "--tiles", "3", "--model", "richness", "--workers", "2",
           "--max-per-tile", "5", "--json"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        done = 0
        while time.monotonic() < deadline and proc.poll() is None:
            with db.connect() as conn:
                done = conn.execute(text("SELECT count(*) FROM run_tiles WHERE status = 'done'")).scalar_one()
            if done >= 5:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its Dask worker processes, hard
        proc.wait(30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    with db.connect() as conn:
        run_id, status = conn.execute(text("SELECT id, status FROM runs")).one()
        counts = dict(conn.execute(text("SELECT status, count(*) FROM run_tiles GROUP BY status")).all())
    assert status == "running" and counts.get("done", 0) >= 5
    assert sum(counts.values()) > counts["done"]  # killed part-way
    partial = _predictions(db)
    assert 0 < len(partial) < n and partial["cluster_id"].is_unique
    resumed = subprocess.run(
        [sys.executable, "-m", "clustermass", "predict", "--resume", str(run_id), "--workers", "2", "--json"],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    s = json.loads(resumed.stdout)
    assert s["run_id"] == run_id and s["status"] == "done" and s["n_tiles_skipped"] >= counts["done"]
    assert s["n_tiles_done"] + s["n_tiles_skipped"] == s["n_tiles"]
    pred = _predictions(db)
    assert len(pred) == n and pred["cluster_id"].is_unique and set(pred["cluster_id"]) == set(clusters["id"])
    # the tiles finished before the kill were not recomputed
    kept = partial.merge(pred, on="cluster_id", suffixes=("_before", "_after"))
    assert (kept["created_before"] == kept["created_after"]).all()
    with db.connect() as conn:
        assert conn.execute(text("SELECT status FROM runs WHERE id = :i"), {"i": run_id}).scalar_one() == "done"


def test_predict_tile_with_the_mock_renderer(db, settings):
    """Real MockSource cutouts through the store into a model that uses the images."""
    clusters = add_clusters(db, 12, ra=(150, 150.5), dec=(2, 2.5))
    model_id = richness_model(db, settings)
    url = db.url.render_as_string(hide_password=False)
    args = {"model_id": model_id, "settings": worker_settings(settings),
            "source": "mock", "source_options": {"universe_dir": None, "seed": 1}}
    run_id, _, todo, *_ = prepare_run(db, "predict", sky.TileSpec(5), args)
    res = [predict_tile(url, run_id, t.norder, t.npix, **args, loader=tiny_loader) for t in todo]
    assert sum(r.n_done for r in res) == 12
    with db.connect() as conn:
        rows = conn.execute(text("SELECT source, size, status, path FROM cutouts")).all()
    assert len(rows) == 12 and {(r.source, r.size, r.status) for r in rows} == {(SOURCE_NAME, 16, "ok")}  # the mock version is in the store entry
    assert all(Path(r.path).is_file() for r in rows)
    assert len(_predictions(db)) == 12


def test_a_model_with_a_fine_grid_gets_both_cutouts_of_every_cluster(db, settings):
    """A model reading BCG fits (`fine_grid`) gets each cluster's cutouts on both grids; the fine ones, used once,
    are not stored."""
    clusters = add_clusters(db, 8, ra=(150, 150.5), dec=(2, 2.5))
    model_id = richness_model(db, settings)
    url = db.url.render_as_string(hide_password=False)
    args = {"model_id": model_id, "settings": worker_settings(settings),
            "source": "mock", "source_options": {"universe_dir": None, "seed": 1}}
    fine = CutoutGrid(size=24, aperture_mpc=0.8)
    run_id, _, todo, *_ = prepare_run(db, "predict", sky.TileSpec(5), args)
    loader = lambda engine, settings, ref, device: TinyPredictor(int(ref), fine_grid=fine)  # noqa: E731
    res = [predict_tile(url, run_id, t.norder, t.npix, **args, loader=loader) for t in todo]
    assert sum(r.n_done for r in res) == 8  # TinyPredictor asserts the fine cutouts' shape
    with db.connect() as conn:
        sizes = conn.execute(text("SELECT size, count(*) FROM cutouts GROUP BY size ORDER BY size")).all()
    assert [tuple(s) for s in sizes] == [(16, 8)]
