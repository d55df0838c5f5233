"""HEALPix indexing: property tests against brute force, and a cone search on a real Postgres."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clustermass import sky
from clustermass.db.bulk import copy_upsert
from clustermass.db.queries import clusters_in_tile, cone_search, tile_counts

ras = st.floats(0, 360, exclude_max=True, allow_nan=False)
decs = st.floats(-90, 90, allow_nan=False)
points = st.lists(st.tuples(ras, decs), min_size=1, max_size=50)


@given(points, st.integers(0, 29))
@settings(max_examples=60, deadline=None)
def test_every_point_in_exactly_one_tile(pts, order) -> None:
    ra, dec = np.array(pts).T
    h = sky.hpx29(ra, dec)
    tiles = sky.tile_of(h, order)
    for hi, t in zip(h, tiles):
        lo, up = sky.tile_range(order, int(t))
        assert lo <= hi <= up
        # ...and in no neighbouring tile
        for other in (t - 1, t + 1):
            if 0 <= other < 12 * 4**order:
                olo, oup = sky.tile_range(order, int(other))
                assert not olo <= hi <= oup


@given(points, st.integers(0, 8), st.data())
@settings(max_examples=60, deadline=None)
def test_range_query_equals_brute_force(pts, order, data) -> None:
    ra, dec = np.array(pts).T
    h = sky.hpx29(ra, dec)
    chosen = data.draw(st.lists(st.integers(0, 12 * 4**order - 1), min_size=1, max_size=6))
    ranges = sky.ranges_to_order29(np.array(chosen), order)
    in_ranges = np.zeros(h.size, bool)
    for lo, hi in ranges:
        in_ranges |= (h >= lo) & (h <= hi)
    assert np.array_equal(in_ranges, np.isin(sky.tile_of(h, order), chosen))


@given(ras, st.floats(-89, 89), st.floats(0.001, 5))
@settings(max_examples=40, deadline=None)
def test_cone_ranges_cover_the_cone(ra, dec, radius) -> None:
    rng = np.random.default_rng(0)
    # random points within the cone, built by offsetting and keeping those inside
    pra = (ra + rng.uniform(-3, 3, 400) * radius / max(np.cos(np.radians(dec)), 0.05)) % 360
    pdec = np.clip(dec + rng.uniform(-3, 3, 400) * radius, -90, 90)
    inside = sky.angular_separation(ra, dec, pra, pdec) <= radius
    h = sky.hpx29(pra, pdec)
    covered = np.zeros(h.size, bool)
    for lo, hi in sky.cone_ranges(ra, dec, radius):
        covered |= (h >= lo) & (h <= hi)
    assert covered[inside].all()


def test_hpx29_matches_known_values() -> None:
    # The north pole is in base pixel 0..3 and the first pixel at order 29 of base pixel 4 is 4 << 58.
    assert sky.tile_of(sky.hpx29(0.0, 90.0), 0) in (0, 1, 2, 3)
    assert sky.tile_range(0, 4) == (4 << 58, (5 << 58) - 1)
    assert sky.hpx29(np.array([10.0, 200.0]), np.array([-5.0, 45.0])).dtype == np.int64


@pytest.mark.parametrize(
    "spec,order,pixels",
    [("3", 3, None), ("3:12,13,40", 3, (12, 13, 40)), (" 5:7 ", 5, (7,))],
)
def test_parse_tiles(spec, order, pixels) -> None:
    assert sky.parse_tiles(spec) == sky.TileSpec(order, pixels)


@pytest.mark.parametrize("spec", ["x", "3:", "3:1000", "30", "-1", "2:a"])
def test_parse_tiles_rejects(spec) -> None:
    with pytest.raises(ValueError, match="tile spec|order"):
        sky.parse_tiles(spec)


def test_tile_spec_resolve_keeps_only_occupied_tiles() -> None:
    h = sky.hpx29(np.array([10.0, 10.1, 200.0]), np.array([0.0, 0.0, 40.0]))
    assert sky.TileSpec(2).resolve(h).tolist() == sorted(set(sky.tile_of(h, 2).tolist()))


def test_tile_and_cone_queries_in_postgres(db) -> None:
    rng = np.random.default_rng(1)
    n = 3000
    ra, dec = rng.uniform(150, 160, n), rng.uniform(-5, 5, n)
    with db.begin() as conn:
        from sqlalchemy import text

        conn.execute(text("INSERT INTO catalogs (name, kind, path, sha256, n_rows) VALUES ('t', 'table', '/t', 'x', 0)"))
        df = pd.DataFrame({"catalog_id": 1, "source_id": [str(i) for i in range(n)], "ra": ra, "dec": dec,
                           "hpx29": sky.hpx29(ra, dec)})
        copy_upsert(conn, "clusters", df)
    with db.connect() as conn:
        counts = tile_counts(conn, 4)
        assert counts.sum() == n
        pix = int(counts.index[0])
        got = clusters_in_tile(conn, 4, pix)
        assert len(got) == counts.loc[pix]
        assert (sky.tile_of(got["hpx29"].to_numpy(), 4) == pix).all()
        cone = cone_search(conn, 155.0, 0.0, 1.0)
    brute = np.flatnonzero(sky.angular_separation(155.0, 0.0, ra, dec) <= 1.0)
    assert sorted(cone["id"] - 1) == sorted(brute.tolist())
    assert cone["separation_deg"].is_monotonic_increasing
