"""`cmcat ingest ...` on a real PostgreSQL: real catalogues, idempotency, --replace, every bad input."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits
from astropy.table import Table
from sqlalchemy import text

from clustermass import sky
from clustermass.db.models import TABLES
from test_readers import full_redmapper


def snapshot(db) -> dict:
    """Row counts of every table plus the catalogue rows: what 'unchanged' is compared on."""
    with db.connect() as conn:
        counts = {t: conn.execute(text(f'SELECT count(*) FROM "{t}"')).scalar_one() for t in TABLES}
        cats = conn.execute(text("SELECT id, name, sha256, n_rows, ingested_at FROM catalogs ORDER BY id")).all()
    return {"counts": counts, "catalogs": [tuple(r) for r in cats]}


def run_cmcat(url: str, data_dir: Path, *args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    """The real console script (`python -m clustermass ARGS`) against the database at `url`."""
    env = {**os.environ, "CMCAT_DATABASE_URL": url, "CMCAT_DATA_DIR": str(data_dir)}
    return subprocess.run([sys.executable, "-m", "clustermass", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def one_error_line(res: subprocess.CompletedProcess) -> str:
    """The single `error:` line of a command that failed cleanly (exit code 1, nothing on stdout)."""
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 1 and res.stdout == "" and len(lines) == 1 and lines[0].startswith("error: "), \
        (res.returncode, res.stdout[-2000:], res.stderr[-2000:])
    return lines[0]


def short_redmapper(path: Path, n: int = 20, **override) -> pd.DataFrame:
    """Write a short-form redMaPPer CSV (optionally gzipped by name) and return its frame."""
    rng = np.random.default_rng(3)
    df = pd.DataFrame({
        "ID": np.arange(1, n + 1), "name": [f"RMJ{i:04d}" for i in range(n)],
        "RA": rng.uniform(0, 360, n), "dec": rng.uniform(-20, 70, n),
        "redshift": rng.uniform(0.1, 0.5, n), "lambda": rng.uniform(20, 100, n), "r500": 0.1,
    })
    for col, values in override.items():
        df[col] = values
    df.to_csv(path, index=False)
    return df


def test_real_catalogues_load_with_units_and_hpx(cli, db, real_data):
    out = json.loads(cli("ingest", "redmapper", str(real_data / "clusterdb/sdss_redmapper.csv.gz"), "--json").stdout)
    assert (out["status"], out["n_rows"], out["catalog"]) == ("loaded", 26350, "sdss_redmapper")
    cli("ingest", "mcxc", str(real_data / "clusterdb/mcxc.csv.gz"))
    psz = json.loads(cli("ingest", "psz2", str(real_data / "HFI_PCCS_SZ-union_R2.08.fits"), "--json").stdout)
    assert (psz["n_rows"], psz["n_unknown_z"], psz["n_unknown_mass"]) == (1653, 559, 559)
    with db.connect() as conn:
        counts = dict(conn.execute(text(
            "SELECT k.kind, count(*) FROM mass_measurements m JOIN catalogs k ON k.id = m.catalog_id GROUP BY 1")).all())
        assert counts == {"mcxc": 1743, "psz2": 1653}
        coma = conn.execute(text("SELECT log10_m500, z, method, name, extra->>'Aname' FROM mass_measurements "
                                 "WHERE source_id = 'J1259.7+2756'")).one()
        assert coma[0] == pytest.approx(np.log10(4.2846e14), abs=1e-9) and coma[1] == pytest.approx(0.0231)
        assert coma[2:] == ("xray", "RXC J1259.7+2756", "Coma")
        a2142 = conn.execute(text("SELECT log10_m500 FROM mass_measurements WHERE source_id = 'J1558.3+2713'")).scalar()
        assert a2142 == pytest.approx(np.log10(8.1491e14), abs=1e-9)
        assert conn.execute(text("SELECT count(*) FROM mass_measurements WHERE method = 'sz' AND "
                                 "log10_m500 IS NOT NULL AND z IS NOT NULL")).scalar() == 1094
        rows = conn.execute(text("SELECT source_id, ra, dec, hpx29, richness, z FROM clusters ORDER BY id")).all()
    assert len(rows) == 26350 and rows[0][0] == "1" and rows[0][4] == pytest.approx(180.10445)
    ra, dec, hpx = (np.array([r[i] for r in rows]) for i in (1, 2, 3))
    np.testing.assert_array_equal(hpx, sky.hpx29(ra, dec))


def test_same_file_twice_changes_nothing_and_replace_reloads(cli, db, tmp_path):
    path = tmp_path / "rm.csv"
    df = short_redmapper(path)
    cli("ingest", "redmapper", str(path))
    before = snapshot(db)
    with db.connect() as conn:
        ids_before = dict(conn.execute(text("SELECT source_id, id FROM clusters")).all())
    again = json.loads(cli("ingest", "redmapper", str(path), "--json").stdout)
    assert again["status"] == "unchanged" and snapshot(db) == before
    # a different file under the same name needs --replace
    df.loc[0, "lambda"] = 123.0
    df.iloc[:-2].to_csv(path, index=False)  # two clusters gone, one changed
    res = cli("ingest", "redmapper", str(path), ok=False)
    assert res.exit_code == 1 and "--replace" in str(res.exception) and snapshot(db) == before
    out = json.loads(cli("ingest", "redmapper", str(path), "--replace", "--json").stdout)
    assert (out["status"], out["n_rows"], out["n_removed"]) == ("replaced", 18, 2)
    with db.connect() as conn:
        ids_after = dict(conn.execute(text("SELECT source_id, id FROM clusters")).all())
        lam = conn.execute(text("SELECT richness FROM clusters WHERE source_id = '1'")).scalar()
        n_cat = conn.execute(text("SELECT count(*), max(n_rows) FROM catalogs")).one()
    assert lam == 123.0 and tuple(n_cat) == (1, 18)
    assert ids_after == {k: v for k, v in ids_before.items() if k not in ("19", "20")}  # ids stable


def test_full_format_fits_and_generic_tables(cli, db, tmp_path):
    full_redmapper(50).write(tmp_path / "rm_full.fits")
    out = json.loads(cli("ingest", "redmapper", str(tmp_path / "rm_full.fits"), "--json").stdout)
    assert out["n_rows"] == 50
    pd.DataFrame({"objid": ["a", "b", "c"], "RA_DEG": [10.0, 20.0, 30.0], "DE_DEG": [1.0, 2.0, 3.0],
                  "Z": [0.1, 0.2, 0.3], "M": [2e14, 3e14, np.nan]}).to_parquet(tmp_path / "wl.parquet")
    out = json.loads(cli("ingest", "table", str(tmp_path / "wl.parquet"), "--ra", "RA_DEG", "--dec", "DE_DEG",
                         "--z", "Z", "--id", "objid", "--mass", "M", "--mass-unit", "msun", "--method", "wl",
                         "--json").stdout)
    assert (out["target"], out["n_rows"], out["n_unknown_mass"]) == ("mass_measurements", 3, 1)
    # the same file read another way is not "already loaded": it needs its own name
    as_clusters = ("ingest", "table", str(tmp_path / "wl.parquet"), "--ra", "RA_DEG", "--dec", "DE_DEG", "--z", "Z")
    res = cli(*as_clusters, ok=False)
    assert res.exit_code == 1 and "--name" in str(res.exception)
    out = json.loads(cli(*as_clusters, "--name", "wl_positions", "--json").stdout)
    assert (out["status"], out["target"], out["n_rows"]) == ("loaded", "clusters", 3)
    with db.connect() as conn:
        rows = conn.execute(text("SELECT source_id, log10_m500, method FROM mass_measurements ORDER BY source_id")).all()
        full = conn.execute(text("SELECT z_err, richness_err, name FROM clusters WHERE source_id = '1' "
                                 "AND catalog_id = 1")).one()
    assert rows[0][0] == "a" and rows[0][1] == pytest.approx(np.log10(2e14)) and rows[2][1] is None
    assert rows[0][2] == "wl"
    assert full[0] == pytest.approx(0.01) and full[1] == pytest.approx(3.0) and full[2] == "RMJ000000"


def window_flist(path: Path, n: int = 6) -> Table:
    t = Table({
        "RUN": np.full(n, 756, dtype=np.int16), "RERUN": ["301"] * n, "CAMCOL": np.full(n, 2, dtype=np.int16),
        "FIELD": np.arange(470, 470 + n, dtype=np.int16), "RA": np.linspace(186.0, 187.0, n),
        "DEC": np.full(n, -0.4), "SCORE": np.linspace(0.5, 1.0, n).astype(np.float32),
        "MU_START": np.arange(n) * 10.0, "MU_END": np.arange(n) * 10.0 + 9.0, "NU_START": np.full(n, -1.0),
        "NU_END": np.full(n, 1.0), "INCL": np.zeros(n), "NODE": np.full(n, 95.0),
    })
    t.write(path, overwrite=True)
    return t


def test_fields_index(cli, db, tmp_path):
    window_flist(tmp_path / "window_flist.fits")
    out = json.loads(cli("ingest", "fields", str(tmp_path / "window_flist.fits"), "--json").stdout)
    assert (out["target"], out["n_rows"]) == ("fields", 6)
    with db.connect() as conn:
        rows = conn.execute(text("SELECT run, rerun, camcol, field, score, extra FROM fields ORDER BY field")).all()
    assert rows[0][:4] == (756, "301", 2, 470) and rows[-1][4] == pytest.approx(1.0)
    assert rows[1][5] == {"MU_START": 10.0, "MU_END": 19.0, "NU_START": -1.0, "NU_END": 1.0, "INCL": 0.0, "NODE": 95.0}
    before = snapshot(db)
    assert json.loads(cli("ingest", "fields", str(tmp_path / "window_flist.fits"), "--json").stdout)["status"] == \
        "unchanged"
    assert snapshot(db) == before


BAD_CASES = {
    "missing_column": (lambda p: pd.DataFrame({"ID": [1], "RA": [1.0], "redshift": [0.1]}).to_csv(p, index=False),
                       ["missing required column", "dec", "LAMBDA_CHISQ/LAMBDA", "['ID', 'RA', 'redshift']"]),
    "ra_range": (lambda p: short_redmapper(p, RA=[10.0] * 19 + [361.0]), ["row 20", "RA outside [0, 360)"]),
    "dec_range": (lambda p: short_redmapper(p, dec=[-95.0] + [5.0] * 19), ["row 1", "Dec outside [-90, 90]"]),
    "non_finite": (lambda p: short_redmapper(p, RA=[np.nan] + [5.0] * 19), ["row 1", "not finite"]),
    "duplicate_ids": (lambda p: short_redmapper(p, ID=[7] * 3 + list(range(10, 27))),
                      ["Duplicate ids: 7", "row 2 (id 7)", "row 3 (id 7)"]),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_inputs_fail_cleanly_with_db_unchanged(cli, db, tmp_path, case):
    short_redmapper(tmp_path / "good.csv")
    cli("ingest", "redmapper", str(tmp_path / "good.csv"))
    before = snapshot(db)
    path = tmp_path / f"{case}.csv"
    write, expected = BAD_CASES[case]
    write(path)
    res = cli("ingest", "redmapper", str(path), ok=False)
    assert res.exit_code == 1, res.output
    message = " ".join(str(res.exception).split())
    for part in [str(path.name)] + expected:
        assert part in message, (part, message)
    assert snapshot(db) == before
    assert not list(tmp_path.glob("*.rejected.csv"))


@pytest.mark.parametrize("case", ["truncated_gzip", "not_a_table", "wrong_mass_unit"])
def test_unreadable_or_wrong_unit_files_fail_cleanly(cli, db, tmp_path, case):
    kind, path = "mcxc", tmp_path / "m.csv.gz"
    if case == "truncated_gzip":
        rows = "MCXC,RAdeg,DEdeg,z,M500\n" + "".join(f"J{i},1.0,2.0,0.1,3.0\n" for i in range(30000))
        data = gzip.compress(rows.encode())
        path.write_bytes(data[: len(data) * 2 // 3])
        expected = ["truncated or corrupt"]
    elif case == "not_a_table":
        kind, path = "psz2", tmp_path / "x.fits"
        path.write_bytes(b"SIMPLE  =                    T" + b" " * 100)
        expected = ["x.fits"]
    else:  # masses in Msun where 1e14 Msun are expected
        pd.DataFrame({"MCXC": ["a", "b"], "RAdeg": [1.0, 2.0], "DEdeg": [1.0, 2.0], "z": [0.1, 0.2],
                      "M500": [3e14, 6e14]}).to_csv(path, index=False)
        expected = ["wrong mass unit", "--mass-unit msun", "M500"]
    before = snapshot(db)
    res = cli("ingest", kind, str(path), ok=False)
    assert res.exit_code == 1
    message = " ".join(str(res.exception).split())
    for part in [str(path)] + expected:
        assert part in message, (part, message)
    assert snapshot(db) == before
    if case == "wrong_mass_unit":
        out = json.loads(cli("ingest", kind, str(path), "--mass-unit", "msun", "--json").stdout)
        assert out["n_rows"] == 2


def test_skip_bad_loads_good_rows_and_writes_rejects(cli, db, tmp_path):
    path = tmp_path / "rm.csv.gz"
    df = short_redmapper(tmp_path / "plain.csv", RA=[400.0] + [10.0] * 19, ID=[1, 1] + list(range(3, 21)))
    with gzip.open(path, "wt") as fh:
        df.to_csv(fh, index=False)
    out = json.loads(cli("ingest", "redmapper", str(path), "--skip-bad", "--json").stdout)
    assert (out["n_rows"], out["n_skipped"]) == (18, 2)
    rejected = pd.read_csv(out["rejected_csv"])
    assert Path(out["rejected_csv"]) == tmp_path / "rm.rejected.csv"
    assert rejected["row"].tolist() == [1, 2]
    assert "RA outside" in rejected["reason"][0] and "duplicate id" in rejected["reason"][1]
    assert rejected["name"].tolist() == ["RMJ0000", "RMJ0001"]  # the source row travels with its reason
    with db.connect() as conn:
        assert conn.execute(text("SELECT n_rows, n_skipped FROM catalogs")).one() == (18, 2)
        assert conn.execute(text("SELECT count(*) FROM clusters")).scalar() == 18


def test_skip_bad_on_read_only_folder_writes_into_data_dir(cli, db, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    short_redmapper(folder / "rm.csv", dec=[99.0] + [0.0] * 19)
    folder.chmod(0o555)
    try:
        out = json.loads(cli("ingest", "redmapper", str(folder / "rm.csv"), "--skip-bad", "--json").stdout)
    finally:
        folder.chmod(0o755)
    assert Path(out["rejected_csv"]) == tmp_path / "data" / "rejected" / "rm.rejected.csv"
    assert not (folder / "rm.rejected.csv").exists()
    assert out["n_rows"] == 19


def test_status_reports_what_is_loaded(cli, db, tmp_path):
    short_redmapper(tmp_path / "rm.csv")
    window_flist(tmp_path / "wf.fits")
    cli("ingest", "redmapper", str(tmp_path / "rm.csv"))
    cli("ingest", "fields", str(tmp_path / "wf.fits"))
    info = json.loads(cli("status", "--json").stdout)
    assert [(c["name"], c["kind"], c["n_rows"]) for c in info["catalogs"]] == [("rm", "redmapper", 20),
                                                                               ("wf", "fields", 6)]
    assert info["rows"]["clusters"] == 20 and info["rows"]["fields"] == 6 and info["rows"]["labels"] == 0
    assert "rm" in cli("status").stdout


# --------------------------------------------------------------------------- what identifies a load


def test_another_hdu_or_name_loads_another_catalogue(db, pg_url, tmp_path):
    """A second table of a FITS file, or the same table under another --name, is another catalogue;
    the same table named by its HDU number or name is the load already there."""
    path = tmp_path / "two.fits"
    north = Table({"RA": [10.0, 20.0, 30.0], "DEC": [1.0, 2.0, 3.0], "Z": [0.1, 0.2, 0.3]})
    south = Table({"RA": [40.0, 50.0], "DEC": [-4.0, -5.0], "Z": [0.4, 0.5]})
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU(north, name="NORTH"),
                  fits.BinTableHDU(south, name="SOUTH")]).writeto(path)
    load = ("ingest", "table", str(path), "--ra", "RA", "--dec", "DEC", "--z", "Z", "--json")

    def cmcat(*args: str) -> dict:
        res = run_cmcat(pg_url, tmp_path / "data", *load, *args)
        assert res.returncode == 0, res.stderr
        return json.loads(res.stdout)

    assert (cmcat()["status"], cmcat("--hdu", "NORTH")["status"], cmcat("--hdu", "1")["status"]) == \
        ("loaded", "unchanged", "unchanged")
    before = snapshot(db)
    line = one_error_line(run_cmcat(pg_url, tmp_path / "data", *load, "--hdu", "SOUTH"))
    assert all(w in line for w in ("'two'", "--hdu", "HDU 2 (SOUTH)", "--name", "--replace")), line
    assert snapshot(db) == before
    assert (cmcat("--hdu", "SOUTH", "--name", "two_south")["status"], cmcat("--name", "two_copy")["status"]) == \
        ("loaded", "loaded")
    with db.connect() as conn:
        rows = conn.execute(text("SELECT k.name, c.ra FROM clusters c JOIN catalogs k ON k.id = c.catalog_id "
                                 "ORDER BY k.name, c.ra")).all()
        meta = dict(conn.execute(text("SELECT name, meta->>'hdu_name' FROM catalogs")).all())
    assert [tuple(r) for r in rows] == [("two", 10.0), ("two", 20.0), ("two", 30.0), ("two_copy", 10.0),
                                        ("two_copy", 20.0), ("two_copy", 30.0), ("two_south", 40.0),
                                        ("two_south", 50.0)]
    assert meta == {"two": "NORTH", "two_copy": "NORTH", "two_south": "SOUTH"}


def test_corrected_mass_unit_needs_replace_and_fixes_the_masses(db, pg_url, real_data, tmp_path):
    """Real MCXC loaded with the wrong unit (masses ten times too high): loading it again with the
    right unit must not answer "already loaded"; it names --mass-unit and --replace, which fixes it."""
    mcxc = str(real_data / "clusterdb/mcxc.csv.gz")
    coma = "SELECT log10_m500 FROM mass_measurements WHERE source_id = 'J1259.7+2756'"
    assert run_cmcat(pg_url, tmp_path / "data", "ingest", "mcxc", mcxc, "--mass-unit", "1e15msun").returncode == 0
    with db.connect() as conn:
        assert conn.execute(text(coma)).scalar() == pytest.approx(np.log10(4.2846e15), abs=1e-9)
    before = snapshot(db)
    line = one_error_line(run_cmcat(pg_url, tmp_path / "data", "ingest", "mcxc", mcxc, "--mass-unit", "1e14msun"))
    assert all(w in line for w in ("'mcxc'", "--mass-unit 1e15msun", "--mass-unit 1e14msun", "--replace")), line
    assert snapshot(db) == before
    res = run_cmcat(pg_url, tmp_path / "data", "ingest", "mcxc", mcxc, "--replace", "--json")
    out = json.loads(res.stdout)
    assert (out["status"], out["n_rows"], out["n_removed"]) == ("replaced", 1743, 0)
    with db.connect() as conn:
        assert conn.execute(text(coma)).scalar() == pytest.approx(np.log10(4.2846e14), abs=1e-9)
        assert conn.execute(text("SELECT count(*), min(meta->>'mass_unit') FROM catalogs")).one() == (1, "1e14msun")


def test_other_method_needs_replace(db, pg_url, tmp_path):
    path = tmp_path / "wl.csv"
    pd.DataFrame({"objid": ["a", "b"], "RA": [10.0, 20.0], "DEC": [1.0, 2.0], "Z": [0.1, 0.2],
                  "M": [2e14, 3e14]}).to_csv(path, index=False)
    load = ("ingest", "table", str(path), "--ra", "RA", "--dec", "DEC", "--z", "Z", "--id", "objid", "--mass", "M",
            "--mass-unit", "msun")
    assert run_cmcat(pg_url, tmp_path / "data", *load, "--method", "wl").returncode == 0
    before = snapshot(db)
    line = one_error_line(run_cmcat(pg_url, tmp_path / "data", *load, "--method", "xray"))
    assert all(w in line for w in ("'wl'", "--method wl", "--method xray", "--replace")), line
    assert snapshot(db) == before
    assert run_cmcat(pg_url, tmp_path / "data", *load, "--method", "xray", "--replace").returncode == 0
    with db.connect() as conn:
        assert conn.execute(text("SELECT array_agg(DISTINCT method) FROM mass_measurements")).scalar() == ["xray"]
