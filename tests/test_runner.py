"""The generic tile runner: planning, run bookkeeping, failures, resume, locking, Dask execution."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

from clustermass import sky
from clustermass.pipeline import tiles as tiling
from clustermass.pipeline.runner import execute_tile, run_tiles
from clustermass.pipeline.runs import prepare_run
from clustermass.pipeline.tiles import Tile, plan_tiles

from pipeline_helpers import add_clusters, add_model, fake_mass, fake_task, run_tiles_status


def counts_from(hpx: np.ndarray):
    def count_at(order: int) -> pd.Series:
        pix, n = np.unique(sky.tile_of(hpx, order), return_counts=True)
        return pd.Series(n, index=pix)

    return count_at


def test_plan_splits_dense_tiles_and_keeps_every_cluster():
    rng = np.random.default_rng(1)
    # one dense blob (900 clusters within 1 deg) plus 300 spread out
    ra = np.concatenate([rng.normal(180, 0.3, 900), rng.uniform(120, 240, 300)])
    dec = np.concatenate([rng.normal(20, 0.3, 900), rng.uniform(-5, 60, 300)])
    hpx = sky.hpx29(ra, dec)
    tiles = plan_tiles(sky.TileSpec(2), counts_from(hpx), max_per_tile=100)
    assert sum(t.n_clusters for t in tiles) == len(hpx)
    assert max(t.n_clusters for t in tiles) <= 100
    assert max(t.norder for t in tiles) > 2  # the blob was split
    # tiles are disjoint and cover every cluster exactly once
    owner = np.zeros(len(hpx), dtype=int)
    for t in tiles:
        lo, hi = sky.tile_range(t.norder, t.npix)
        owner += (hpx >= lo) & (hpx <= hi)
    assert (owner == 1).all()
    assert [t.n_clusters for t in tiles] == sorted((t.n_clusters for t in tiles), reverse=True)


def test_plan_explicit_pixels_keeps_empty_and_respects_depth():
    hpx = sky.hpx29(np.full(50, 10.0), np.full(50, 10.0))  # 50 identical positions cannot be split
    pix = int(sky.tile_of(hpx[:1], 3)[0])
    tiles = plan_tiles(sky.TileSpec(3, (pix, 0)), counts_from(hpx), max_per_tile=10, max_depth=2)
    assert Tile(3, 0, 0) in tiles
    dense = [t for t in tiles if t.n_clusters]
    assert dense == [Tile(5, int(sky.tile_of(hpx[:1], 5)[0]), 50)]


def test_pixels_split_into_their_four_children():
    p = tiling.Pixel(3, 12)
    assert p.children() == [tiling.Pixel(4, c) for c in (48, 49, 50, 51)] and str(p) == "3/12"
    assert Tile(3, 12, 7).pixel == p
    ranges = [sky.tile_range(c.order, c.pixel) for c in p.children()]  # the children cover the parent exactly
    assert (ranges[0][0], ranges[-1][1]) == sky.tile_range(3, 12)
    assert all(a[1] + 1 == b[0] for a, b in zip(ranges, ranges[1:]))


def test_scope_and_lock_keys_are_stable_and_distinct():
    a = tiling.run_scope("predict", {"model": 1, "tiles": "3"})
    assert a == tiling.run_scope("predict", {"tiles": "3", "model": 1})
    assert a != tiling.run_scope("predict", {"model": 2, "tiles": "3"})
    assert a != tiling.run_scope("fetch", {"model": 1, "tiles": "3"})
    k = tiling.tile_lock_key(a, 3, 5)
    assert -(2**63) <= k < 2**63 and k != tiling.tile_lock_key(a, 3, 6)
    assert tiling.spec_string(sky.parse_tiles("4:7,9")) == "4:7,9"


def _predictions(db) -> pd.DataFrame:
    with db.connect() as conn:
        return pd.read_sql("SELECT cluster_id, model_id, run_id, log10_m500 FROM predictions", conn)


def test_execute_tile_records_failure_reason_and_retry_completes(db):
    clusters = add_clusters(db, 60)
    model_id = add_model(db)
    spec = sky.TileSpec(1)
    args = {"model_id": model_id}
    run_id, _, todo, skipped, resumed = prepare_run(db, "predict", spec, args, identity={"model": model_id})
    assert not resumed and skipped == 0 and sum(t.n_clusters for t in todo) == 60
    url = db.url.render_as_string(hide_password=False)
    bad = todo[0]
    res = execute_tile(fake_task, url, run_id, bad.norder, bad.npix, {**args, "fail_pix": bad.npix})
    assert res.status == "failed" and "ValueError: boom in tile" in res.error and res.pixel == bad.pixel
    st = run_tiles_status(db, run_id).set_index("npix")
    assert st.loc[bad.npix, "status"] == "failed" and "boom" in st.loc[bad.npix, "error"]
    assert _predictions(db).empty  # the failed tile's transaction left nothing behind
    for t in todo:
        assert execute_tile(fake_task, url, run_id, t.norder, t.npix, args).status == "done"
    # a tile done in this run is not recomputed
    assert execute_tile(fake_task, url, run_id, bad.norder, bad.npix, args).status == "skipped"
    pred = _predictions(db)
    assert sorted(pred["cluster_id"]) == sorted(clusters["id"])
    np.testing.assert_allclose(
        pred.sort_values("cluster_id")["log10_m500"], fake_mass(clusters.sort_values("id")["richness"])
    )
    # the same command again resumes the same run and finds nothing to do
    again = prepare_run(db, "predict", spec, args, identity={"model": model_id})
    assert again[0] == run_id and again[2] == [] and again[3] == len(todo) and again[4]


def test_concurrent_runs_do_not_compute_a_tile_twice(db):
    add_clusters(db, 40, ra=(10, 11), dec=(10, 11))
    model_id = add_model(db)
    spec = sky.TileSpec(2)
    args = {"model_id": model_id, "sleep": 1.0}
    run_a, _, todo_a, *_ = prepare_run(db, "predict", spec, args, identity={"model": model_id})
    run_b, _, todo_b, *_ = prepare_run(db, "predict", spec, args, identity={"model": model_id}, rerun=True)
    assert run_a != run_b and todo_a == todo_b
    t = todo_a[0]
    url = db.url.render_as_string(hide_password=False)
    results = {}

    def go(run_id):
        results[run_id] = execute_tile(fake_task, url, run_id, t.norder, t.npix, args)

    threads = [threading.Thread(target=go, args=(r,)) for r in (run_a, run_b)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    statuses = sorted(r.status for r in results.values())
    assert statuses == ["done", "skipped"], results
    skipped = next(r for r in results.values() if r.status == "skipped")
    assert "concurrent run" in skipped.reason
    with db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM predictions")).scalar_one() == t.n_clusters
        done = conn.execute(
            text("SELECT count(*) FROM run_tiles WHERE status = 'done' AND npix = :p"), {"p": t.npix}
        ).scalar_one()
    assert done == 2  # the tile is complete in both runs


@pytest.fixture(scope="module")
def dask_cluster():
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        yield cluster


def test_run_tiles_on_dask_processes_failure_then_resume(db, settings, dask_cluster):
    clusters = add_clusters(db, 160, ra=(120, 240), dec=(-5, 60))
    model_id = add_model(db)
    events = []
    ident = {"model": model_id}
    first = run_tiles(
        settings, "predict", sky.TileSpec(2), fake_task, {"model_id": model_id, "fail_pix": -1},
        identity=ident, scheduler=dask_cluster.scheduler_address, max_per_tile=20, on_progress=events.append,
    )
    assert first.status == "done" and first.n_done == 160 and first.n_tiles_failed == 0
    assert first.n_tiles == first.n_tiles_done > 5
    assert events[-1].tiles_finished == first.n_tiles and events[-1].clusters_finished == 160
    pred = _predictions(db)
    assert len(pred) == 160 and pred["cluster_id"].is_unique and set(pred["cluster_id"]) == set(clusters["id"])
    st = run_tiles_status(db, first.run_id)
    assert (st["status"] == "done").all() and st["worker"].str.startswith("tcp://").all()
    assert st["n_clusters"].max() <= 20

    # same command again: nothing recomputed, no result changed
    again = run_tiles(settings, "predict", sky.TileSpec(2), fake_task, {"model_id": model_id}, identity=ident,
                      scheduler=dask_cluster.scheduler_address, max_per_tile=20)
    assert again.run_id == first.run_id and again.resumed and again.n_tiles_done == 0
    assert again.n_tiles_skipped == first.n_tiles
    pd.testing.assert_frame_equal(_predictions(db).sort_values("cluster_id").reset_index(drop=True),
                                  pred.sort_values("cluster_id").reset_index(drop=True))

    # --rerun: a new run recomputes everything, still one row per cluster
    bad = int(st.sort_values("n_clusters").iloc[-1]["npix"])
    bad_order = int(st.sort_values("n_clusters").iloc[-1]["norder"])
    rerun = run_tiles(settings, "predict", sky.TileSpec(2), fake_task, {"model_id": model_id, "fail_pix": bad},
                      identity=ident, scheduler=dask_cluster.scheduler_address, max_per_tile=20, rerun=True)
    assert rerun.run_id != first.run_id and rerun.status == "failed" and rerun.n_tiles_failed >= 1
    assert any("boom" in f["error"] for f in rerun.failures)
    with db.connect() as conn:
        run_row = conn.execute(text("SELECT status, error FROM runs WHERE id = :i"), {"i": rerun.run_id}).one()
    assert run_row.status == "failed" and "failed" in run_row.error
    # resume by id with the fault gone: only the failed tile(s) run
    fixed = run_tiles(settings, "predict", None, fake_task, {"fail_pix": None}, resume=rerun.run_id,
                      scheduler=dask_cluster.scheduler_address)
    assert fixed.status == "done" and fixed.n_tiles_done == rerun.n_tiles_failed
    assert fixed.n_tiles_skipped == rerun.n_tiles - rerun.n_tiles_failed
    pred = _predictions(db)
    assert len(pred) == 160 and pred["cluster_id"].is_unique
    assert set(pred["run_id"]) == {rerun.run_id}
    _ = bad_order
