"""Malformed catalogues: each fails with one clear line naming the problem, the database untouched.

Complements tests/test_ingest.py (missing column, ranges, NaN RA, duplicate ids, truncated gzip,
wrong mass unit live there) with wrong types, infinities, empty files, wrong/absent FITS HDUs,
truncated FITS/Parquet, binary garbage, ragged rows, a 1 GiB line (streamed, ~1 MB on disk) and
hypothesis fuzzing of the readers and the validation.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits
from astropy.table import Table
from hypothesis import HealthCheck, example, given, settings, strategies as st

from clustermass.catalogs.readers import MAX_LINE_BYTES, MCXC, PSZ2, REDMAPPER, map_columns, read_catalog
from clustermass.catalogs.validate import validate
from clustermass.errors import InputError
from test_ingest import short_redmapper, snapshot

HEADER = "ID,name,RA,dec,redshift,lambda\n"


def _csv(text: str):
    return lambda p: p.write_text(HEADER + text)


def _huge_line_gz(path: Path) -> None:
    """A gzip whose second line is 1 GiB of digits: 256 identical gzip members of 4 MiB each
    (a valid multi-member stream), so the 1 GiB exists only while a reader streams it."""
    block = gzip.compress(b"9" * (4 << 20), 9)
    with open(path, "wb") as fh:
        fh.write(gzip.compress(HEADER.encode()))
        for _ in range(256):
            fh.write(block)


def _fits_table(path: Path, hdu_name: str | None = None, **cols) -> None:
    t = fits.BinTableHDU(Table(cols or {"A": [1, 2]}), name=hdu_name)
    fits.HDUList([fits.PrimaryHDU(), t]).writeto(path)


def _truncated(write, keep: float):
    def w(p: Path) -> None:
        write(p)
        raw = p.read_bytes()
        p.write_bytes(raw[: int(len(raw) * keep)])

    return w


# case -> (file name, kind, extra CLI args, writer, words the message must contain)
CASES = {
    "wrong_type": ("rm.csv", "redmapper", [], _csv("1,a,ten,5,0.1,20\n"), ["column RA", "not numeric", "row 1", "'ten'"]),
    "bool_type": ("rm.csv", "redmapper", [], _csv("1,a,True,5,0.1,20\n"), ["column RA", "true/false"]),
    "inf_redshift": ("rm.csv", "redmapper", [], _csv("1,a,10,5,inf,20\n2,b,10,5,0.2,30\n"),
                     ["row 1 (id 1) column z = inf", "redshift outside"]),
    "minus_inf_richness": ("rm.csv", "redmapper", [], _csv("1,a,10,5,0.1,-inf\n"), ["column richness", "infinite"]),
    "overflowing_number": ("rm.csv", "redmapper", [], _csv("1,a,1e400,5,0.1,20\n"), ["column ra", "not finite"]),
    "nan_dec": ("rm.csv", "redmapper", [], _csv("1,a,10,nan,0.1,20\n"), ["column dec", "not finite"]),
    "negative_ra": ("rm.csv", "redmapper", [], _csv("1,a,-0.5,5,0.1,20\n"), ["column ra = -0.5", "RA outside"]),
    "empty_file": ("rm.csv", "redmapper", [], lambda p: p.write_bytes(b""), ["EmptyDataError", "No columns"]),
    "header_only": ("rm.csv", "redmapper", [], _csv(""), ["no data rows", "'lambda'"]),
    "ragged_row": ("rm.csv", "redmapper", [], _csv("1,a,10,5,0.1,20,9,9\n"), ["ParserWarning", "header"]),
    "ragged_later_row": ("rm.csv", "redmapper", [], _csv("1,a,10,5,0.1,20\n2,b,10,5,0.1,20,7\n"),
                         ["Expected 6 fields in line 3, saw 7"]),
    "binary_garbage": ("rm.csv", "redmapper", [], lambda p: p.write_bytes(bytes(range(256)) * 40), ["cannot read it as CSV"]),
    "utf16_text": ("rm.csv", "redmapper", [], lambda p: p.write_bytes((HEADER + "1,a,1,5,0.1,20\n").encode("utf-16")),
                   ["UnicodeDecodeError"]),
    "huge_line": ("rm.csv.gz", "redmapper", [], _huge_line_gz, [f"line 2 is longer than {MAX_LINE_BYTES >> 20} MiB"]),
    "fits_without_wanted_hdu": ("psz.fits", "psz2", [], lambda p: _fits_table(p, "OTHER"),
                                ["missing required column", "MSZ", "['A']"]),
    "fits_hdu_option_absent": ("psz.fits", "psz2", ["--hdu", "PSZ2_UNION"], lambda p: _fits_table(p, "OTHER"),
                               ["no HDU 'PSZ2_UNION'", "OTHER", "--hdu"]),
    "fits_image_only": ("rm.fits", "redmapper", [], lambda p: fits.PrimaryHDU(np.zeros((4, 4))).writeto(p),
                        ["no table HDU", "PRIMARY"]),
    "fits_truncated": ("rm.fits", "redmapper", [], _truncated(lambda p: _fits_table(p, A=np.arange(2000.0)), 0.5),
                       ["cannot read it as FITS"]),
    "parquet_truncated": ("rm.parquet", "redmapper", [], _truncated(
        lambda p: pd.DataFrame({"ID": [1], "RA": [1.0], "DEC": [1.0], "Z_LAMBDA": [0.1], "LAMBDA": [2.0]}).to_parquet(p),
        0.6), ["cannot read it as PARQUET"]),
    "mass_not_positive": ("m.csv", "mcxc", [], lambda p: p.write_text("MCXC,RAdeg,DEdeg,z,M500\na,1,2,0.1,3\nb,1,2,0.1,-2\n"),
                          ["row 2 (id b) column mass", "not positive"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_catalogue_one_clear_line_db_unchanged(cli, db, tmp_path, case):
    short_redmapper(tmp_path / "good.csv")
    cli("ingest", "redmapper", str(tmp_path / "good.csv"))
    before = snapshot(db)
    name, kind, extra, write, expected = CASES[case]
    path = tmp_path / name
    write(path)
    res = cli("ingest", kind, str(path), *extra, ok=False)
    assert res.exit_code == 1, res.output
    assert isinstance(res.exception, InputError), repr(res.exception)
    message = str(res.exception)
    assert "\n" not in message, message
    for part in [str(path)] + expected:
        assert part in message, (part, message)
    assert snapshot(db) == before
    assert not list(tmp_path.glob("*.rejected.csv"))


def test_cli_prints_exactly_one_error_line(db, pg_url, tmp_path):
    """The real console script: a bad file gives one red line on stderr, exit 1, nothing on stdout."""
    path = tmp_path / "rm.csv"
    CASES["fits_truncated"][3](path)  # a truncated FITS under a .csv name: format sniffed from content
    env = {**os.environ, "CMCAT_DATABASE_URL": pg_url, "CMCAT_DATA_DIR": str(tmp_path / "data"), "COLUMNS": "60"}
    before = snapshot(db)
    out = subprocess.run([sys.executable, "-m", "clustermass", "ingest", "redmapper", str(path)],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(path) in lines[0], out.stderr
    assert snapshot(db) == before


# --------------------------------------------------------------------------- fuzzing (no database)

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
GOOD_CSV = (HEADER + "".join(f"{i},RMJ{i},{10 + i}.5,{i - 3}.25,0.{i + 1},{20 + i}\n" for i in range(8))).encode()


def _good_fits() -> bytes:
    t = Table({"NAME": ["PSZ2 A", "PSZ2 B"], "RA": [10.0, 20.0], "DEC": [1.0, -2.0], "REDSHIFT": [0.1, -1.0],
               "MSZ": [3.0, 0.0], "MSZ_ERR_UP": [0.3, 0.0], "MSZ_ERR_LOW": [0.2, 0.0]})
    with tempfile.TemporaryDirectory() as d:
        fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU(t, name="PSZ2_UNION")]).writeto(f"{d}/p.fits")
        return Path(f"{d}/p.fits").read_bytes()


GOOD_FITS = _good_fits()


def _read_bytes(raw: bytes, mapping, suffix: str) -> None:
    """Read `raw` as a catalogue file: either it reads (and validates) or it raises InputError."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"f{suffix}"
        path.write_bytes(raw)
        try:
            _, canon = read_catalog(path, mapping)
        except InputError as exc:
            assert str(path) in str(exc) and "\n" not in str(exc)
            return
        checked = validate(canon, mapping.target)
        assert len(checked.good) + len(checked.rejected) == len(canon)


def _mutate(data: bytes, ops: list[tuple[int, int, int]]) -> bytes:
    buf = bytearray(data)
    for kind, pos, val in ops:
        if not buf:
            break
        pos %= len(buf)
        if kind == 0:
            buf[pos] = val
        elif kind == 1:
            buf.insert(pos, val)
        elif kind == 2:
            del buf[pos]
        else:
            del buf[pos:]
    return bytes(buf)


OPS = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 1 << 20), st.integers(0, 255)), min_size=1, max_size=6)


@FUZZ
@given(st.binary(max_size=300), st.sampled_from([b"", b"SIMPLE  =", b"PAR1", b"\x1f\x8b", HEADER.encode()]))
def test_fuzz_random_bytes_read_or_input_error(body, prefix):
    _read_bytes(prefix + body, REDMAPPER, ".csv")


@FUZZ
@given(OPS, st.booleans())
def test_fuzz_mutated_csv_read_or_input_error(ops, gz):
    raw = _mutate(GOOD_CSV, ops)
    _read_bytes(gzip.compress(raw) if gz else raw, REDMAPPER, ".csv")


@FUZZ
@given(OPS)
def test_fuzz_mutated_gzip_stream(ops):
    _read_bytes(_mutate(gzip.compress(GOOD_CSV), ops), REDMAPPER, ".csv.gz")


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, len(GOOD_FITS) - 1), st.integers(0, 255)),
                min_size=1, max_size=4))
@example([(2, 793, 127)])  # found by fuzzing: astropy raised AttributeError ('_ValidHDU' has no data)
@example([(1, 8531, 26)])  # VerifyError: unparsable TTYPE3 card
@example([(0, 3441, 125)])  # KeyError: TFIELDS missing
def test_fuzz_mutated_fits_read_or_input_error(ops):
    _read_bytes(_mutate(GOOD_FITS, ops), PSZ2, ".fits")


NUM = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**20, 10**20),
                st.sampled_from(["", "x", "1e400", "-0", " 3 ", "nan", "inf", "NULL"]))


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(["1", "2", "a", " ", "", "1.0"]), NUM, NUM, NUM, NUM), min_size=1, max_size=12))
def test_fuzz_values_validated_rows_are_sane(rows):
    raw = pd.DataFrame(rows, columns=["ID", "RA", "DEC", "Z_LAMBDA", "LAMBDA"]).astype(object)
    try:
        canon = map_columns(raw, REDMAPPER, Path("fuzz.csv"))
    except InputError as exc:
        assert "fuzz.csv" in str(exc) and "not numeric" in str(exc)
        return
    good = validate(canon, "clusters").good
    assert np.isfinite(good["ra"]).all() and ((good["ra"] >= 0) & (good["ra"] < 360)).all()
    assert np.isfinite(good["dec"]).all() and (good["dec"].abs() <= 90).all()
    z = good["z"].to_numpy()
    assert not np.isinf(z).any() and not (z < 0).any()
    assert not np.isinf(good["richness"]).any() and not (good["richness"] < 0).any()
    assert good["source_id"].is_unique and not good["source_id"].str.strip().isin(["", "nan"]).any()


@FUZZ
@given(st.lists(st.tuples(NUM, NUM, NUM), min_size=1, max_size=10))
def test_fuzz_masses_validated_rows_are_sane(rows):
    raw = pd.DataFrame([(f"c{i}", 10.0, 5.0, *r) for i, r in enumerate(rows)],
                       columns=["MCXC", "RAdeg", "DEdeg", "z", "M500", "extra"]).astype(object)
    try:
        canon = map_columns(raw, MCXC, Path("fuzz.csv"))
    except InputError as exc:
        assert "not numeric" in str(exc)
        return
    good = validate(canon, "mass_measurements").good
    logm = good["log10_m500"].dropna()
    assert ((logm >= 11) & (logm <= 16.5)).all()
