"""Read catalogue files (FITS, CSV, CSV.gz, Parquet) into DataFrames and map their columns.

`read_table` detects the format from the file's first bytes (not its name) and turns every
unreadable or truncated file into an InputError naming the file. `map_columns` renames a
raw table to the canonical columns of one target table (clusters, mass_measurements or
fields) according to a `Mapping`, converts units and sentinel values ("unknown") to NaN,
and packs every other source column into a JSON `extra` string per row.
"""

from __future__ import annotations

import errno
import gzip
import io
import reprlib
import stat
import warnings
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from clustermass.errors import InputError

ROW = "_row"  # 1-based data row number in the source file, kept for error messages
#: Longest CSV line accepted, bytes: a longer one (e.g. a file without newlines) is refused
#: as soon as the reader has seen that much of it, never held whole in memory.
MAX_LINE_BYTES = 16 << 20
#: Column names an error message lists before "... and N more" (a header may have 300,000).
SHOWN_NAMES = 8
_NAMES_REPR = reprlib.Repr()
_NAMES_REPR.maxlist, _NAMES_REPR.maxstring = SHOWN_NAMES, 60


def names_preview(names) -> str:
    """A bounded one-line list of names for messages: the first few, then '... and N more'."""
    names = [str(n) for n in names]
    shown = _NAMES_REPR.repr(names[:SHOWN_NAMES])
    return shown + (f" ... and {len(names) - SHOWN_NAMES} more" if len(names) > SHOWN_NAMES else "")


def regular_file(path: Path) -> Path:
    """`path` resolved, after checking it is a regular file; else an InputError saying what it is."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as exc:
        what = "a symbolic link loop" if exc.errno == errno.ELOOP else f"unreadable ({exc.strerror})"
        raise InputError(f"{path}: {what}; give the path of a catalogue file") from None
    if stat.S_ISDIR(mode):
        raise InputError(f"{path}: a folder, not a catalogue file; give the path of a file in it")
    if not stat.S_ISREG(mode):
        raise InputError(f"{path}: not a regular file (a device, pipe or socket); give the path of a catalogue file")
    return path.resolve()


def sniff_format(path: Path) -> tuple[str, bool]:
    """(format, gzipped) of a file judged by its content: fits | csv | parquet."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(6)
            gz = head[:2] == b"\x1f\x8b"
            if gz:
                fh.seek(0)
                head = gzip.GzipFile(fileobj=fh).read(6)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"{path}: cannot read the file ({exc}); check that it is complete and not corrupt") from None
    if head.startswith(b"SIMPLE"):
        return "fits", gz
    if head.startswith(b"PAR1"):
        return "parquet", gz
    return "csv", gz


def read_table(path: Path, hdu: str | int | None = None, preferred_hdu: str | None = None) -> pd.DataFrame:
    """The rows of a FITS binary table, CSV (optionally gzipped) or Parquet file.

    For FITS, `hdu` names the extension (default: `preferred_hdu` if the file has it, else the
    first table HDU); the one read is in `attrs["hdu"]` (index) and `attrs["hdu_name"]`. Byte
    strings are decoded and stripped; masked values become NaN; multi-dimensional columns are
    dropped (they have no place in a row-per-cluster table).
    """
    path = Path(path)
    fmt, gz = sniff_format(path)
    try:
        if fmt == "fits":
            df = _read_fits(path, hdu, preferred_hdu)
        elif fmt == "parquet":
            df = pd.read_parquet(path)
        else:
            df = _read_csv(path, gz)
    except InputError:
        raise
    except (EOFError, OSError, zlib.error, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError,
            pd.errors.ParserWarning) as exc:
        reason = " ".join(str(exc).split())  # one line, whatever the library said
        raise InputError(
            f"{path}: cannot read it as {'gzipped ' if gz else ''}{fmt.upper()} ({type(exc).__name__}: {reason}); "
            "the file may be truncated or corrupt: download or export it again"
        ) from None
    df.columns = [str(c).strip() for c in df.columns]
    out = df.reset_index(drop=True)
    out.attrs.update(df.attrs)
    return out


def _read_csv(path: Path, gz: bool) -> pd.DataFrame:
    """A CSV through a line-length guard; rows with more fields than the header are an error
    (pandas would otherwise shift them silently into an index)."""
    with open(path, "rb") as fh:
        inner = gzip.GzipFile(fileobj=fh) if gz else fh
        stream = io.BufferedReader(_LineLimit(inner, path, MAX_LINE_BYTES), buffer_size=1 << 18)
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            return pd.read_csv(stream, low_memory=False, index_col=False)


class _LineLimit(io.RawIOBase):
    """A read-only binary stream that raises InputError once a line exceeds `limit` bytes."""

    def __init__(self, inner, path: Path, limit: int):
        self._inner, self._path, self._limit = inner, path, limit
        self._run = 0  # bytes since the last newline
        self._line = 1

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._inner.read(len(buffer))
        buffer[: len(data)] = data
        parts = data.split(b"\n")
        lengths = [self._run + len(parts[0]), *map(len, parts[1:])]
        for k, n in enumerate(lengths):
            if n > self._limit:
                raise InputError(
                    f"{self._path}: line {self._line + k} is longer than {self._limit >> 20} MiB; not a "
                    "catalogue table (missing newlines?): check the file and its format"
                )
        self._run = lengths[-1]
        self._line += len(parts) - 1
        return len(data)


def _read_fits(path: Path, hdu: str | int | None, preferred: str | None) -> pd.DataFrame:
    from astropy.io import fits
    from astropy.table import Table
    from astropy.units import UnitsWarning
    from astropy.utils.exceptions import AstropyWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnitsWarning)
        warnings.simplefilter("error", AstropyWarning)  # truncated data is a warning in astropy: make it fatal
        try:
            with fits.open(path, memmap=False) as hdul:
                if hdu is not None:
                    ext = hdu
                elif preferred is not None and preferred in hdul:
                    ext = preferred
                else:
                    ext = _first_table_hdu(hdul, path)
                exists = 0 <= ext < len(hdul) if isinstance(ext, int) else ext in hdul
                if not exists or getattr(hdul[ext], "columns", None) is None:
                    tables = names_preview(f"{i}:{h.name}" for i, h in enumerate(hdul)
                                           if getattr(h, "columns", None) is not None)
                    what = f"HDU {ext!r} is not a table" if exists else f"no HDU {ext!r}"
                    raise InputError(f"{path}: {what}; the table HDUs are {tables}. Pass --hdu with one of them")
                table = Table(hdul[ext].data, masked=False)
                index = hdul.index_of(ext)
                read_from = {"hdu": index, "hdu_name": hdul[index].name}
        except InputError:
            raise
        except Exception as exc:  # noqa: BLE001 - a damaged header makes astropy raise KeyError, VerifyError, ...
            raise OSError(str(exc) if isinstance(exc, AstropyWarning) else f"{type(exc).__name__}: {exc}") from None
    table.convert_bytestring_to_unicode()
    keep = [c for c in table.colnames if table[c].ndim <= 1]
    df = table[keep].to_pandas()
    for col in df.columns:
        if df[col].dtype == object:
            df[col] = df[col].str.strip()
    df.attrs.update(read_from)
    return df


def _first_table_hdu(hdul, path: Path) -> int:
    for i, h in enumerate(hdul):
        if getattr(h, "columns", None) is not None and h.data is not None:
            return i
    raise InputError(f"{path}: the FITS file has no table HDU (found {names_preview(h.name for h in hdul)})")


# --------------------------------------------------------------------------- column mapping

MASS_UNITS = {"1e14msun": 1e14, "1e15msun": 1e15, "msun": 1.0, "log10msun": None}
"""Mass units accepted for input columns (factor to Msun; None: already log10 Msun)."""
METHODS = ("xray", "sz", "wl", "other")
"""Mass measurement methods: X-ray, Sunyaev-Zel'dovich, weak lensing, anything else."""


@dataclass(frozen=True)
class Mapping:
    """How a source table maps to a target table.

    `columns`: canonical name -> candidate source column names (matched case-insensitively, in
    order); `required`: canonical names that must be found; `unknown`: canonical name -> source
    value meaning "unknown" (becomes NaN); `mass_unit`: unit of the mass columns; `extra`: the
    other source columns kept in `extra` (case-insensitive; None keeps them all).
    """

    target: str  # clusters | mass_measurements | fields
    columns: dict[str, tuple[str, ...]]
    required: tuple[str, ...]
    unknown: dict[str, float] = field(default_factory=dict)
    mass_unit: str = "1e14msun"
    method: str = "other"
    fits_hdu: str | None = None
    extra: tuple[str, ...] | None = None


REDMAPPER = Mapping(
    target="clusters",
    columns={
        "source_id": ("MEM_MATCH_ID", "ID"),
        "name": ("NAME",),
        "ra": ("RA",),
        "dec": ("DEC",),
        "z": ("Z_LAMBDA", "REDSHIFT"),
        "z_err": ("Z_LAMBDA_ERR",),
        "richness": ("LAMBDA_CHISQ", "LAMBDA"),
        "richness_err": ("LAMBDA_CHISQ_E", "LAMBDA_ERR"),
    },
    required=("source_id", "ra", "dec", "z", "richness"),
)

MCXC = Mapping(
    target="mass_measurements",
    columns={
        "source_id": ("MCXC",),
        "name": ("Oname",),
        "ra": ("RAdeg", "RA"),
        "dec": ("DEdeg", "DEC"),
        "z": ("z",),
        "mass": ("M500",),
    },
    required=("source_id", "ra", "dec", "z", "mass"),
    method="xray",
)

PSZ2 = Mapping(
    target="mass_measurements",
    columns={
        "source_id": ("NAME",),
        "name": ("NAME",),
        "ra": ("RA",),
        "dec": ("DEC",),
        "z": ("REDSHIFT",),
        "mass": ("MSZ",),
        "mass_err_high": ("MSZ_ERR_UP",),
        "mass_err_low": ("MSZ_ERR_LOW",),
    },
    required=("source_id", "ra", "dec", "z", "mass"),
    unknown={"z": -1.0, "mass": 0.0, "mass_err_high": 0.0, "mass_err_low": 0.0},
    method="sz",
    fits_hdu="PSZ2_UNION",
)

FIELDS = Mapping(
    target="fields",
    columns={
        "run": ("RUN",),
        "rerun": ("RERUN",),
        "camcol": ("CAMCOL",),
        "field": ("FIELD",),
        "ra": ("RA",),
        "dec": ("DEC",),
        "score": ("SCORE",),
    },
    required=("run", "rerun", "camcol", "field", "ra", "dec"),
    # what the frame lookup reads (clustermass.images.frames.may_cover); window_flist's ~60 other
    # columns (PSF_FWHM, SKYFLUX, status bits...) are not stored
    extra=("NODE", "INCL", "MU_START", "MU_END", "NU_START", "NU_END"),
)

KINDS: dict[str, Mapping] = {"redmapper": REDMAPPER, "mcxc": MCXC, "psz2": PSZ2, "fields": FIELDS}


def with_mass_unit(mapping: Mapping, unit: str) -> Mapping:
    """`mapping` with its mass columns read in `unit` (one of MASS_UNITS)."""
    if unit not in MASS_UNITS:
        raise InputError(f"unknown mass unit {unit!r}; use one of {', '.join(MASS_UNITS)}")
    return replace(mapping, mass_unit=unit)


def table_mapping(
    ra: str,
    dec: str,
    z: str | None = None,
    id: str | None = None,
    name: str | None = None,
    richness: str | None = None,
    mass: str | None = None,
    mass_err: str | None = None,
    mass_unit: str = "1e14msun",
    method: str = "other",
) -> Mapping:
    """Mapping of a generic table: clusters, or mass measurements when `mass` is given."""
    given = {"source_id": id, "name": name, "ra": ra, "dec": dec, "z": z}
    if mass:
        given |= {"mass": mass, "mass_err_high": mass_err, "mass_err_low": mass_err}
    else:
        given |= {"richness": richness}
    if method not in METHODS:
        raise InputError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
    columns = {k: (v,) for k, v in given.items() if v}
    mapping = Mapping(target="mass_measurements" if mass else "clusters", columns=columns, required=tuple(columns),
                      method=method)
    return with_mass_unit(mapping, mass_unit)


def map_columns(raw: pd.DataFrame, mapping: Mapping, path: Path) -> pd.DataFrame:
    """Canonical columns of `mapping.target` from a raw table (see module docstring).

    Masses become `log10_m500` (and `log10_m500_err_low/high` in dex); the source id is a
    string (the 1-based row number if the file has no id column); `_row` keeps the row number.
    """
    lookup = {c.lower(): c for c in raw.columns}
    found: dict[str, str] = {}
    for canon, candidates in mapping.columns.items():
        src = next((lookup[c.lower()] for c in candidates if c.lower() in lookup), None)
        if src is not None:
            found[canon] = src
    missing = [c for c in mapping.required if c not in found]
    if missing:
        wanted = ", ".join(f"{m} (one of {'/'.join(mapping.columns[m])})" for m in missing)
        raise InputError(
            f"{path}: missing required column(s) {wanted}; the file has columns {names_preview(raw.columns)}. "
            "Check the catalogue kind, or use `cmcat ingest table` with explicit column options"
        )
    out = pd.DataFrame({ROW: np.arange(1, len(raw) + 1, dtype=np.int64)})
    for canon, src in found.items():
        col = raw[src]
        if canon in mapping.unknown:
            col = col.where(col != mapping.unknown[canon])
        out[canon] = col.to_numpy()
    if "source_id" in out:
        out["source_id"] = _id_strings(out["source_id"])
    else:
        out["source_id"] = out[ROW].astype(str)
    for col in ("ra", "dec", "z", "z_err", "richness", "richness_err", "score"):
        if col in out:
            out[col] = _numeric(out[col], col, found.get(col, col), path)
    if "mass" in out:
        _masses_to_log10(out, mapping, found, path)
    keep = None if mapping.extra is None else {c.lower() for c in mapping.extra}
    extra_cols = [c for c in raw.columns if c not in set(found.values()) and (keep is None or c.lower() in keep)]
    out["extra"] = _json_rows(raw[extra_cols]) if extra_cols else "{}"
    if mapping.target == "mass_measurements":
        out["method"] = mapping.method
    return out


def _id_strings(col: pd.Series) -> pd.Series:
    """Catalogue ids as text: integers without a trailing '.0', strings stripped."""
    if pd.api.types.is_float_dtype(col) and np.all(np.isfinite(col)) and np.all(col == np.round(col)):
        col = col.astype(np.int64)
    return col.astype(str).str.strip()


def _numeric(col: pd.Series, canon: str, src: str, path: Path) -> pd.Series:
    if pd.api.types.is_bool_dtype(col):
        raise InputError(f"{path}: column {src} ({canon}) holds true/false values, not numbers. "
                         "Fix the file or map another column")
    if pd.api.types.is_numeric_dtype(col):
        return col.astype(np.float64)
    values = pd.to_numeric(col, errors="coerce")
    suspect = np.flatnonzero((values.isna() & col.notna()).to_numpy())
    bad = [i for i in suspect if str(col.iloc[i]).strip() != ""]  # blank cells are unknowns, not errors
    if bad:
        i = int(bad[0])
        raise InputError(
            f"{path}: column {src} ({canon}) is not numeric: row {i + 1} holds {_NAMES_REPR.repr(col.iloc[i])} "
            f"({len(bad)} such rows). Fix the file or map another column"
        )
    return values.astype(np.float64)


def _masses_to_log10(out: pd.DataFrame, mapping: Mapping, found: dict[str, str], path: Path) -> None:
    """Replace mass / mass_err_* (in mapping.mass_unit) by log10_m500 and its errors in dex."""
    mass = _numeric(out.pop("mass"), "mass", found["mass"], path).to_numpy()
    err_hi = _numeric(out.pop("mass_err_high"), "mass_err_high", "", path).to_numpy() if "mass_err_high" in out else None
    err_lo = _numeric(out.pop("mass_err_low"), "mass_err_low", "", path).to_numpy() if "mass_err_low" in out else None
    factor = MASS_UNITS[mapping.mass_unit]
    with np.errstate(divide="ignore", invalid="ignore"):
        if factor is None:  # already log10 Msun; errors taken as dex
            out["log10_m500"] = mass
            out["log10_m500_err_high"] = err_hi if err_hi is not None else np.nan
            out["log10_m500_err_low"] = err_lo if err_lo is not None else np.nan
            out["mass_raw"] = mass
            return
        logm = np.where(mass > 0, np.log10(np.where(mass > 0, mass, 1.0) * factor), np.nan)
        out["log10_m500"] = logm
        out["mass_raw"] = mass  # kept for validation (non-positive masses are errors)
        out["log10_m500_err_high"] = np.log10((mass + err_hi) / mass) if err_hi is not None else np.nan
        low = mass - err_lo if err_lo is not None else np.full_like(mass, np.nan)
        out["log10_m500_err_low"] = np.where(low > 0, np.log10(mass / np.where(low > 0, low, 1.0)), np.nan)


def _json_rows(df: pd.DataFrame) -> pd.Series:
    """One compact JSON object per row (NaN -> null), built in C by pandas."""
    text = df.to_json(orient="records", lines=True, double_precision=15, force_ascii=False)
    rows = text.splitlines()
    return pd.Series(rows, index=df.index, dtype=object)


def read_catalog(path: Path, mapping: Mapping, hdu: str | int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(raw table, canonical table) of a catalogue file."""
    raw = read_table(path, hdu, mapping.fits_hdu)
    if raw.empty:
        raise InputError(f"{path}: no data rows (columns: {names_preview(raw.columns)}); nothing to load. "
                         "Check that the export is complete")
    return raw, map_columns(raw, mapping, path)


