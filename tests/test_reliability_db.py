"""PostgreSQL stopped and restarted in the middle of `cmcat predict` (a dedicated throwaway
embedded server, so the session's test database is never touched)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

from clustermass.config import load_settings
from clustermass.db import migrate
from clustermass.db.embedded import ensure_database, stop
from clustermass.db.engine import engine_for_url
from clustermass.model.registry import save_model

import faults
from pipeline_helpers import add_clusters
from test_predict import COEF, expected_mass

pytestmark = pytest.mark.slow


@pytest.fixture
def own_server():
    root = Path(tempfile.mkdtemp(prefix="cmr", dir="/tmp"))  # short: the socket lives in pgdata
    pgdata = root / "pg"
    url = ensure_database(pgdata, "cmcat_restart")
    try:
        yield pgdata, url
    finally:
        try:
            stop(pgdata)
        finally:
            shutil.rmtree(root, ignore_errors=True)


def _start(pgdata: Path) -> None:
    """Start the stopped server again (pgserver's cached handle would think it still runs)."""
    import pgserver

    pgserver.get_server(pgdata, cleanup_mode=None).ensure_postgres_running()


def test_predict_through_a_database_restart(own_server, tmp_path):
    pgdata, url = own_server
    engine = engine_for_url(url)
    migrate.upgrade(engine)
    n = 150
    clusters = add_clusters(engine, n, ra=(120, 250), dec=(-5, 65))
    settings = load_settings(overrides={"database_url": url, "data_dir": tmp_path / "data"}, environ={})
    save_model(engine, settings, name="rich", kind="richness", config={"coef": COEF}, metrics={"cv_scatter": 0.16},
               training={})
    env = {**os.environ, "CMCAT_DATABASE_URL": url, "CMCAT_DATA_DIR": str(tmp_path / "data")}
    cmd = [sys.executable, "-m", "clustermass", "predict", "--tiles", "3", "--model", "rich", "--workers", "2",
           "--max-per-tile", "5", "--json"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        done = faults.wait_for(engine, "SELECT count(*) FROM run_tiles WHERE status = 'done'", 6, proc=proc)
        assert proc.poll() is None and done >= 6, proc.communicate()
        engine.dispose()
        assert stop(pgdata)  # fast shutdown: every open tile transaction is cut
        time.sleep(3)
        _start(pgdata)
        out, err = proc.communicate(timeout=400)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
    with engine.connect() as conn:
        run_id, status = conn.execute(text("SELECT id, status FROM runs")).one()
    # a restart of a few seconds is ridden out: tiles cut mid-transaction were rolled back and retried
    assert proc.returncode == 0, err[-3000:]
    summary = json.loads(out)
    assert summary["status"] == "done" and summary["run_id"] == run_id and summary["n_tiles_failed"] == 0
    assert "Traceback" not in err
    with engine.connect() as conn:
        pred = pd.read_sql("SELECT cluster_id, log10_m500 FROM predictions", conn)
        tiles = conn.execute(text("SELECT status, n_clusters, n_done FROM run_tiles WHERE run_id = :r"),
                             {"r": run_id}).all()
        status = conn.execute(text("SELECT status FROM runs WHERE id = :r"), {"r": run_id}).scalar_one()
    assert len(pred) == n and pred["cluster_id"].is_unique and set(pred["cluster_id"]) == set(clusters["id"])
    merged = pred.merge(clusters, left_on="cluster_id", right_on="id")
    np.testing.assert_allclose(merged["log10_m500"], expected_mass(merged), rtol=0, atol=1e-9)
    assert status == "done" and {t.status for t in tiles} == {"done"}
    assert sum(t.n_clusters for t in tiles) == n == sum(t.n_done for t in tiles)
    engine.dispose()


def test_bookkeeping_rides_out_a_restart(monkeypatch):
    """The client's own writes (a run's final status) retry a dropped connection as the tiles do: a predict whose
    tiles all finished just before a restart failed at `finish_run` with 'lost the connection'."""
    import psycopg2

    from clustermass.pipeline import runner

    monkeypatch.setattr(runner, "DB_RETRY_DELAYS_S", (0.0, 0.0))
    calls = []

    def flaky(fail: int, exc: Exception):
        def call():
            calls.append(1)
            if len(calls) <= fail:
                raise exc
            return "done"
        return call

    assert runner.through_restarts(flaky(2, psycopg2.OperationalError("server closed the connection"))) == "done"
    calls.clear()
    with pytest.raises(psycopg2.OperationalError):  # still down after every delay
        runner.through_restarts(flaky(3, psycopg2.OperationalError("no such socket")))
    calls.clear()
    with pytest.raises(ValueError):  # not a connection failure: not retried
        runner.through_restarts(flaky(1, ValueError("bad query")))
    assert len(calls) == 1
