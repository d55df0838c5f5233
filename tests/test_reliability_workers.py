"""Worker death and concurrency: `cmcat predict` / `cmcat fetch` as real processes on a real
LocalCluster, Dask worker processes SIGKILLed part-way, two overlapping runs at once.

The client itself SIGKILLed part-way is tests/test_predict.py::test_resume_after_sigkill_...
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text

from clustermass.images.store import read_store

import faults
from pipeline_helpers import add_clusters
from test_predict import _predictions, expected_mass, richness_model

pytestmark = pytest.mark.slow


def _env(pg_url: str, tmp_path: Path) -> dict:
    return {**os.environ, "CMCAT_DATABASE_URL": pg_url, "CMCAT_DATA_DIR": str(tmp_path / "data")}


def _cmcat(args: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "clustermass", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def _run_with_worker_kills(db, args: list[str], env: dict, kills_at: tuple[int, ...]) -> tuple[int, list[int]]:
    """Run `cmcat ARGS`; SIGKILL one Dask worker each time the done tiles reach a count in
    `kills_at`; resume by run id if the run did not finish. Returns (run id, killed pids)."""
    proc = _cmcat(args, env)
    killed = []
    try:
        for at in kills_at:
            done = faults.wait_for(db, "SELECT count(*) FROM run_tiles WHERE status = 'done'", at, proc=proc)
            assert proc.poll() is None and done >= at, f"run ended before kill at {at}: {proc.communicate()}"
            pids = faults.dask_worker_pids(proc.pid)
            assert pids, "no Dask worker process found"
            faults.kill(pids[0])
            killed.append(pids[0])
        out, err = proc.communicate(timeout=400)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
    with db.connect() as conn:
        run_id, status = conn.execute(text("SELECT id, status FROM runs ORDER BY id DESC LIMIT 1")).one()
    if status != "done":  # a tile lost to the kill failed the run: it must say so, and resume
        assert proc.returncode != 0 and "failed" in out + err, (out, err)
        res = subprocess.run([sys.executable, "-m", "clustermass", args[0], "--resume", str(run_id), "--json"],
                             env=env, capture_output=True, text=True, timeout=400)
        assert res.returncode == 0, res.stderr
    else:
        assert proc.returncode == 0 and json.loads(out)["status"] == "done", err
    return run_id, killed


def _consistent_run_tiles(db, run_id: int, n: int) -> None:
    with db.connect() as conn:
        status = conn.execute(text("SELECT status FROM runs WHERE id = :r"), {"r": run_id}).scalar_one()
        tiles = conn.execute(text("SELECT status, n_clusters, n_done FROM run_tiles WHERE run_id = :r"),
                             {"r": run_id}).all()
    assert status == "done" and {t.status for t in tiles} == {"done"}
    assert sum(t.n_clusters for t in tiles) == n  # tiles cover every cluster exactly once


def test_predict_survives_dask_worker_kills(db, settings, pg_url, tmp_path):
    n = 300
    clusters = add_clusters(db, n, ra=(120, 250), dec=(-5, 65))
    richness_model(db, settings)
    args = ["predict", "--tiles", "3", "--model", "richness", "--workers", "2", "--max-per-tile", "8", "--json"]
    run_id, killed = _run_with_worker_kills(db, args, _env(pg_url, tmp_path), kills_at=(6, 18))
    assert len(set(killed)) == 2
    pred = _predictions(db)
    assert len(pred) == n and pred["cluster_id"].is_unique and set(pred["cluster_id"]) == set(clusters["id"])
    merged = pred.merge(clusters, left_on="cluster_id", right_on="id")
    np.testing.assert_allclose(merged["log10_m500"], expected_mass(merged), rtol=0, atol=1e-9)
    _consistent_run_tiles(db, run_id, n)


def test_fetch_survives_dask_worker_kills(db, pg_url, tmp_path):
    n = 150
    clusters = add_clusters(db, n, ra=(120, 250), dec=(-5, 65))
    args = ["fetch", "--tiles", "3", "--source", "mock", "--size", "16", "--workers", "2", "--max-per-tile", "6",
            "--json"]
    run_id, _ = _run_with_worker_kills(db, args, _env(pg_url, tmp_path), kills_at=(5,))
    with db.connect() as conn:
        rows = conn.execute(text("SELECT cluster_id, status, path, sha256 FROM cutouts")).all()
    assert sorted(r.cluster_id for r in rows) == sorted(clusters["id"])  # one row per cluster
    assert {r.status for r in rows} <= {"ok", "partial"}
    seen: list[int] = []
    for (path, sha) in {(r.path, r.sha256) for r in rows}:
        entries = read_store(Path(path), sha)
        assert entries is not None, f"store file {path} does not match its checksum"
        seen += entries
    assert sorted(seen) == sorted(clusters["id"])  # every cutout stored once, in a verified file
    _consistent_run_tiles(db, run_id, n)


def test_two_overlapping_predict_runs_at_once_equal_one_run(db, settings, pg_url, tmp_path):
    n = 240
    clusters = add_clusters(db, n, ra=(120, 250), dec=(-5, 65))
    richness_model(db, settings)
    env = _env(pg_url, tmp_path)
    runs = [_cmcat(["predict", "--tiles", spec, "--model", "richness", "--workers", "1", "--max-per-tile", mpt,
                    "--json"], env) for spec, mpt in (("2", "12"), ("3", "7"))]  # same sky, different tilings
    outs = [p.communicate(timeout=400) for p in runs]
    for p, (out, err) in zip(runs, outs):
        assert p.returncode == 0, err
        assert json.loads(out)["status"] == "done"
    pred = _predictions(db)
    assert len(pred) == n and pred["cluster_id"].is_unique and set(pred["cluster_id"]) == set(clusters["id"])
    merged = pred.merge(clusters, left_on="cluster_id", right_on="id")
    np.testing.assert_allclose(merged["log10_m500"], expected_mass(merged), rtol=0, atol=1e-9)
    np.testing.assert_allclose(merged["log10_m500_err"], 0.16)
    with db.connect() as conn:
        ids = conn.execute(text("SELECT id FROM runs ORDER BY id")).scalars().all()
    assert len(ids) == 2
    for run_id in ids:
        _consistent_run_tiles(db, run_id, n)
