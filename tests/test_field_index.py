"""The SDSS field index from the SAS: `cmcat ingest fields --sas` over loopback HTTP (a cut
download resumes in the next run), frame sources refusing an empty `fields` table, and a fresh
database going from `cmcat ingest fields --sas` to `cmcat predict --source sas`."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import torch
from pytest_httpserver import HTTPServer
from sqlalchemy import select, text
from werkzeug import Response

from clustermass.db.models import Field
from clustermass.images.frames import frame_relpath
from clustermass.model import registry
from clustermass.model.networks import MassHead, Trunk
from framekit import crop_header, frame_wcs, read_header, window_flist_bytes, write_frame
from pipeline_helpers import add_clusters

WF = "dr12/boss/resolve/2010-05-23/window_flist.fits"


@pytest.fixture
def sas(monkeypatch):
    """A loopback SAS serving files put in `files` (path -> bytes) with Range support; CMCAT_* point at it.

    The first `cut[path]` downloads of a path (not reads of a bounded byte range) stop half way.
    Yields (files, cut, log of (path, Range header, bytes sent)).
    """
    files: dict[str, bytes] = {}
    cut: dict[str, int] = {}
    log: list[tuple[str, str | None, int]] = []

    def handler(request):
        rel = request.path.removeprefix("/sas/")
        if rel not in files:
            return Response("missing", status=404)
        data = files[rel]
        resp = Response(data).make_conditional(request, accept_ranges=True, complete_length=len(data))
        body = resp.get_data()
        bounded = re.fullmatch(r"bytes=\d+-\d+", request.headers.get("Range", ""))
        sent = body[: len(body) // 2] if cut.get(rel, 0) > 0 and not bounded else body
        cut[rel] = cut.get(rel, 0) - (not bounded)
        resp.automatically_set_content_length = False
        resp.set_data(sent)
        resp.headers["Content-Length"] = str(len(body))
        log.append((rel, request.headers.get("Range"), len(sent)))
        return resp

    srv = HTTPServer(host="127.0.0.1", threaded=True)
    srv.start()
    srv.expect_request(re.compile("/sas/.*")).respond_with_handler(handler)
    for key, value in {"CMCAT_SDSS_BASE_URL": srv.url_for("/sas"), "CMCAT_SDSS_RATE_LIMIT": "0",
                       "CMCAT_SDSS_BACKOFF": "0.01", "CMCAT_SDSS_TIMEOUT": "5"}.items():
        monkeypatch.setenv(key, value)
    yield files, cut, log
    srv.stop()


def test_ingest_fields_sas_resumes_a_cut_download_in_the_next_run(cli, db, sas, monkeypatch):
    files, cut, log = sas
    files[WF] = window_flist_bytes([], n_filler=3000)
    size = len(files[WF])
    cut[WF] = 1
    monkeypatch.setenv("CMCAT_SDSS_RETRIES", "0")
    first = cli("ingest", "fields", "--sas", ok=False)
    assert first.exit_code != 0 and "resumes from there" in str(first.exception)
    fetched_first = sum(n for path, rng, n in log if path == WF and rng is None)

    second = json.loads(cli("ingest", "fields", "--sas", "--json").stdout)
    assert second["status"] == "loaded" and second["n_rows"] == 3000 and second["catalog"] == "window_flist"
    resumed = [(rng, n) for path, rng, n in log if path == WF and rng is not None and rng.endswith("-")]
    assert resumed == [(f"bytes={fetched_first}-", size - fetched_first)]
    assert resumed[0][1] < size  # the second run fetched only what the first did not
    with db.connect() as conn:
        extra, score = conn.execute(select(Field.extra, Field.score).limit(1)).one()
    assert set(extra) == {"NODE", "INCL", "MU_START", "MU_END", "NU_START", "NU_END"}  # no PSF_FWHM, MJD, status bits...
    assert score == pytest.approx(0.5)
    # once cached, nothing is fetched again
    n = len(log)
    assert json.loads(cli("ingest", "fields", "--sas", "--json").stdout)["status"] == "unchanged" and len(log) == n


def test_ingest_fields_sas_wrong_path_fails_fast(cli, db, sas, monkeypatch):
    files, _, log = sas
    files[WF] = b"<html>" + b" " * 100_000
    bad = cli("ingest", "fields", "--sas", ok=False)
    assert "not a FITS file" in str(bad.exception) and "sdss_window_flist_path" in str(bad.exception)
    assert sum(n for *_, n in log) <= 30_000  # the header check, not the whole file
    assert "FILE or --sas" in str(cli("ingest", "fields", ok=False).exception)


def test_frame_sources_stop_at_once_on_an_empty_field_index(cli, db, settings, tmp_path):
    add_clusters(db, 5)
    registry.save_model(db, settings, name="rich", kind="richness", config={"coef": [14.0, 1.0, 0.0]}, metrics={},
                        training={})
    commands = [
        ("fetch", "--source", "sas", "--tiles", "0"),
        ("fetch", "--source", "local", "--frames", str(tmp_path), "--tiles", "0"),
        ("predict", "--source", "sas", "--tiles", "0", "--model", "rich"),
        ("train", "--source", "sas"),
        ("explain", "1", "--source", "local", "--frames", str(tmp_path)),
    ]
    for args in commands:
        res = cli(*args, ok=False)
        message = str(res.exception)
        assert res.exit_code != 0 and "cmcat ingest fields --sas" in message and "\n" not in message, args
    with db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM runs")).scalar_one() == 0  # stopped before any run


def _tiny_cnn(db, settings, grid: dict) -> str:
    """An untrained but valid CNN ensemble in the registry (its masses are arbitrary; its inputs are not)."""
    torch.manual_seed(0)
    trunk = Trunk(width=4, blocks=(1, 1))
    arch = {"width": 4, "blocks": [1, 1], "n_in": 5 * trunk.n_features, "hidden": 8, "dropout": 0.0}
    heads = [MassHead(arch["n_in"], hidden=8, dropout=0.0) for _ in range(2)]
    registry.save_model(db, settings, name="cnn-tiny", kind="cnn",
                        config={"arch": arch, "grid": grid, "softening": 3.0, "tta": False},
                        metrics={"cv_scatter": 0.2}, training={},
                        weights={"trunk": trunk.state_dict(), "heads": [h.state_dict() for h in heads]})
    return "cnn-tiny"


def test_fresh_database_ingest_fields_sas_then_predict_sas(cli, db, settings, sas, real_data, tmp_path):
    """Only a loopback SAS (window_flist + ugriz frames of two overlapping runs) and the CLI."""
    files, _, log = sas
    header = read_header(real_data / "sdss_frames/stellar_classification/frame-g-000756-2-0471.fits.bz2")
    rng = np.random.default_rng(1)
    rows, cols = slice(300, 600), slice(600, 900)
    fields = []
    for run, field, shift, score in ((756, 471, 0, 0.9), (1000, 50, 120, 0.4)):  # two runs, overlapping
        hdr = crop_header(header, rows, slice(cols.start + shift, cols.stop + shift))
        for band in "ugriz":
            path = write_frame(tmp_path / "frames", band, run, 2, field,
                               rng.normal(0.0, 0.05, (300, 300)).astype(np.float32) + 0.1, hdr)
            files[frame_relpath(band, run, 2, field)] = path.read_bytes()
        fields.append((run, 2, field, frame_wcs(hdr), (300, 300), score))
    files[WF] = window_flist_bytes(fields, n_filler=500)
    w = fields[0][3]
    inside = [tuple(float(v) for v in w.pixel_to_world_values(x, 150)) for x in (100, 150, 200)]
    clusters = pd.DataFrame({"id": ["a", "b", "c", "far"], "ra": [p[0] for p in inside] + [20.0],
                             "dec": [p[1] for p in inside] + [20.0], "z": 0.3, "lambda": [20.0, 30.0, 40.0, 50.0]})
    clusters.to_csv(tmp_path / "clusters.csv", index=False)

    cli("ingest", "table", str(tmp_path / "clusters.csv"), "--ra", "ra", "--dec", "dec", "--z", "z", "--id", "id",
        "--richness", "lambda")
    cli("ingest", "fields", "--sas")
    model = _tiny_cnn(db, settings, {"size": 16, "aperture_mpc": None, "aperture_arcsec": 60.0})
    out = json.loads(cli("predict", "--source", "sas", "--tiles", "0", "--model", model, "--workers", "1",
                         "--json").stdout)
    assert out["status"] == "done" and out["n_done"] == 3 and out["n_failed"] == 1
    with db.connect() as conn:
        pred = conn.execute(text("SELECT c.source_id, p.log10_m500 FROM predictions p JOIN clusters c "
                                 "ON c.id = p.cluster_id ORDER BY 1")).all()
        cut = conn.execute(text("SELECT status, source FROM cutouts ORDER BY cluster_id")).all()
    assert [p[0] for p in pred] == ["a", "b", "c"] and all(np.isfinite(p[1]) for p in pred)
    assert cut[:3] == [("ok", "sas")] * 3 and cut[3][0] == "failed"
    served = {path for path, *_ in log}
    assert {frame_relpath(b, 756, 2, 471) for b in "ugriz"} <= served
