"""Cross-match: the vectorised matcher on hand-made cases, and label counts on the real catalogues."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

from clustermass.catalogs.crossmatch import match, parse_angle_arcsec, parse_dz, parse_priority
from clustermass.errors import InputError
from test_ingest import one_error_line, run_cmcat

ARCSEC = 1 / 3600.0


def clusters(*rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["id", "ra", "dec", "z"])


def measurements(*rows) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["id", "ra", "dec", "z", "log10_m500", "source"])
    df["log10_m500_err"] = 0.1
    return df


def test_priority_beats_distance_and_nearest_wins_within_a_source():
    c = clusters((1, 150.0, 2.0, 0.20))
    m = measurements(
        (10, 150.0 + 10 * ARCSEC, 2.0, 0.21, 14.0, "psz2"),  # nearest, but SZ
        (11, 150.0, 2.0 + 90 * ARCSEC, 0.20, 14.5, "mcxc"),  # farther X-ray
        (12, 150.0, 2.0 - 60 * ARCSEC, 0.20, 14.7, "mcxc"),  # nearer X-ray: this one
    )
    labels = match(c, m)
    assert labels["measurement_id"].tolist() == [12]
    assert labels["separation_arcsec"].iloc[0] == pytest.approx(60.0, rel=1e-6)
    assert labels["source"].tolist() == ["mcxc"] and labels["log10_m500"].tolist() == [14.7]
    assert match(c, m, priority=("psz2", "mcxc"))["measurement_id"].tolist() == [10]
    # sources not in the priority list rank last, whatever their distance
    m2 = measurements((20, 150.0, 2.0, 0.2, 14.0, "table"), (21, 150.0, 2.0 + 100 * ARCSEC, 0.2, 14.2, "psz2"))
    assert match(c, m2)["measurement_id"].tolist() == [21]


def test_radius_and_redshift_window():
    c = clusters((1, 10.0, 0.0, 0.30), (2, 20.0, 0.0, 0.30), (3, 30.0, 0.0, 0.30), (4, 40.0, 0.0, np.nan))
    m = measurements(
        (10, 10.0 + 119 * ARCSEC, 0.0, 0.30, 14.0, "mcxc"),  # inside 2'
        (11, 20.0 + 121 * ARCSEC, 0.0, 0.30, 14.0, "mcxc"),  # outside 2'
        (12, 30.0, 0.0, 0.30 + 0.0651, 14.0, "mcxc"),  # |dz| = 0.0651 > 0.05 * 1.3
        (13, 40.0, 0.0, 0.30, 14.0, "mcxc"),  # cluster without z never matches
    )
    labels = match(c, m)
    assert labels["cluster_id"].tolist() == [1]
    assert labels["dz"].iloc[0] == pytest.approx(0.0)
    m.loc[m["id"] == 12, "z"] = 0.30 + 0.0649
    assert match(c, m)["cluster_id"].tolist() == [1, 3]
    assert match(c, m, radius_arcsec=125)["cluster_id"].tolist() == [1, 2, 3]


def test_unknown_measurements_are_ignored_and_ra_wraps():
    c = clusters((1, 359.99, 10.0, 0.2), (2, 100.0, 89.999, 0.2))
    m = measurements(
        (10, 0.005, 10.0, 0.2, 14.0, "mcxc"),  # across RA = 0: ~53 arcsec away
        (11, 280.0, 89.999, 0.2, 14.1, "psz2"),  # across the pole: 7.2 arcsec away
        (12, 359.99, 10.0, np.nan, 14.0, "mcxc"),  # unknown z
        (13, 359.99, 10.0, 0.2, np.nan, "mcxc"),  # unknown mass
    )
    labels = match(c, m)
    assert labels["measurement_id"].tolist() == [10, 11]
    assert labels["separation_arcsec"].tolist() == pytest.approx([0.015 * np.cos(np.radians(10)) * 3600, 7.2],
                                                                 rel=1e-3)


def test_one_label_per_cluster_many_clusters_per_measurement():
    rng = np.random.default_rng(0)
    n = 2000
    c = clusters(*[(i, ra, dec, 0.3) for i, (ra, dec) in enumerate(zip(rng.uniform(0, 1, n), rng.uniform(0, 1, n)))])
    m = measurements(*[(i, ra, dec, 0.3, 14.0, "mcxc") for i, (ra, dec) in
                       enumerate(zip(rng.uniform(0, 1, 300), rng.uniform(0, 1, 300)))])
    labels = match(c, m)
    assert labels["cluster_id"].is_unique
    # brute force: nearest measurement of each cluster within 2 arcmin
    d = np.hypot((c["ra"].to_numpy()[:, None] - m["ra"].to_numpy()[None]) * np.cos(np.radians(0.5)),
                 c["dec"].to_numpy()[:, None] - m["dec"].to_numpy()[None]) * 3600
    expect = {i: int(np.argmin(d[i])) for i in range(n) if d[i].min() < 120}
    assert dict(zip(labels["cluster_id"], labels["measurement_id"])) == expect


def test_parsers():
    assert parse_angle_arcsec("2arcmin") == 120.0
    assert parse_angle_arcsec("0.01deg") == pytest.approx(36.0)
    assert parse_angle_arcsec("30") == 30.0
    for bad in ("two arcmin", "-1arcsec", "0"):
        with pytest.raises(InputError):
            parse_angle_arcsec(bad)
    assert parse_priority("mcxc, psz2,table") == ("mcxc", "psz2", "table")
    with pytest.raises(InputError):
        parse_priority(" , ")


@pytest.fixture
def real_loaded(cli, db, real_data):
    cli("ingest", "redmapper", str(real_data / "clusterdb/sdss_redmapper.csv.gz"))
    cli("ingest", "mcxc", str(real_data / "clusterdb/mcxc.csv.gz"))
    cli("ingest", "psz2", str(real_data / "HFI_PCCS_SZ-union_R2.08.fits"))
    return db


def test_real_label_counts_and_rerun_is_idempotent(cli, real_loaded):
    out = json.loads(cli("crossmatch", "--json").stdout)
    assert out["n_clusters"] == 26350 and out["n_measurements"] == 1743 + 1653
    assert out["n_measurements_unusable"] == 559
    # reference (data README): 460 labelled clusters, 330 MCXC, 130 PSZ2
    assert abs(out["n_labels"] - 460) <= 5
    assert abs(out["per_source"]["mcxc"] - 330) <= 5 and abs(out["per_source"]["psz2"] - 130) <= 5
    with real_loaded.connect() as conn:
        first = conn.execute(text("SELECT * FROM labels ORDER BY cluster_id")).all()
        a2142 = conn.execute(text(
            "SELECT c.name, l.log10_m500, l.separation_arcsec FROM labels l JOIN clusters c ON c.id = l.cluster_id "
            "JOIN mass_measurements m ON m.id = l.measurement_id WHERE m.source_id = 'J1558.3+2713'")).one()
    assert a2142[0] == "RMJ155820.0+271400.3" and a2142[1] == pytest.approx(np.log10(8.1491e14))
    assert a2142[2] < 120
    cli("crossmatch")
    with real_loaded.connect() as conn:
        assert conn.execute(text("SELECT * FROM labels ORDER BY cluster_id")).all() == first
    # SZ preferred: more PSZ2 labels, same clusters within a couple
    sz = json.loads(cli("crossmatch", "--priority", "psz2,mcxc", "--json").stdout)
    assert sz["per_source"]["psz2"] > out["per_source"]["psz2"] and abs(sz["n_labels"] - out["n_labels"]) <= 2
    assert "labels per source" in cli("crossmatch", "--radius", "1arcmin").stdout


# --------------------------------------------------------------------------- nonsense windows

NONSENSE = [("--dz", "-0.1"), ("--dz", "nan"), ("--dz", "0"), ("--radius", "infdeg"), ("--radius", "nanarcmin"),
            ("--radius", "-1arcmin")]


def test_window_parsers_refuse_nonsense():
    assert parse_dz("0.05") == 0.05
    for bad in ("-0.1", "nan", "inf", "0", "x"):
        with pytest.raises(InputError, match="redshift tolerance"):
            parse_dz(bad)
    for bad in ("infdeg", "nanarcmin", "-inf"):
        with pytest.raises(InputError, match="positive and finite"):
            parse_angle_arcsec(bad)


def test_nonsense_window_is_a_usage_error(cli):
    """Refused while parsing the options (exit code 2), before the database is touched."""
    for option, value in NONSENSE:
        res = cli("crossmatch", option, value, ok=False)
        shown = " ".join(res.output.replace("│", " ").split())  # the message may be boxed and wrapped
        assert res.exit_code == 2 and "must be positive and finite" in shown, (option, value, res.output)


def test_nonsense_window_exit_code_2_through_the_console_script(db, pg_url, tmp_path):
    res = run_cmcat(pg_url, tmp_path / "data", "crossmatch", "--dz", "nan")
    last = res.stderr.strip().splitlines()[-1]
    assert res.returncode == 2 and last.startswith("Error:") and "must be positive and finite" in last, res.stderr


def test_nonsense_wide_or_empty_windows_leave_the_labels(cli, real_loaded, pg_url, tmp_path):
    """Real catalogues, 460 labels: nonsense values, a window beyond 10 arcmin or dz 0.5, and a
    match that finds nothing are refused through the console script and change no label; --force
    runs the wide and the empty window."""
    def labels():
        with real_loaded.connect() as conn:
            return conn.execute(text("SELECT * FROM labels ORDER BY cluster_id")).all()

    cli("crossmatch")
    before = labels()
    assert abs(len(before) - 460) <= 5
    for option, value in NONSENSE:
        res = run_cmcat(pg_url, tmp_path / "data", "crossmatch", option, value)
        assert res.returncode != 0 and "must be positive and finite" in " ".join(res.stderr.split()), res.stderr
        assert labels() == before, (option, value)
    for args, words in ((("--radius", "10deg"), ["radius 36000 arcsec is beyond 10 arcmin", "--force"]),
                        (("--dz", "0.6"), ["redshift tolerance 0.6 is beyond 0.5", "--force"]),
                        (("--radius", "0.01arcsec"), [f"replace the {len(before)} existing labels with none",
                                                      "--force"])):
        line = one_error_line(run_cmcat(pg_url, tmp_path / "data", "crossmatch", *args))
        assert all(w in line for w in words), line
        assert labels() == before, args
    wide = json.loads(cli("crossmatch", "--radius", "10deg", "--force", "--json").stdout)
    assert wide["n_labels"] > 25_000
    assert json.loads(cli("crossmatch", "--radius", "0.01arcsec", "--force", "--json").stdout)["n_labels"] == 0
    assert labels() == []
