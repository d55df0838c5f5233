"""Network faults through the cutout store: every frame of a cluster fails in several ways before
it is served; the stored cutout is byte-identical to the one from the local mirror, and a frame
that never comes through leaves a failed row and no stored data. (Client-level retries, timeouts,
resets and Retry-After are in tests/test_sas_client.py.)"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pandas as pd
from pytest_httpserver import HTTPServer
from sqlalchemy import text
from werkzeug import Response

from clustermass.images.base import CutoutGrid
from clustermass.images.frames import frame_relpath
from clustermass.images.local import LocalSource
from clustermass.images.sas import SasClient, SasSource
from clustermass.images.store import ensure_cutouts, read_store, tile_path
from test_fetch import add_clusters, mirror, positions, store_rows  # noqa: F401  (mirror is a fixture)

GRID = CutoutGrid(size=16, aperture_arcsec=60)


def _corrupt(raw: bytes) -> bytes:
    buf = bytearray(raw)
    for k in range(len(buf) // 3, len(buf) // 3 + 64):
        buf[k] ^= 0x5A
    return bytes(buf)


def _serve(root, always_corrupt: str | None = None):
    """Per frame: HTTP 500, then 429, then a corrupt body, then the frame (or corrupt forever)."""
    seen: Counter = Counter()

    def handler(request):
        rel = request.path.removeprefix("/sas/")
        path = root / rel
        if not path.exists():
            return Response("missing", status=404)
        k = seen[rel]
        seen[rel] += 1
        raw = path.read_bytes()
        if rel == always_corrupt:
            return Response(_corrupt(raw))
        if k == 0:
            return Response("boom", status=500)
        if k == 1:
            return Response("slow down", status=429, headers={"Retry-After": "0"})
        if k == 2:
            return Response(_corrupt(raw))
        return Response(raw)

    return handler, seen


def _ensure(db, cfg, cluster_ids, ra, dec):
    clusters = pd.DataFrame({"id": cluster_ids, "ra": [ra], "dec": [dec], "z": [0.3]})
    with db.begin() as conn:
        return ensure_cutouts(conn, cfg.cutout_dir, clusters, SasSource(cfg, db), GRID, (0, 4))


def test_faulty_sas_gives_exact_cutout_or_recorded_failure(db, mirror, settings):  # noqa: F811
    root, fields = mirror
    add_clusters(db, positions(fields)[:1])
    ra, dec = positions(fields)[0]
    for always_corrupt in (None, frame_relpath("i", 756, 2, 471)):
        with db.begin() as conn:  # start from an empty store each time
            conn.execute(text("DELETE FROM cutouts"))
        tile_path(settings.cutout_dir, "sas", 0, 4, bands="ugriz", size=GRID.size).unlink(missing_ok=True)
        handler, seen = _serve(root, always_corrupt)
        srv = HTTPServer(host="127.0.0.1", threaded=True)
        srv.start()
        try:
            srv.expect_request(re.compile("/sas/.*")).respond_with_handler(handler)
            cfg = settings.__class__(**{**settings.__dict__, "sdss_base_url": srv.url_for("/sas"), "sdss_rate_limit": 0,
                                        "sdss_retries": 4, "sdss_backoff": 0.01,
                                        "sdss_cache_dir": settings.data_dir / f"cache-{bool(always_corrupt)}"})
            res = _ensure(db, cfg, [1], ra, dec)
        finally:
            srv.stop()
        client = SasClient(cfg)
        if always_corrupt is None:
            (disk,) = LocalSource(root, db).cutouts(pd.DataFrame({"id": [1], "ra": [ra], "dec": [dec], "z": [0.3]}), GRID)
            assert res.status == ["ok"]
            np.testing.assert_array_equal(res.data[0], disk.data)
            assert {frame_relpath(b, 756, 2, 471) for b in "ugriz"} <= set(seen)
            assert set(seen.values()) == {4}  # every frame: 3 faults, then the good one
            row = store_rows(db).iloc[0]
            stored = read_store(row["path"], row["sha256"])
            np.testing.assert_array_equal(stored[1][0], disk.data)
            assert len(list((client.cache_dir / "quarantine").rglob("*.error"))) == len(seen)  # corrupt ones kept aside
        else:  # one band never arrives intact: a failed row, no data, no file, nothing cached for it
            assert seen[always_corrupt] == 5 and res.status == ["failed"] and "failed after 5 attempts" in res.error[0]
            row = store_rows(db).iloc[0]
            assert row["status"] == "failed" and pd.isna(row["path"]) and pd.isna(row["sha256"])
            assert not list(cfg.cutout_dir.rglob("*.npz"))  # no store file at all
            assert not client.cache_path(always_corrupt).exists()
