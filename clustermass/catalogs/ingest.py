"""Ingest a catalogue file into PostgreSQL: read, map, validate, then one COPY transaction.

A file is identified by its sha256: loading the same file again changes nothing;
`replace=True` reloads it in place (rows upserted on the catalogue's own id, so cluster ids
stay stable, and rows no longer in the file deleted). On any error nothing is written.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from sqlalchemy import Engine, all_, bindparam, delete, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY, BIGINT

from clustermass import sky
from clustermass.catalogs.readers import ROW, Mapping, read_catalog
from clustermass.catalogs.validate import check_mass_unit, rejection_error, validate
from clustermass.db.bulk import copy_upsert
from clustermass.db.models import Base, Catalog
from clustermass.errors import InputError

TARGET_COLUMNS = {
    "clusters": ["catalog_id", "source_id", "name", "ra", "dec", "hpx29", "z", "z_err", "richness", "richness_err",
                 "extra"],
    "mass_measurements": ["catalog_id", "source_id", "name", "ra", "dec", "hpx29", "z", "log10_m500",
                          "log10_m500_err_low", "log10_m500_err_high", "method", "extra"],
    "fields": ["catalog_id", "run", "rerun", "camcol", "field", "ra", "dec", "hpx29", "score", "extra"],
}
EXTENSIONS = {".gz", ".csv", ".fits", ".fit", ".fts", ".parquet", ".pq", ".txt"}
STAGES = ("read", "validate", "write")
CONFLICT = {
    "clusters": ["catalog_id", "source_id"],
    "mass_measurements": ["catalog_id", "source_id"],
    "fields": ["run", "rerun", "camcol", "field"],
}


@dataclass
class IngestResult:
    """What an ingest did: status is loaded | replaced | unchanged."""

    catalog: str
    catalog_id: int
    kind: str
    target: str
    path: str
    sha256: str
    status: str
    n_rows: int
    n_skipped: int = 0
    n_unknown_z: int = 0
    n_unknown_mass: int = 0
    n_removed: int = 0
    rejected_csv: str | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def default_name(path: Path) -> str:
    """Catalogue name: the file name without its format extensions ('mcxc.csv.gz' -> 'mcxc')."""
    name = Path(path).name
    while (suffix := Path(name).suffix.lower()) in EXTENSIONS:
        name = name[: -len(suffix)]
    return name


def target_frame(canon: pd.DataFrame, target: str, catalog_id: int) -> pd.DataFrame:
    """The rows to COPY into `target`: its columns in order, hpx29 computed, absent ones NULL."""
    out = pd.DataFrame(index=canon.index)
    for col in TARGET_COLUMNS[target]:
        if col == "catalog_id":
            out[col] = catalog_id
        elif col == "hpx29":
            out[col] = sky.hpx29(canon["ra"].to_numpy(), canon["dec"].to_numpy())
        elif col in ("run", "camcol", "field"):
            out[col] = pd.to_numeric(canon[col]).astype(np.int64)
        elif col == "rerun":
            out[col] = canon[col].astype(str).str.strip()
        elif col in canon:
            out[col] = canon[col]
        else:
            out[col] = None
    return out


def ingest_file(
    engine: Engine,
    path: Path,
    kind: str,
    mapping: Mapping,
    *,
    name: str | None = None,
    replace: bool = False,
    skip_bad: bool = False,
    reject_dir: Path | None = None,
    hdu: str | int | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> IngestResult:
    """Load one catalogue file (see module docstring); rejected rows go to a CSV with `skip_bad`.

    The rejected-rows CSV is written beside the input, or in `reject_dir` when the input's
    folder is read-only. `on_stage` is called with each of STAGES as it starts.
    """
    stage = on_stage or (lambda _name: None)
    t0 = time.perf_counter()
    path = Path(path).resolve()
    sha = file_sha256(path) if path.is_file() else ""
    if not sha:
        raise InputError(f"{path}: no such file")
    name = name or default_name(path)
    columns = {k: list(v) for k, v in mapping.columns.items()}
    known = _existing(engine, name, kind, sha, columns, replace)
    if known is not None:
        return IngestResult(known["name"], known["id"], kind, mapping.target, str(path), sha, "unchanged",
                            known["n_rows"], known["n_skipped"], seconds=time.perf_counter() - t0)

    stage("read")
    raw, canon = read_catalog(path, mapping, hdu)
    stage("validate")
    if "mass_raw" in canon:
        check_mass_unit(canon, mapping.mass_unit, mapping.columns["mass"][0], path)
    checked = validate(canon, mapping.target)
    if len(checked.rejected) and not skip_bad:
        raise rejection_error(path, checked.rejected, len(canon))
    good = checked.good
    meta = {
        "format_hdu": hdu if hdu is not None else mapping.fits_hdu,
        "columns": columns,
        "mass_unit": mapping.mass_unit if "mass_raw" in canon else None,
        "n_unknown_z": int(good["z"].isna().sum()) if "z" in good else 0,
        "n_unknown_mass": int(good["log10_m500"].isna().sum()) if "log10_m500" in good else 0,
    }
    stage("write")
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('cmcat-ingest:' || :n))"), {"n": name})
        row = conn.execute(select(Catalog).where(Catalog.name == name)).mappings().first()
        values = dict(kind=kind, path=str(path), sha256=sha, n_rows=len(good), n_skipped=len(checked.rejected),
                      meta=meta)
        if row is None:
            catalog_id = conn.execute(
                Catalog.__table__.insert().values(name=name, **values).returning(Catalog.id)
            ).scalar_one()
        else:
            if row["kind"] != kind:
                raise InputError(f"catalogue {name!r} exists with kind {row['kind']}; pass --name to load "
                                 f"{path} as a new {kind} catalogue")
            catalog_id = row["id"]
            conn.execute(update(Catalog).where(Catalog.id == catalog_id).values(ingested_at=text("now()"), **values))
        frame = target_frame(good, mapping.target, catalog_id)
        cols = TARGET_COLUMNS[mapping.target]
        keys = CONFLICT[mapping.target]
        updates = [c for c in cols if c not in keys] if row is not None or mapping.target == "fields" else None
        if row is None:  # a new catalogue: plain insert
            copy_upsert(conn, mapping.target, frame, conflict=keys, update=updates)
            n_removed = 0
        else:  # reload: upsert, then drop the rows the file no longer has
            ids = copy_upsert(conn, mapping.target, frame, conflict=keys, update=updates, returning="id")
            n_removed = _delete_stale(conn, mapping.target, catalog_id, [i for (i,) in ids])
    rejected_csv = _write_rejected(raw, checked.rejected, path, reject_dir) if len(checked.rejected) else None
    return IngestResult(
        name, catalog_id, kind, mapping.target, str(path), sha, "replaced" if row is not None else "loaded",
        len(good), len(checked.rejected), meta["n_unknown_z"], meta["n_unknown_mass"], n_removed,
        str(rejected_csv) if rejected_csv else None, time.perf_counter() - t0,
    )


def _existing(engine: Engine, name: str, kind: str, sha: str, columns: dict, replace: bool) -> dict | None:
    """The catalogue already holding this exact file read the same way (nothing to do), unless replacing.

    Raises when `name` is taken by other content (or another column mapping) and `replace` is off.
    """
    if replace:
        return None
    with engine.connect() as conn:
        same = conn.execute(select(Catalog).where(Catalog.sha256 == sha, Catalog.kind == kind)).mappings().all()
        named = conn.execute(select(Catalog).where(Catalog.name == name)).mappings().first()
    for row in same:
        if row["meta"].get("columns") == columns:
            return row
    if named is not None:
        raise InputError(
            f"catalogue {name!r} is already loaded with other content or columns (from {named['path']}, "
            f"sha256 {named['sha256'][:12]}...); "
            "pass --replace to reload it from this file, or --name NAME to load it as a new catalogue"
        )
    return None


def _delete_stale(conn, target: str, catalog_id: int, keep_ids: list[int]) -> int:
    """Delete the catalogue's rows of `target` that the reloaded file no longer has."""
    table = Base.metadata.tables[target]
    keep = bindparam("keep", value=keep_ids, type_=ARRAY(BIGINT))
    stmt = delete(table).where(table.c.catalog_id == catalog_id, table.c.id != all_(keep))
    return conn.execute(stmt).rowcount


def _write_rejected(raw: pd.DataFrame, rejected: pd.DataFrame, path: Path, fallback: Path | None) -> Path:
    """CSV of the rejected source rows with row number, column and reason; beside the input if writable."""
    rows = raw.iloc[rejected[ROW].to_numpy() - 1].reset_index(drop=True)
    out = pd.concat([rejected[[ROW, "column", "reason"]].reset_index(drop=True), rows], axis=1)
    out = out.rename(columns={ROW: "row", "column": "bad_column"})
    name = f"{default_name(path)}.rejected.csv"
    if _writable(path.parent):
        try:
            out.to_csv(path.parent / name, index=False)
            return path.parent / name
        except OSError:
            pass
    if fallback is None:
        raise InputError(f"{path.parent} is read-only and no other folder was given for the rejected rows")
    fallback.mkdir(parents=True, exist_ok=True)
    out.to_csv(fallback / name, index=False)
    return fallback / name


def _writable(folder: Path) -> bool:
    """Whether we may write in `folder`: access allowed and (even for root) some write bit set."""
    return os.access(folder, os.W_OK) and bool(folder.stat().st_mode & 0o222)
