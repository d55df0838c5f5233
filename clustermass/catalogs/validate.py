"""Validation of canonical catalogue tables (see readers.map_columns), vectorised.

`validate` splits rows into good and rejected (with the column and the reason for each
rejected row); `check_mass_unit` fails a whole file whose masses are in the wrong unit;
`rejection_error` turns rejections into one InputError that names file, rows, columns, ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from clustermass.catalogs.readers import MASS_UNITS, ROW
from clustermass.errors import InputError

#: Plausible range of a cluster mass, log10(M500/Msun); outside it a row is rejected.
LOG_MASS_RANGE = (11.0, 16.5)
#: Range the median log10 M500 of a whole catalogue must fall in, else the unit is wrong.
MEDIAN_LOG_MASS_RANGE = (12.5, 15.8)
Z_MAX = 10.0
SHOWN = 10  # rejected rows listed in an error message


@dataclass(frozen=True)
class Validation:
    """Rows that passed, and the rejected ones as (_row, source_id, column, value, reason)."""

    good: pd.DataFrame
    rejected: pd.DataFrame


def validate(df: pd.DataFrame, target: str) -> Validation:
    """Check coordinates, redshift, richness, masses, ids / field keys of a canonical table."""
    checks: list[tuple[np.ndarray, str, str]] = []

    def bad(mask: np.ndarray, column: str, reason: str) -> None:
        checks.append((np.asarray(mask, dtype=bool), column, reason))

    ra, dec = df["ra"].to_numpy(), df["dec"].to_numpy()
    bad(~np.isfinite(ra), "ra", "RA is missing or not finite")
    bad(np.isfinite(ra) & ((ra < 0) | (ra >= 360)), "ra", "RA outside [0, 360) deg")
    bad(~np.isfinite(dec), "dec", "Dec is missing or not finite")
    bad(np.isfinite(dec) & ((dec < -90) | (dec > 90)), "dec", "Dec outside [-90, 90] deg")
    if "z" in df:
        z = df["z"].to_numpy()
        bad(np.isinf(z) | (z < 0) | (z > Z_MAX), "z", f"redshift outside [0, {Z_MAX:g}]")
    if "richness" in df:
        lam = df["richness"].to_numpy()
        bad(np.isinf(lam) | (lam < 0), "richness", "richness negative or infinite")
    if "log10_m500" in df:
        raw = df["mass_raw"].to_numpy()
        logm = df["log10_m500"].to_numpy()
        bad(np.isinf(raw) | (np.isfinite(raw) & ~np.isfinite(logm)), "mass", "mass not positive")
        lo, hi = LOG_MASS_RANGE
        bad(np.isfinite(logm) & ((logm < lo) | (logm > hi)), "mass", f"log10 M500 outside [{lo:g}, {hi:g}]")
    if target == "fields":
        for col in ("run", "camcol", "field"):
            v = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=np.float64)
            bad(~np.isfinite(v) | (v != np.round(v)) | (v < 0), col, f"{col} is not a non-negative integer")
        bad(df.duplicated(["run", "rerun", "camcol", "field"]).to_numpy(), "field", "duplicate (run, rerun, camcol, field)")
    else:
        ids = df["source_id"]
        missing = (ids.isna() | (ids.astype(object).map(str).str.strip().isin(["", "nan", "None"]))).to_numpy()
        bad(missing, "source_id", "id is missing")
        bad(ids.duplicated(keep="first").to_numpy() & ~missing, "source_id", "duplicate id")

    parts = []
    for mask, column, reason in checks:
        if mask.any():
            rows = df.loc[mask]
            value = rows[column] if column in rows else rows.get("mass_raw", pd.Series(np.nan, index=rows.index))
            parts.append(pd.DataFrame({ROW: rows[ROW], "source_id": rows.get("source_id", rows[ROW].astype(str)),
                                       "column": column, "value": [str(x) for x in value], "reason": reason}))
    if not parts:
        return Validation(df, pd.DataFrame(columns=[ROW, "source_id", "column", "value", "reason"]))
    rejected = (
        pd.concat(parts)
        .groupby(ROW, sort=True)
        .agg({"source_id": "first", "column": "; ".join, "value": "; ".join, "reason": "; ".join})
        .reset_index()
    )
    good = df[~df[ROW].isin(rejected[ROW])]
    return Validation(good, rejected)


def check_mass_unit(df: pd.DataFrame, unit: str, column: str, path: Path) -> None:
    """Fail when the catalogue's median mass is implausible in `unit`, suggesting the right unit."""
    raw = df["mass_raw"].to_numpy()
    raw = raw[np.isfinite(raw) & (raw > 0) if unit != "log10msun" else np.isfinite(raw)]
    if raw.size == 0:
        return
    median = float(np.median(raw))
    lo, hi = MEDIAN_LOG_MASS_RANGE
    if lo <= _log10_msun(median, unit) <= hi:
        return
    fits = [u for u in MASS_UNITS if u != unit and median > 0 and lo <= _log10_msun(median, u) <= hi]
    hint = f"pass --mass-unit {fits[0]}" if fits else "check the column and its unit"
    raise InputError(
        f"{path}: column {column} has median {median:.4g}, i.e. log10 M500 = {_log10_msun(median, unit):.2f} "
        f"in unit {unit} (clusters have {lo:g}..{hi:g}): wrong mass unit? The values look like "
        f"{fits[0] if fits else 'none of ' + ', '.join(MASS_UNITS)}; {hint}. Nothing was loaded"
    )


def _log10_msun(value: float, unit: str) -> float:
    factor = MASS_UNITS[unit]
    if factor is None:
        return value
    return float(np.log10(value * factor)) if value > 0 else float("nan")


def rejection_error(path: Path, rejected: pd.DataFrame, n_total: int) -> InputError:
    """One InputError listing the first rejected rows (row, id, column, value, reason).

    When every row is rejected, --skip-bad would load nothing, so it is not offered.
    """
    lines = [
        f"row {r[ROW]} (id {r['source_id']}) column {r['column']} = {r['value']}: {r['reason']}"
        for _, r in rejected.head(SHOWN).iterrows()
    ]
    more = f" ... and {len(rejected) - SHOWN} more" if len(rejected) > SHOWN else ""
    dups = rejected.loc[rejected["reason"].str.contains("duplicate id"), "source_id"].unique()[:SHOWN]
    dup_note = f" Duplicate ids: {', '.join(map(str, dups))}." if len(dups) else ""
    todo = (" Nothing was loaded. Fix the file (--skip-bad would leave no rows to load)" if len(rejected) == n_total
            else " Nothing was loaded. Fix the file, or pass --skip-bad to load the good rows and write the "
            "rejected ones with their reasons to a CSV")
    count = f"all {n_total}" if len(rejected) == n_total else f"{len(rejected)} of {n_total}"
    return InputError(f"{path}: {count} rows are invalid: " + "; ".join(lines) + more + "." + dup_note + todo)
