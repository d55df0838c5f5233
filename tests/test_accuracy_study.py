"""scripts/accuracy_study.py on a small universe and a tiny config: the table's structure, every
figure finite or explicitly null, and a rerun that resumes from the finished run."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from clustermass.mock.version import MOCK_VERSION
from model_helpers import tiny_config

REPO = Path(__file__).resolve().parents[1]


def _figures(value, path=""):
    """(path, number) of every number in a JSON value."""
    if isinstance(value, dict):
        return [f for k, v in value.items() for f in _figures(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [f for i, v in enumerate(value) for f in _figures(v, f"{path}[{i}]")]
    return [(path, value)] if isinstance(value, (int, float)) and not isinstance(value, bool) else []


@pytest.mark.slow
def test_study_table_on_a_small_universe(tmp_path):
    work = Path(tempfile.mkdtemp(prefix="cms", dir="/tmp"))  # short: the embedded server's socket lives there
    cmd = [sys.executable, str(REPO / "scripts" / "accuracy_study.py"), "--work", str(work), "--seeds", "101",
           "--control-seed", "-1", "--n", "2000", "--config", str(tiny_config(tmp_path)), "--threads", "1", "--json"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    try:
        res = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout)
        (run,) = res["runs"]
        assert run["run"] == "s101" and run["mock_version"] == MOCK_VERSION and run["config"] == "tiny"
        assert {(r["model"], r["reference"]) for r in run["rows"]} == {(m, ref) for m in ("cnn", "hybrid")
                                                                       for ref in ("label", "truth")}
        assert {"db", "universe", "crossmatch", "train", "oracle", "predict", "evaluate"} <= set(run["seconds"])
        unlabelled = {u["model"]: u for u in run["unlabelled"]}
        assert unlabelled["richness"]["n"] > 1000  # of the 2,000 clusters, few labelled
        assert "hybrid" in unlabelled and unlabelled["hybrid"]["n"] > 50
        assert len(res["pooled"]) == 4 and all(p["n_seeds"] == 1 for p in res["pooled"])
        for row in run["rows"]:
            assert row["ratio"] is not None and row["gain_nonpositive"] is not None  # an oracle was registered
            for key in ("ratio_ci95", "gain_ci68", "gain_ci95"):
                assert row[key] is None or (len(row[key]) == 2 and row[key][0] <= row[key][1])
        assert all(math.isfinite(v) for _, v in _figures(res))  # the others are null
        assert (work / "s101" / "result.json").is_file()
        again = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
        assert json.loads(again.stdout) == res  # resumed from result.json
        table = subprocess.run(cmd[:-1], capture_output=True, text=True, check=True, env=env).stdout
        assert "pooled (1 seeds)" in table and "G [68%]" in table and "unlabelled clusters against" in table
    finally:
        from clustermass.db.embedded import stop

        stop(work / "s101" / "data" / "pg")
        shutil.rmtree(work, ignore_errors=True)


def test_pooled_gain_leaves_out_runs_whose_gain_is_undefined():
    """A run whose oracle barely beats richness has G without an interval (its denominator ~0): pooling its
    point G (-203 on one v5 seed) would swamp the others, so G is pooled over the runs with an interval."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("accuracy_study", REPO / "scripts" / "accuracy_study.py")
    study = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(study)
    row = {"mae": 0.1, "ratio": 1.0, "coverage68": 0.68, "coverage95": 0.95}
    results = [{"variant": "default", "band_accuracy": 0.6, "reference_band_accuracy": 0.6, "wall_s": 1.0,
                "rows": [{**row, "model": m, "reference": r, "gain": g, "gain_ci95": ci}
                         for m in study.MODELS for r in study.REFERENCES]}
               for g, ci in ((0.2, [0.1, 0.3]), (0.4, [0.3, 0.5]), (-203.0, None))]
    for p in study.pooled(results):
        assert p["n_seeds"] == 3 and p["gain_seeds"] == 2 and p["gain"] == pytest.approx(0.3), p
    assert "(2 of 3 seeds)" in study.render([], study.pooled(results))
