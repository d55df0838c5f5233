"""Readers and validation: formats by content, column mapping, units, sentinels, bad files (no database)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from astropy.table import Table

from clustermass.catalogs.readers import KINDS, MCXC, PSZ2, REDMAPPER, map_columns, read_catalog, read_table, \
    sniff_format, table_mapping, with_mass_unit
from clustermass.catalogs.validate import check_mass_unit, rejection_error, validate
from clustermass.errors import InputError


def full_redmapper(n: int = 5, seed: int = 1) -> Table:
    """A small redMaPPer catalogue with the full FITS column names (plus a vector column)."""
    rng = np.random.default_rng(seed)
    return Table({
        "MEM_MATCH_ID": np.arange(1, n + 1, dtype=np.int32),
        "NAME": [f"RMJ{i:06d}" for i in range(n)],
        "RA": rng.uniform(0, 360, n),
        "DEC": rng.uniform(-10, 60, n),
        "Z_LAMBDA": rng.uniform(0.1, 0.5, n).astype(np.float32),
        "Z_LAMBDA_ERR": np.full(n, 0.01, dtype=np.float32),
        "LAMBDA_CHISQ": rng.uniform(20, 150, n).astype(np.float32),
        "LAMBDA_CHISQ_E": np.full(n, 3.0, dtype=np.float32),
        "P_CEN": rng.uniform(0, 1, (n, 5)),
        "SCALEVAL": np.ones(n),
    })


def test_format_is_sniffed_from_content_not_name(tmp_path):
    full_redmapper().write(tmp_path / "cat.csv", format="fits")  # FITS with a misleading name
    pd.DataFrame({"a": [1]}).to_parquet(tmp_path / "p.fits")
    with gzip.open(tmp_path / "c.dat", "wt") as fh:
        fh.write("a,b\n1,2\n")
    assert sniff_format(tmp_path / "cat.csv") == ("fits", False)
    assert sniff_format(tmp_path / "p.fits") == ("parquet", False)
    assert sniff_format(tmp_path / "c.dat") == ("csv", True)
    assert read_table(tmp_path / "c.dat").to_dict("list") == {"a": [1], "b": [2]}


def test_full_redmapper_fits_columns(tmp_path):
    t = full_redmapper()
    t.write(tmp_path / "rm.fits")
    raw, canon = read_catalog(tmp_path / "rm.fits", REDMAPPER)
    assert "P_CEN" not in raw  # vector columns cannot be rows
    assert canon["source_id"].tolist() == ["1", "2", "3", "4", "5"]
    np.testing.assert_allclose(canon["richness"], t["LAMBDA_CHISQ"], rtol=1e-6)
    np.testing.assert_allclose(canon["z_err"], 0.01, rtol=1e-6)
    np.testing.assert_allclose(canon["richness_err"], 3.0)
    assert canon["name"].iloc[0] == "RMJ000000"
    assert json.loads(canon["extra"].iloc[0]) == {"SCALEVAL": 1.0}


def test_real_redmapper_short_form(real_data):
    raw, canon = read_catalog(real_data / "clusterdb/sdss_redmapper.csv.gz", REDMAPPER)
    assert len(canon) == 26350
    first = canon.iloc[0]
    assert (first["source_id"], first["name"]) == ("1", "RMJ155820.0+271400.3")
    assert first["richness"] == pytest.approx(180.10445)
    assert first["z"] == pytest.approx(0.095776685)
    assert json.loads(first["extra"]) == {"r500": pytest.approx(0.25762776)}
    assert canon["z_err"].isna().all() if "z_err" in canon else True


def test_real_mcxc_masses_of_named_clusters(real_data):
    _, canon = read_catalog(real_data / "clusterdb/mcxc.csv.gz", MCXC)
    assert len(canon) == 1743
    by_id = canon.set_index("source_id")
    # M500 in 1e14 Msun in the file -> log10 Msun
    for mcxc_id, m500 in {"J1259.7+2756": 4.2846, "J1510.9+0543": 7.2708, "J1311.5-0120": 8.3920}.items():
        assert by_id.loc[mcxc_id, "log10_m500"] == pytest.approx(np.log10(m500 * 1e14), abs=1e-9)
    assert by_id.loc["J1259.7+2756", "name"] == "RXC J1259.7+2756"
    assert by_id.loc["J1259.7+2756", "z"] == pytest.approx(0.0231)
    assert (canon["method"] == "xray").all()


def test_real_psz2_sentinels_become_unknown(real_data):
    raw, canon = read_catalog(real_data / "HFI_PCCS_SZ-union_R2.08.fits", PSZ2)
    assert len(canon) == 1653
    assert canon["z"].isna().sum() == (raw["REDSHIFT"] == -1).sum() == 559
    assert canon["log10_m500"].isna().sum() == 559
    assert np.isfinite(canon["log10_m500"]).sum() == 1094
    row = canon.set_index("source_id").loc["PSZ2 G000.04+45.13"]
    assert row["log10_m500"] == pytest.approx(np.log10(3.9624107e14), abs=1e-6)
    assert row["log10_m500_err_high"] == pytest.approx(np.log10((3.9624107 + 0.3932898) / 3.9624107), abs=1e-6)
    assert row["log10_m500_err_low"] == pytest.approx(np.log10(3.9624107 / (3.9624107 - 0.37024212)), abs=1e-6)
    assert (canon["method"] == "sz").all()


def test_missing_columns_named_with_the_columns_present(tmp_path):
    pd.DataFrame({"ID": [1], "RA": [1.0], "redshift": [0.2]}).to_csv(tmp_path / "x.csv", index=False)
    with pytest.raises(InputError) as exc:
        read_catalog(tmp_path / "x.csv", REDMAPPER)
    msg = str(exc.value)
    assert "x.csv" in msg and "dec" in msg and "richness" in msg and "['ID', 'RA', 'redshift']" in msg


def test_non_numeric_column_names_row(tmp_path):
    pd.DataFrame({"ID": [1, 2], "RA": ["1.0", "abc"], "dec": [1, 2], "redshift": [0.1, 0.2], "lambda": [30, 40]}
                 ).to_csv(tmp_path / "x.csv", index=False)
    with pytest.raises(InputError, match=r"column RA .*row 2 holds 'abc'"):
        read_catalog(tmp_path / "x.csv", REDMAPPER)


@pytest.mark.parametrize("case", ["truncated_gzip", "truncated_fits", "garbage", "empty", "missing"])
def test_unreadable_files_raise_clear_errors(tmp_path, case):
    path = tmp_path / "bad.csv.gz"
    if case == "truncated_gzip":
        data = gzip.compress(("ID,RA,dec\n" + "1,2.0,3.0\n" * 20000).encode())
        path.write_bytes(data[: len(data) // 2])
    elif case == "truncated_fits":
        path = tmp_path / "bad.fits"
        full_redmapper(2000).write(path)
        path.write_bytes(path.read_bytes()[:20000])
    elif case == "garbage":
        path.write_bytes(b"\x1f\x8b" + bytes(range(256)) * 4)
    elif case == "empty":
        path = tmp_path / "empty.csv"
        path.write_bytes(b"")
    with pytest.raises(InputError) as exc:
        read_table(path)
    assert str(path) in str(exc.value)


def _canon(**cols) -> pd.DataFrame:
    n = len(next(iter(cols.values())))
    base = {"ID": np.arange(1, n + 1), "RA": np.full(n, 10.0), "dec": np.full(n, 5.0),
            "redshift": np.full(n, 0.2), "lambda": np.full(n, 30.0)}
    return map_columns(pd.DataFrame(base | cols), REDMAPPER, Path("f.csv"))


def test_validate_rejects_each_bad_row_with_its_reason():
    df = _canon(RA=[10.0, 360.0, -1.0, np.nan, 10.0, 10.0, 10.0],
                dec=[5.0, 5.0, 5.0, 5.0, 91.0, np.inf, 5.0],
                ID=[1, 2, 3, 4, 5, 6, 1])
    v = validate(df, "clusters")
    assert v.good["source_id"].tolist() == ["1"]
    reasons = dict(zip(v.rejected["_row"], v.rejected["reason"]))
    assert "RA outside [0, 360)" in reasons[2] and "RA outside" in reasons[3]
    assert "not finite" in reasons[4] and "Dec outside" in reasons[5] and "not finite" in reasons[6]
    assert "duplicate id" in reasons[7]
    msg = str(rejection_error(Path("f.csv"), v.rejected, len(df)))
    assert "6 of 7 rows" in msg and "row 2 (id 2) column ra = 360.0" in msg and "Duplicate ids: 1" in msg
    assert "--skip-bad" in msg


def test_validate_redshift_richness_and_mass_ranges(tmp_path):
    df = _canon(redshift=[0.2, -0.1, np.nan], **{"lambda": [30.0, 30.0, -5.0]})
    v = validate(df, "clusters")
    assert v.good["source_id"].tolist() == ["1"]
    assert set(v.rejected["column"]) == {"z", "richness"}
    # masses: non-positive and implausible rows rejected, unknown (NaN) kept as unknown
    m = pd.DataFrame({"MCXC": list("abcd"), "RAdeg": 1.0, "DEdeg": 1.0, "z": 0.1, "M500": [3.0, -1.0, 1e6, np.nan]})
    mc = map_columns(m, MCXC, Path("m.csv"))
    v = validate(mc, "mass_measurements")
    assert v.good["source_id"].tolist() == ["a", "d"]
    assert np.isnan(v.good["log10_m500"].iloc[1])
    assert dict(zip(v.rejected["source_id"], v.rejected["reason"])) == {
        "b": "mass not positive", "c": "log10 M500 outside [11, 16.5]"}


def test_mass_unit_check_suggests_the_right_unit():
    m = pd.DataFrame({"MCXC": list("abc"), "RAdeg": 1.0, "DEdeg": 1.0, "z": 0.1, "M500": [3e14, 5e14, 1e15]})
    mc = map_columns(m, MCXC, Path("m.csv"))
    with pytest.raises(InputError, match=r"m.csv: column M500 .*wrong mass unit.*--mass-unit msun"):
        check_mass_unit(mc, "1e14msun", "M500", Path("m.csv"))
    ok = map_columns(m, with_mass_unit(MCXC, "msun"), Path("m.csv"))
    check_mass_unit(ok, "msun", "M500", Path("m.csv"))
    np.testing.assert_allclose(ok["log10_m500"], np.log10([3e14, 5e14, 1e15]))


def test_table_mapping_generic_columns(tmp_path):
    pd.DataFrame({"ra_deg": [1.0, 2.0], "de": [3.0, 4.0], "zz": [0.1, 0.2], "logm": [14.1, 14.5]}).to_parquet(
        tmp_path / "t.parquet")
    mapping = table_mapping("ra_deg", "de", z="zz", mass="logm", mass_unit="log10msun", method="wl")
    _, canon = read_catalog(tmp_path / "t.parquet", mapping)
    assert mapping.target == "mass_measurements"
    assert canon["source_id"].tolist() == ["1", "2"]  # no id column: row numbers
    np.testing.assert_allclose(canon["log10_m500"], [14.1, 14.5])
    assert (canon["method"] == "wl").all()
    with pytest.raises(InputError, match="unknown mass unit"):
        table_mapping("a", "b", mass="m", mass_unit="kg")
    assert set(KINDS) == {"redmapper", "mcxc", "psz2", "fields"}


def test_fits_hdu_choice(tmp_path):
    full_redmapper().write(tmp_path / "rm.fits")
    assert len(read_table(tmp_path / "rm.fits", hdu=1)) == 5
    for hdu, why in ((5, "no HDU 5"), ("NOPE", "no HDU 'NOPE'"), (0, "HDU 0 is not a table")):
        with pytest.raises(InputError, match=why) as exc:
            read_table(tmp_path / "rm.fits", hdu=hdu)
        assert "'1:'" in str(exc.value)
