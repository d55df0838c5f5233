"""Ingest a catalogue file into PostgreSQL: read, map, validate, then one COPY transaction.

A load is identified by the file's sha256 and how it is read (kind, column mapping, FITS HDU,
mass unit, method, see IDENTITY) plus the catalogue name when one is given: loading the same
file the same way again changes nothing; the same file from another HDU or under another
`name` is another catalogue; the same catalogue read with another mass unit or method is an
error until `replace=True`, which reloads it in place (rows upserted on the catalogue's own
id, so cluster ids stay stable, and rows no longer in the file deleted, in one transaction).
On any error nothing is written.
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
from clustermass.catalogs.readers import ROW, Mapping, read_catalog, regular_file
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
#: `catalogs.meta` keys that, with kind and sha256, say how a file was read; the option that sets each.
IDENTITY = {"columns": "the column options", "hdu": "--hdu", "mass_unit": "--mass-unit", "method": "--method"}


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
    path = regular_file(path)
    sha = file_sha256(path)
    stage("read")
    raw, canon = read_catalog(path, mapping, hdu)
    identity = {
        "columns": {k: list(v) for k, v in mapping.columns.items()},
        "hdu": raw.attrs.get("hdu"),
        "mass_unit": mapping.mass_unit if "mass_raw" in canon else None,
        "method": mapping.method if mapping.target == "mass_measurements" else None,
    }
    known = _existing(engine, path, kind, sha, identity, name, raw.attrs.get("hdu_name"), replace)
    if known is not None:
        return IngestResult(known["name"], known["id"], kind, mapping.target, str(path), sha, "unchanged",
                            known["n_rows"], known["n_skipped"], seconds=time.perf_counter() - t0)
    name = name or default_name(path)

    stage("validate")
    if "mass_raw" in canon:
        check_mass_unit(canon, mapping.mass_unit, mapping.columns["mass"][0], path)
    checked = validate(canon, mapping.target)
    if checked.good.empty or (len(checked.rejected) and not skip_bad):
        raise rejection_error(path, checked.rejected, len(canon))
    good = checked.good
    meta = {
        **identity,
        "hdu_name": raw.attrs.get("hdu_name"),
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


def _existing(engine: Engine, path: Path, kind: str, sha: str, identity: dict, name: str | None,
              hdu_name: str | None, replace: bool) -> dict | None:
    """The catalogue already holding this file read this way (nothing to do), unless replacing.

    Without a `name`, the file is found under whatever name it was loaded; with one, only
    under that name (another name is another catalogue). Raises, naming the option and
    --replace, when the name is taken by other content or by this file read another way.
    """
    if replace:
        return None
    target = name or default_name(path)
    with engine.connect() as conn:
        same = conn.execute(select(Catalog).where(Catalog.sha256 == sha, Catalog.kind == kind)).mappings().all()
        named = conn.execute(select(Catalog).where(Catalog.name == target)).mappings().first()
    if named is not None and named["sha256"] == sha and named["kind"] == kind:
        differ = _differences(named["meta"], identity)
        if not differ:
            return named
        if differ <= {"mass_unit", "method"}:
            was = ", ".join(f"{IDENTITY[k]} {named['meta'][k]}" for k in sorted(differ))
            now = ", ".join(f"{IDENTITY[k]} {identity[k]}" for k in sorted(differ))
            raise InputError(f"catalogue {target!r} was loaded from {path} with {was}, not {now}; pass --replace "
                             "to reload it with these options")
        read = f"HDU {identity['hdu']} ({hdu_name})" if "hdu" in differ else "these columns"
        raise InputError(
            f"catalogue {target!r} holds {path} read with other {' and '.join(IDENTITY[k] for k in sorted(differ))}; "
            f"pass --name NAME to load {read} as another catalogue, or --replace to reload {target!r} this way"
        )
    if name is None:
        for row in same:
            if not _differences(row["meta"], identity):
                return row
    if named is not None:
        raise InputError(
            f"catalogue {target!r} is already loaded with other content or columns (from {named['path']}, "
            f"sha256 {named['sha256'][:12]}...); "
            "pass --replace to reload it from this file, or --name NAME to load it as a new catalogue"
        )
    return None


def _differences(meta: dict, identity: dict) -> set[str]:
    """IDENTITY keys whose stored value differs from `identity` (a key older loads lack is not compared)."""
    return {k for k in IDENTITY if meta.get(k, identity[k]) != identity[k]}


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
