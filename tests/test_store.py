"""Cutout store: npz per tile, checksums in `cutouts`, refetch of changed files, one transaction per tile."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, insert, select

from clustermass import sky
from clustermass.db.models import Catalog, Cluster
from clustermass.db.models import Cutout as CutoutRow
from clustermass.errors import ImageError
from clustermass.images.base import Cutout, CutoutGrid
from clustermass.images.store import ensure_cutouts, read_store, tile_path

GRID = CutoutGrid(size=8, aperture_arcsec=40.0)


class FakeSource:
    """Deterministic cutouts (value = cluster id), coverage from a dict; records what it was asked for."""

    name = "fake"

    def __init__(self, coverage: dict[int, float] | None = None, fail: bool = False):
        self.coverage = coverage or {}
        self.fail = fail
        self.calls: list[list[int]] = []

    def cutouts(self, clusters, grid, bands="ugriz"):
        self.calls.append([int(i) for i in clusters["id"]])
        if self.fail:
            raise ImageError("SAS unreachable (test)")
        out = []
        for row in clusters.itertuples():
            cov = self.coverage.get(int(row.id), 1.0)
            data = np.full((len(bands), grid.size, grid.size), float(row.id), dtype=np.float32)
            if cov < 1:
                data[:, : int(round((1 - cov) * grid.size)), :] = np.nan
            meta = {"errors": ["frame x: HTTP 500"]} if cov == 0 else {"errors": []}
            out.append(Cutout(int(row.id), row.ra, row.dec, grid.pixel_scale(row.z), data, float(np.isfinite(data).mean()), meta))
        return out


def add_clusters(engine: Engine, n: int) -> pd.DataFrame:
    ra = 150.0 + 0.01 * np.arange(n)
    dec = np.full(n, 2.0)
    with engine.begin() as conn:
        cat = conn.execute(
            insert(Catalog).values(name="t", kind="table", path="/x", sha256="0", n_rows=n).returning(Catalog.id)
        ).scalar_one()
        conn.execute(
            insert(Cluster),
            [
                {"catalog_id": cat, "source_id": str(i), "ra": float(r), "dec": float(d), "hpx29": int(sky.hpx29(r, d)), "z": 0.2}
                for i, (r, d) in enumerate(zip(ra, dec))
            ],
        )
    return pd.DataFrame({"id": np.arange(1, n + 1), "ra": ra, "dec": dec, "z": 0.2, "richness": 30.0})


def rows(engine: Engine) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.read_sql(select(CutoutRow).order_by(CutoutRow.cluster_id), conn)


def ensure(engine, tmp_path, clusters, source, **kw):
    with engine.begin() as conn:
        return ensure_cutouts(conn, tmp_path, clusters, source, GRID, (5, 7), **kw)


def test_store_roundtrip_cache_and_statuses(db, tmp_path):
    clusters = add_clusters(db, 4)
    src = FakeSource({3: 0.5, 4: 0.0})
    res = ensure(db, tmp_path, clusters, src)
    assert (res.n_fetched, res.n_failed, res.n_cached) == (3, 1, 0)
    assert res.status == ["ok", "ok", "partial", "failed"]
    assert "HTTP 500" in res.error[3]
    assert np.all(res.data[0] == 1) and np.all(np.isnan(res.data[3]))
    assert res.covered_fraction[2] == pytest.approx(0.5)
    r = rows(db)
    path = tile_path(tmp_path, "fake", 5, 7, bands="ugriz", size=GRID.size)
    assert list(r["status"]) == ["ok", "ok", "partial", "failed"]
    assert r["path"].iloc[0] == str(path) and pd.isna(r["path"].iloc[3])
    assert r["sha256"].iloc[:3].nunique() == 1 and r["pixel_scale"].iloc[0] == pytest.approx(5.0)
    assert set(read_store(path, r["sha256"].iloc[0])) == {1, 2, 3}

    # Second call: stored ones come from the file, the failed one is retried (and fails again).
    again = ensure(db, tmp_path, clusters, src)
    assert (again.n_cached, again.n_fetched, again.n_failed) == (3, 0, 1)
    assert src.calls[-1] == [4]
    np.testing.assert_array_equal(again.data[:3], res.data[:3])
    # Without retrying failures nothing is fetched at all.
    ensure(db, tmp_path, clusters, src, retry_failed=False)
    assert len(src.calls) == 2


def test_changed_file_is_detected_and_refetched(db, tmp_path):
    clusters = add_clusters(db, 3)
    src = FakeSource()
    ensure(db, tmp_path, clusters, src)
    path = tile_path(tmp_path, "fake", 5, 7, bands="ugriz", size=GRID.size)
    with np.load(path) as npz:
        tampered = {k: npz[k].copy() for k in npz.files}
    tampered["data"][:] = 999.0  # a same-shaped but different file
    np.savez_compressed(path, **tampered)
    res = ensure(db, tmp_path, clusters, src)
    assert res.n_changed == 3 and res.n_fetched == 3 and res.n_cached == 0
    assert not np.any(res.data == 999.0)
    assert np.all(res.data[1] == 2)
    # The rewritten file is consistent again.
    assert ensure(db, tmp_path, clusters, src).n_cached == 3


def test_missing_file_and_merge_keep_other_entries(db, tmp_path):
    clusters = add_clusters(db, 4)
    src = FakeSource()
    ensure(db, tmp_path, clusters.iloc[:2], src)
    ensure(db, tmp_path, clusters.iloc[2:], src)  # same tile: merged into the same file
    path = tile_path(tmp_path, "fake", 5, 7, bands="ugriz", size=GRID.size)
    sha = rows(db)["sha256"]
    assert sha.nunique() == 1 and set(read_store(path, sha.iloc[0])) == {1, 2, 3, 4}
    path.unlink()
    res = ensure(db, tmp_path, clusters, src)
    assert res.n_changed == 4 and res.n_fetched == 4


def test_source_failure_is_recorded_and_grid_change_refetches(db, tmp_path):
    clusters = add_clusters(db, 2)
    res = ensure(db, tmp_path, clusters, FakeSource(fail=True))
    assert res.status == ["failed", "failed"] and "SAS unreachable" in res.error[0]
    assert list(rows(db)["status"]) == ["failed", "failed"]
    assert not list(tmp_path.rglob("*.npz"))
    src = FakeSource()
    ensure(db, tmp_path, clusters, src)
    with db.begin() as conn:
        bigger = ensure_cutouts(conn, tmp_path, clusters, src, CutoutGrid(size=16, aperture_arcsec=40.0), (5, 7))
    assert bigger.n_fetched == 2 and bigger.data.shape == (2, 5, 16, 16)


def test_rollback_leaves_no_rows(db, tmp_path):
    clusters = add_clusters(db, 2)
    with pytest.raises(RuntimeError):
        with db.begin() as conn:
            ensure_cutouts(conn, tmp_path, clusters, FakeSource(), GRID, (5, 7))
            raise RuntimeError("tile task died after storing")
    assert rows(db).empty
    res = ensure(db, tmp_path, clusters, FakeSource())
    assert res.n_fetched == 2 and res.n_cached == 0


def test_two_grids_in_one_tile_keep_separate_files(db, tmp_path):
    """One cluster moves to a bigger grid while its tile-mates stay on the old one: both shapes stay
    readable (one file per shape), and each cluster is served from the file its row points at."""
    clusters = add_clusters(db, 3)
    src = FakeSource()
    ensure(db, tmp_path, clusters, src)
    big = CutoutGrid(size=16, aperture_arcsec=40.0)
    with db.begin() as conn:
        moved = ensure_cutouts(conn, tmp_path, clusters.iloc[:1], src, big, (5, 7))
    assert moved.n_fetched == 1 and moved.data.shape == (1, 5, 16, 16)
    stay = ensure(db, tmp_path, clusters.iloc[1:], src)
    assert stay.n_cached == 2 and stay.n_fetched == 0 and np.all(stay.data[1] == 3)
    with db.begin() as conn:
        again = ensure_cutouts(conn, tmp_path, clusters.iloc[:1], src, big, (5, 7))
    assert again.n_cached == 1 and np.all(again.data == 1)
    small_file = tile_path(tmp_path, "fake", 5, 7, bands="ugriz", size=GRID.size)
    big_file = tile_path(tmp_path, "fake", 5, 7, bands="ugriz", size=16)
    assert small_file.exists() and big_file.exists()
    assert set(rows(db).set_index("cluster_id")["path"]) == {str(small_file), str(big_file)}
