"""Live data: the real SDSS SAS and SkyServer over the internet (skipped unless asked for).

    scripts/test.sh --remote-data -m remote_data

Each test goes through the same code as the offline loopback tests (SasClient.read and
read_range, build_cutouts, window_flist.read_head); only the servers are real.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
import requests

from clustermass.config import load_settings
from clustermass.images.base import BANDS, CutoutGrid
from clustermass.images.builder import build_cutouts
from clustermass.images.frames import frame_relpath
from clustermass.images.sas import SasClient
from clustermass.images.window_flist import REQUIRED, read_head

pytestmark = pytest.mark.remote_data

RMJ1225 = (186.30556, -0.44375, 0.285)  # RMJ122513.3-002637.5, in frame-g-000756-2-0471
SKYSERVER_SQL = "https://skyserver.sdss.org/dr12/SkyServerWS/SearchTools/SqlSearch"


@pytest.fixture
def settings(tmp_path):
    """Default settings (the public SAS, or CMCAT_SDSS_BASE_URL), caching under tmp_path."""
    return load_settings(overrides={"data_dir": tmp_path, "sdss_rate_limit": 2})


def test_real_g_frame_is_byte_for_byte_the_stored_copy(settings, real_data):
    client = SasClient(settings)
    relpath = frame_relpath("g", 756, 2, 471)
    frame = client.read(relpath)
    assert frame.data.shape == (1489, 2048)
    stored = real_data / "sdss_frames/stellar_classification/frame-g-000756-2-0471.fits.bz2"
    assert client.cache_path(relpath).read_bytes() == stored.read_bytes()


class SkyServerFields:
    """Fields around a position from one small SkyServer query (the objects within the radius, grouped by field)."""

    def candidates(self, ra, dec, radius_deg):
        out = []
        for r, d, rad in zip(ra, dec, radius_deg):
            sql = (
                "SELECT p.run, p.rerun, p.camcol, p.field, MAX(p.score) AS score, AVG(p.ra) AS ra, AVG(p.dec) AS dec "
                f"FROM dbo.fGetNearbyObjAllEq({r:.6f}, {d:.6f}, {rad * 60 + 0.5:.3f}) AS n "
                "JOIN PhotoObjAll AS p ON p.objID = n.objID GROUP BY p.run, p.rerun, p.camcol, p.field"
            )
            resp = requests.get(SKYSERVER_SQL, params={"cmd": sql, "format": "csv"}, timeout=60)
            resp.raise_for_status()
            rows = pd.read_csv(io.StringIO(resp.text), comment="#")
            out.append(rows.assign(rerun=rows["rerun"].astype(str), extra=[{}] * len(rows)))
        return out


def test_five_band_cutout_of_rmj1225_from_the_real_sas(settings):
    clusters = pd.DataFrame({"id": [1], "ra": [RMJ1225[0]], "dec": [RMJ1225[1]], "z": [RMJ1225[2]]})
    index = SkyServerFields()
    (fields,) = index.candidates([RMJ1225[0]], [RMJ1225[1]], [0.07])
    assert {756} <= set(fields["run"]) and fields["score"].notna().all()
    (cut,) = build_cutouts(clusters, CutoutGrid(), BANDS, index, SasClient(settings), concurrency=2)
    assert cut.meta["errors"] == [] and cut.covered_fraction == 1.0
    assert cut.data.shape == (5, 64, 64) and np.isfinite(cut.data).all()
    centre = cut.data[:, 28:36, 28:36].sum(axis=(1, 2))
    assert (centre[1:4] > 0).all()  # the cluster's galaxies shine in g, r and i


def test_first_rows_of_the_real_window_flist_by_range_request(settings):
    head = read_head(SasClient(settings), settings.sdss_window_flist_path, 5)
    assert len(head) == 5 and set(REQUIRED) | {"SCORE", "MU_START", "NU_END", "NODE", "INCL"} <= set(head.colnames)
    assert np.all((head["RA"] >= 0) & (head["RA"] < 360)) and np.all(np.abs(head["DEC"]) <= 90)
