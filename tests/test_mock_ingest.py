"""The mock catalogues go through `cmcat ingest`, `crossmatch` and `baseline` like the real ones."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from clustermass.mock import calibrate
from clustermass.mock.writers import FILES


def test_ingest_crossmatch_baseline_on_the_mock(cli, universe):
    cli("ingest", "redmapper", str(universe / FILES["redmapper_fits"]))
    cli("ingest", "mcxc", str(universe / FILES["mcxc"]))
    cli("ingest", "psz2", str(universe / FILES["psz2"]))
    cli("crossmatch")
    res = json.loads(cli("baseline", "--json").stdout)
    ours = calibrate.baseline_summary(universe)
    assert res["n"] == ours["labelled"]  # the database path finds the same labels as the file path
    assert res["overall"]["mae"] == pytest.approx(ours["mae"], abs=0.01)


def test_short_csv_form_ingests_too(cli, db, universe):
    cli("ingest", "redmapper", str(universe / FILES["redmapper_csv"]))
    with db.connect() as conn:
        n, lam_min = conn.execute(text("SELECT count(*), min(richness) FROM clusters")).one()
    assert n == 4000 and lam_min >= 20
