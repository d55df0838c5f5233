"""`cmcat fetch` end to end: tiles on the Dask runner, local mirror and loopback SAS, store, resume."""

from __future__ import annotations

import dataclasses
import json
import re
from contextlib import contextmanager

import numpy as np
import pandas as pd
import pytest
from pytest_httpserver import HTTPServer
from sqlalchemy import insert, select
from werkzeug import Response

from clustermass import sky
from clustermass.db.models import Catalog, Cluster
from clustermass.db.models import Cutout as CutoutRow
from clustermass.images.base import CutoutGrid
from clustermass.images.frames import frame_relpath
from clustermass.images.local import LocalSource
from clustermass.images.sas import SasClient, SasSource
from clustermass.images.store import read_store
from framekit import add_fields, crop_header, frame_wcs, read_header, write_frame

ROWS, COLS = slice(300, 600), slice(600, 900)  # a 300x300 piece of a real frame's footprint (small: fast bz2)


@pytest.fixture
def mirror(db, real_data, tmp_path):
    """ugriz frames (u missing for the second field) of two overlapping 300x300 fields, indexed in `fields`."""
    header = read_header(real_data / "sdss_frames/stellar_classification/frame-g-000756-2-0471.fits.bz2")
    rng = np.random.default_rng(5)
    root = tmp_path / "mirror"
    fields = []
    for field, shift in ((471, 0), (472, 250)):
        hdr = crop_header(header, ROWS, slice(COLS.start + shift, COLS.stop + shift))
        for band in "ugriz":
            if field == 472 and band == "u":
                continue
            data = rng.normal(0.0, 0.05, size=(300, 300)).astype(np.float32) + 0.01 * (1 + "ugriz".index(band))
            write_frame(root, band, 756, 2, field, data, hdr)
        fields.append((756, 2, field, frame_wcs(hdr), (300, 300)))
    add_fields(db, fields)
    return root, fields


def add_clusters(db, positions):
    with db.begin() as conn:
        cat = conn.execute(
            insert(Catalog).values(name="rm", kind="redmapper", path="/x", sha256="0", n_rows=3).returning(Catalog.id)
        ).scalar_one()
        conn.execute(insert(Cluster), [
            {"catalog_id": cat, "source_id": str(i), "name": f"c{i}", "ra": ra, "dec": dec,
             "hpx29": int(sky.hpx29(ra, dec)), "z": 0.3, "richness": 30.0}
            for i, (ra, dec) in enumerate(positions)
        ])


def positions(fields):
    """Inside field 471 only; inside field 472 only (u band missing there); nowhere."""
    w471, w472 = fields[0][3], fields[1][3]
    inside = tuple(float(v) for v in w471.pixel_to_world_values(120, 150))
    far = tuple(float(v) for v in w472.pixel_to_world_values(200, 150))
    return [inside, far, (20.0, 20.0)]


def store_rows(db):
    with db.connect() as conn:
        return pd.read_sql(select(CutoutRow).order_by(CutoutRow.cluster_id), conn)


def test_fetch_local_resume_and_rerun(cli, db, mirror):
    root, fields = mirror
    add_clusters(db, positions(fields))
    args = ("fetch", "--source", "local", "--frames", str(root), "--tiles", "0", "--workers", "1", "--size", "16",
            "--aperture-arcsec", "60", "--json")
    first = json.loads(cli(*args, ok=False).stdout)
    assert first["status"] == "done"  # failed cutouts are data, not a failed run
    assert (first["fetched"], first["failed"], first["cached"]) == (1, 2, 0)
    reasons = " ".join(first["failure_reasons"])
    assert "frame-u-000756-2-0472" in reasons and "no frame" in reasons
    rows = store_rows(db)
    assert list(rows["status"]) == ["ok", "failed", "failed"]
    stored = read_store(rows["path"].iloc[0], rows["sha256"].iloc[0])
    assert set(stored) == {1}
    data, covered, scale = stored[1]
    assert data.shape == (5, 16, 16) and covered == 1.0 and scale == pytest.approx(60 / 16)
    # ugriz in order: the bands were given different sky levels, per pixel sum of ~ (scale/0.396)^2 frame pixels.
    levels = data.reshape(5, -1).mean(axis=1) / (scale / 0.396) ** 2
    np.testing.assert_allclose(levels, [0.01, 0.02, 0.03, 0.04, 0.05], rtol=0.05)

    # Same command again: its tiles are done, nothing is fetched.
    again = json.loads(cli(*args).stdout)
    assert again["resumed"] and again["n_tiles_skipped"] >= 1 and again["fetched"] == 0 and again["n_tiles_done"] == 0


@contextmanager
def sas_mirror(root, settings, served=None, failing=None, **overrides):
    """Serve `root` (SAS layout) on loopback; yield settings pointing at it. `failing` answers 503."""

    def handler(request):
        rel = request.path.removeprefix("/sas/")
        if served is not None:
            served.append(rel)
        if rel == failing:
            return Response("overloaded", status=503)
        path = root / rel
        return Response(path.read_bytes()) if path.exists() else Response("missing", status=404)

    srv = HTTPServer(host="127.0.0.1")
    srv.start()
    try:
        srv.expect_request(re.compile("/sas/.*")).respond_with_handler(handler)
        yield dataclasses.replace(settings, sdss_base_url=srv.url_for("/sas"), sdss_rate_limit=0, **overrides)
    finally:
        srv.stop()


def test_sas_over_http_equals_local(db, mirror, tmp_path, settings):
    root, fields = mirror
    add_clusters(db, positions(fields)[:1])
    served = []
    with sas_mirror(root, settings, served) as cfg:
        clusters = pd.DataFrame({"id": [1], "ra": [positions(fields)[0][0]], "dec": [positions(fields)[0][1]], "z": [0.3]})
        grid = CutoutGrid(size=16, aperture_arcsec=60)
        (via_http,) = SasSource(cfg, db).cutouts(clusters, grid)
        (via_disk,) = LocalSource(root, db).cutouts(clusters, grid)
    np.testing.assert_array_equal(via_http.data, via_disk.data)
    assert via_http.covered_fraction == 1.0
    assert len(served) == len(set(served)) and set(frame_relpath(b, 756, 2, 471) for b in "ugriz") <= set(served)
    assert SasClient(cfg).cache_path(frame_relpath("r", 756, 2, 471)).exists()


def test_fetch_rejects_bad_options(cli):
    def error_of(*args):
        res = cli(*args, ok=False)
        assert res.exit_code != 0
        return f"{res.output} {res.exception}"

    assert "--frames" in error_of("fetch", "--source", "local", "--tiles", "0")
    assert "bad tile spec" in error_of("fetch", "--tiles", "x")
    assert "'ftp' is not one of" in error_of("fetch", "--source", "ftp", "--tiles", "0")
    assert "--tiles" in error_of("fetch")


@pytest.mark.slow
def test_mock_frames_http_equals_local_and_matches_direct_render(cli, db, tmp_path, settings):
    """`cmcat mock frames` -> `cmcat ingest fields` -> cutouts via local path == via HTTP ~ direct render."""
    from clustermass.mock.source import MockSource, universe_seed
    from clustermass.model.truth import read_truth

    uni, out = tmp_path / "universe", tmp_path / "frames"
    cli("mock", "universe", "--n", "30", "--area", "10", "--seed", "1", "--out", str(uni))
    truth = read_truth(uni)
    halo = truth[(truth.rm_id > 0) & (truth.z < 0.3)].sort_values("lambda_true").iloc[-1]  # the richest nearby cluster
    pix = int(sky.tile_of(sky.hpx29(halo.ra, halo.dec), 12))
    cli("mock", "frames", "--universe", str(uni), "--out", str(out), "--tiles", f"12:{pix}", "--bands", "r")
    cli("ingest", "fields", str(out / "window_flist.fits"))
    with db.connect() as conn:
        extra = conn.execute(select(__import__("clustermass.db.models", fromlist=["Field"]).Field.extra)).scalars().first()
    assert {k.lower() for k in extra} >= {"mu_start", "nu_end", "node", "incl"}  # (mu, nu) prefilter is active
    add_clusters(db, [(float(halo.ra), float(halo.dec))])
    clusters = pd.DataFrame({"id": [1], "ra": [halo.ra], "dec": [halo.dec], "z": [halo.z], "richness": [halo.lambda_true]})
    grid = CutoutGrid()

    (local,) = LocalSource(out, db).cutouts(clusters, grid, "r")
    srv = HTTPServer(host="127.0.0.1")
    srv.start()
    try:
        srv.expect_request(__import__("re").compile("/sas/.*")).respond_with_handler(
            lambda r: Response((out / r.path.removeprefix("/sas/")).read_bytes())
        )
        cfg = settings.__class__(**{**settings.__dict__, "sdss_base_url": srv.url_for("/sas"), "sdss_rate_limit": 0})
        (http,) = SasSource(cfg, db).cutouts(clusters, grid, "r")
    finally:
        srv.stop()
    assert local.covered_fraction == 1.0, local.meta
    np.testing.assert_array_equal(http.data, local.data)

    (direct,) = MockSource(uni, seed=universe_seed(uni)).cutouts(clusters, grid, "r")
    img, ref = local.data[0], direct.data[0]
    diff = img - ref
    # Same galaxies: the images correlate, and the difference is zero-mean noise.
    assert np.corrcoef(img.ravel(), ref.ravel())[0, 1] > 0.5
    assert abs(diff.mean()) < 5 * np.std(diff) / np.sqrt(diff.size)
    # The cluster's light (central 16x16 pixels) agrees within 5 sigma of the noise of both draws.
    centre = np.s_[24:40, 24:40]
    sigma = np.std(diff) * np.sqrt(diff[centre].size)
    assert abs(img[centre].sum() - ref[centre].sum()) < 5 * sigma
    assert img[centre].sum() > 5 * sigma  # ... and there is light to compare


def test_sas_permanent_failure_is_recorded_in_store(db, mirror, tmp_path, settings):
    """A frame the SAS keeps failing (HTTP 503) ends as a failed cutout with the reason; nothing half-written."""
    from clustermass.images.store import ensure_cutouts

    root, fields = mirror
    add_clusters(db, positions(fields)[:1])
    bad = frame_relpath("z", 756, 2, 471)
    with sas_mirror(root, settings, failing=bad, sdss_retries=2, sdss_backoff=0.01) as cfg:
        ra, dec = positions(fields)[0]
        clusters = pd.DataFrame({"id": [1], "ra": [ra], "dec": [dec], "z": [0.3]})
        with db.begin() as conn:
            res = ensure_cutouts(conn, cfg.cutout_dir, clusters, SasSource(cfg, db), CutoutGrid(size=16, aperture_arcsec=60), (0, 4))
    assert res.status == ["failed"] and "503" in res.error[0] and "failed after 3 attempts" in res.error[0]
    row = store_rows(db).iloc[0]
    assert row["status"] == "failed" and "frame-z-000756-2-0471" in row["error"] and pd.isna(row["path"])
    assert not list(cfg.cutout_dir.rglob("*.npz"))  # no store file at all
    assert not SasClient(cfg).cache_path(bad).exists()
    assert SasClient(cfg).cache_path(frame_relpath("g", 756, 2, 471)).exists()  # the good frames stay cached
    assert not any(p.name.endswith(".part") for p in tmp_path.rglob("*"))
