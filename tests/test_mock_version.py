"""Provenance of mock output: the mock version is recorded everywhere and another version is refused."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from sqlalchemy import text

from clustermass.images.base import CutoutGrid
from clustermass.mock.source import MockSource
from clustermass.mock.population import build_universe
from clustermass.mock.version import MOCK_VERSION, SOURCE_NAME, MockVersionError
from clustermass.model.truth import TRUTH_META_KEY
from clustermass.mock.writers import FILES, read_truth, write_universe
from model_helpers import load_into_db, mock_clusters, tiny_config


@pytest.fixture(scope="module")
def universes(tmp_path_factory):
    """A current universe and the same one as mock v1 wrote it (no versions recorded)."""
    root = tmp_path_factory.mktemp("versions")
    u = build_universe(30, seed=3, area_deg2=5.0)
    write_universe(u, root / "new", {"n": 30, "seed": 3, "area_deg2": 5.0})
    old = root / "old"
    write_universe(u, old, {"n": 30, "seed": 3, "area_deg2": 5.0})
    params = json.loads((old / FILES["params"]).read_text())
    params.pop("mock_version")
    (old / FILES["params"]).write_text(json.dumps(params))
    pd.read_parquet(old / FILES["truth"]).to_parquet(old / FILES["truth"], index=False)  # without the version
    return root / "new", old


def _one_line_refusal(res, *words: str) -> None:
    msg = str(res.exception)
    assert res.exit_code != 0 and "\n" not in msg, msg
    for w in words:
        assert w in msg, msg


def test_version_is_written_into_universe_and_truth(universes):
    new, _ = universes
    assert json.loads((new / FILES["params"]).read_text())["mock_version"] == MOCK_VERSION
    assert pq.read_schema(new / FILES["truth"]).metadata[TRUTH_META_KEY] == str(MOCK_VERSION).encode()
    assert len(read_truth(new)) > 0


def test_readers_refuse_another_version(universes):
    _, old = universes
    with pytest.raises(MockVersionError, match=r"mock v1.*cmcat mock universe --n 30 --seed 3 --area 5.0"):
        read_truth(old)
    with pytest.raises(MockVersionError, match="mock v1"):
        MockSource(old)
    with pytest.raises(MockVersionError, match=f"mock v1, this cmcat renders mock v{MOCK_VERSION}"):
        MockSource(seed=0, mock_version=1)  # a run's stored options of an older mock


def test_commands_refuse_a_universe_or_truth_of_another_version(cli, universes):
    _, old = universes
    for args in (["train", "--source", "mock", "--universe", str(old)],
                 ["fetch", "--tiles", "0", "--source", "mock", "--universe", str(old)],
                 ["predict", "--tiles", "0", "--model", "hybrid", "--source", "mock", "--universe", str(old)],
                 ["mock", "frames", "--universe", str(old), "--out", "x"]):
        _one_line_refusal(cli(*args, ok=False), "mock v1", "cmcat mock universe --n 30")
    _one_line_refusal(cli("evaluate", "hybrid", "--truth", str(old / FILES["truth"]), ok=False), "mock v1")
    _one_line_refusal(cli("evaluate", "hybrid", "--truth", str(old), ok=False), "mock v1")


def test_stored_cutouts_of_another_version_are_refused(cli, db, settings):
    """The catalogue-driven renderer (no universe) too: a store holding v1 ('mock') cutouts is refused."""
    from clustermass.images.store import ensure_cutouts

    clusters = mock_clusters(4, seed=2)
    load_into_db(db, clusters)
    grid = CutoutGrid(size=16)
    with db.begin() as conn:
        res = ensure_cutouts(conn, settings.cutout_dir, clusters, MockSource(seed=0), grid, (0, 0))
        assert res.n_fetched == 4
        rows = conn.execute(text("SELECT DISTINCT source FROM cutouts")).scalars().all()
        assert rows == [SOURCE_NAME]
        conn.execute(text("UPDATE cutouts SET source = 'mock' WHERE cluster_id = 3"))  # as mock v1 stored it
    with db.begin() as conn, pytest.raises(Exception, match=r"cluster 3 .*'mock'.*DELETE FROM cutouts WHERE source = 'mock'"):
        ensure_cutouts(conn, settings.cutout_dir, clusters, MockSource(seed=0), grid, (0, 0))
    res = cli("fetch", "--tiles", "0", "--source", "mock", "--size", "16", "--workers", "1", ok=False)
    assert res.exit_code != 0 and "'mock'" in res.output


def test_models_trained_on_mock_cutouts_record_the_version(cli, db, tmp_path, universes):
    from clustermass.model import registry

    torch.set_num_threads(1)
    new, _ = universes
    cli("ingest", "redmapper", str(new / FILES["redmapper_fits"]))
    cli("train", "--stage", "1", "--config", str(tiny_config(tmp_path)), "--universe", str(new), "--json")
    rec = registry.get_model(db, "band-classifier")
    assert rec.training["mock"]["mock_version"] == MOCK_VERSION
    assert rec.training["mock"]["universe"] == {"n": 30, "seed": 3, "area_deg2": 5.0, "mock_version": MOCK_VERSION,
                                                  "sky_area_deg2": 5.0}
