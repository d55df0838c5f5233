"""The cutout store: one compressed npz per tile and source, indexed by the `cutouts` table.

A store file `{cutout_dir}/{source}/{bands}-{size}px/order{k}/tile-{pix}.npz` holds `ids` (cluster ids),
`data` (n, bands, size, size) float32 nanomaggies per pixel (NaN where no frame covers),
`covered` and `pixel_scale`. Files are written atomically; every `cutouts` row names its file
and the file's sha256. `ensure_cutouts` is what the pipeline calls: it returns the cutouts of a
set of clusters, reading the stored ones after checking the checksum (a changed or missing file
is never used: its clusters are fetched again) and fetching the rest from an ImageSource.

Statuses: `ok` (fully covered), `partial` (some pixels NaN, covered_fraction < 1), `failed`
(nothing usable: no frame covers it, a frame could not be fetched, or no redshift; `error` says
which). Failed clusters are retried on the next call unless `retry_failed=False`.

A versioned source (name `family-vN`, e.g. the mock's `mock-v2`) refuses clusters whose cutouts
the store holds from another version of it (`mock`, `mock-v1`): they must be rendered again.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import pandas as pd
from sqlalchemy import Connection, delete, func, or_, select, update

from clustermass.db.bulk import copy_upsert
from clustermass.db.models import Cutout as CutoutRow
from clustermass.errors import CmcatError, ImageError
from clustermass.images.atomic import atomic_write
from clustermass.images.base import BANDS, Cutout, CutoutGrid, ImageSource

_ROW_COLUMNS = ["cluster_id", "source", "bands", "size", "pixel_scale", "path", "sha256", "covered_fraction", "status", "error"]
_SCALE_RTOL = 1e-6


@dataclass
class StoreResult:
    """Cutouts of the requested clusters, in request order, and what it took to get them."""

    ids: np.ndarray  # (n,) cluster ids
    data: np.ndarray  # (n, bands, size, size) float32; all NaN where status is failed
    covered_fraction: np.ndarray  # (n,)
    pixel_scale: np.ndarray  # (n,) arcsec / pixel (NaN if unknown)
    status: list[str]
    error: list[str | None]
    n_cached: int = 0  # read from the store
    n_fetched: int = 0  # fetched or rendered now and stored (ok or partial)
    n_failed: int = 0  # failed now
    n_changed: int = 0  # stored but its file changed or vanished: fetched again
    errors: dict[str, int] = field(default_factory=dict)  # failure reason -> count

    def counts(self) -> dict:
        return {
            "n_clusters": len(self.ids),
            "cached": self.n_cached,
            "fetched": self.n_fetched,
            "failed": self.n_failed,
            "changed": self.n_changed,
            "errors": dict(self.errors),
        }


def tile_path(cutout_dir: Path, source: str, norder: int, npix: int, *, bands: str, size: int) -> Path:
    """The store file of one tile, source and cutout shape (bands, size): one file holds one shape."""
    return Path(cutout_dir) / source / f"{bands}-{int(size)}px" / f"order{int(norder)}" / f"tile-{int(npix)}.npz"


def sha256_bytes(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def encode_store(ids: np.ndarray, data: np.ndarray, covered: np.ndarray, scales: np.ndarray) -> bytes:
    """Bytes of a store file (compressed npz)."""
    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        ids=np.asarray(ids, dtype=np.int64),
        data=np.asarray(data, dtype=np.float32),
        covered=np.asarray(covered, dtype=np.float32),
        pixel_scale=np.asarray(scales, dtype=np.float64),
    )
    return buf.getvalue()


def read_store(path: Path, sha256: str | None) -> dict[int, tuple[np.ndarray, float, float]] | None:
    """{cluster id: (data, covered, pixel_scale)} of a store file, or None if missing or not matching `sha256`."""
    try:
        raw = Path(path).read_bytes()
    except OSError:
        return None
    if sha256 is None or sha256_bytes(raw) != sha256:
        return None
    with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
        ids, data, covered, scales = npz["ids"], npz["data"], npz["covered"], npz["pixel_scale"]
    return {int(i): (data[k], float(covered[k]), float(scales[k])) for k, i in enumerate(ids)}


def classify(cutout: Cutout) -> tuple[str, str | None]:
    """(status, error) of a freshly built cutout; data from an incomplete set of frames counts as failed."""
    errors = cutout.meta.get("errors") or []
    if cutout.covered_fraction >= 1.0:
        return "ok", None
    if cutout.covered_fraction <= 0.0 or errors:
        return "failed", "; ".join(errors) or f"cluster {cutout.cluster_id}: no image data covers the cutout"
    return "partial", f"{cutout.covered_fraction:.1%} of the cutout covered by frames"


def _build(source: ImageSource, clusters: pd.DataFrame, grid: CutoutGrid, bands: Sequence[str] = BANDS
           ) -> Iterator[tuple[int, Cutout | None, str, str | None]]:
    """(cluster id, cutout or None, status, error) per cluster, as the source builds them: a cluster the source
    returned nothing for, or every cluster when the source failed as a whole, is "failed" with the reason."""
    try:
        built = {c.cluster_id: c for c in source.cutouts(clusters.reset_index(drop=True), grid, bands)}
        source_error = None
    except CmcatError as exc:
        built, source_error = {}, f"{source.name}: {exc}"
    for cid in clusters["id"].to_numpy(np.int64):
        cut = built.get(int(cid))
        if cut is None:
            yield int(cid), None, "failed", source_error or f"{source.name} returned no cutout for cluster {cid}"
        else:
            yield int(cid), cut, *classify(cut)


def fetch_cutouts(source: ImageSource, clusters: pd.DataFrame, grid: CutoutGrid) -> np.ndarray:
    """(N, 5, size, size) ugriz cutouts of `clusters` straight from `source`, not stored: for cutouts used once
    (the BCG fits' fine ones, ~1.8 MB each). Clusters whose cutout failed (as `classify` says) are all-NaN."""
    out = np.full((len(clusters), len(BANDS), grid.size, grid.size), np.nan, dtype=np.float32)
    for k, (_, cut, status, _) in enumerate(_build(source, clusters, grid)):
        if status != "failed":
            out[k] = cut.data
    return out


def ensure_cutouts(
    conn: Connection,
    cutout_dir: Path,
    clusters: pd.DataFrame,
    source: ImageSource,
    grid: CutoutGrid,
    tile: tuple[int, int],
    bands: Sequence[str] = BANDS,
    retry_failed: bool = True,
) -> StoreResult:
    """Cutouts of `clusters` (id, ra, dec, z, richness) from the store, fetching what is missing.

    Runs its reads and writes on `conn` inside the caller's transaction (one per tile); new
    cutouts go to the store file of `tile` = (order, pixel), rewritten atomically with the
    entries it already held.
    """
    bands = "".join(bands)
    ids = clusters["id"].to_numpy(np.int64)
    _refuse_other_versions(conn, ids, source.name)
    n, nb, size = len(ids), len(bands), grid.size
    expected = _expected_scales(clusters, grid)
    rows = _load_rows(conn, ids, source.name)

    data = np.full((n, nb, size, size), np.nan, dtype=np.float32)
    covered = np.zeros(n, dtype=np.float64)
    scales = expected.copy()
    status = ["failed"] * n
    error: list[str | None] = [None] * n
    result = StoreResult(ids, data, covered, scales, status, error)

    files: dict[tuple[str, str], dict | None] = {}
    todo: list[int] = []
    for k, cid in enumerate(ids):
        row = rows.get(int(cid))
        if row is None or row.size != size or row.bands != bands or not _same_scale(row.pixel_scale, expected[k]):
            todo.append(k)
            continue
        if row.status == "failed":
            if retry_failed:
                todo.append(k)
            else:
                error[k] = row.error
            continue
        key = (row.path, row.sha256)
        if key not in files:
            files[key] = read_store(Path(row.path), row.sha256) if row.path else None
        entry = (files[key] or {}).get(int(cid))
        if entry is None:  # file changed, vanished or lost this cluster: never use it, fetch again
            result.n_changed += 1
            todo.append(k)
            continue
        data[k], covered[k], scales[k] = entry
        status[k], error[k] = row.status, row.error
        result.n_cached += 1

    if todo:
        _fetch_and_store(conn, cutout_dir, clusters.iloc[todo], todo, source, grid, tile, bands, result)
    return result


def _fetch_and_store(
    conn: Connection,
    cutout_dir: Path,
    missing: pd.DataFrame,
    positions: list[int],
    source: ImageSource,
    grid: CutoutGrid,
    tile: tuple[int, int],
    bands: str,
    result: StoreResult,
) -> None:
    path = tile_path(cutout_dir, source.name, *tile, bands=bands, size=grid.size)
    keep = _current_entries(conn, path, source.name)
    new_rows = []
    for k, (cid, cut, st, err) in zip(positions, _build(source, missing, grid, bands)):
        result.status[k], result.error[k] = st, err
        keep.pop(cid, None)
        if st == "failed":
            result.n_failed += 1
            reason = (err or "").split(";")[0][:200]
            result.errors[reason] = result.errors.get(reason, 0) + 1
            new_rows.append((cid, float(result.pixel_scale[k]), None, None, st, err))
            continue
        result.data[k], result.covered_fraction[k] = cut.data, cut.covered_fraction
        result.pixel_scale[k] = cut.pixel_scale
        result.n_fetched += 1
        new_rows.append((cid, cut.pixel_scale, str(path), cut.covered_fraction, st, err))

    stored = {int(cid): (result.data[k], result.covered_fraction[k], result.pixel_scale[k])
              for k, cid in zip(positions, missing["id"].to_numpy(np.int64)) if result.status[k] != "failed"}
    entries = {**keep, **stored}
    sha = None
    if entries:
        order = sorted(entries)
        raw = encode_store(
            np.array(order),
            np.stack([entries[i][0] for i in order]),
            np.array([entries[i][1] for i in order]),
            np.array([entries[i][2] for i in order]),
        )
        sha = sha256_bytes(raw)
    frame = pd.DataFrame(
        [
            (cid, source.name, bands, grid.size, scale, p, sha if p else None, cov, st, err)
            for cid, scale, p, cov, st, err in new_rows
        ],
        columns=_ROW_COLUMNS,
    )
    # NaN (no usable redshift) must reach PostgreSQL as 'NaN', not as NULL.
    frame["pixel_scale"] = [repr(float(v)) if np.isfinite(v) else "NaN" for v in frame["pixel_scale"]]
    frame["covered_fraction"] = frame["covered_fraction"].astype(float)
    copy_upsert(conn, "cutouts", frame, conflict=["cluster_id", "source"], update=_ROW_COLUMNS[2:])
    # Rows that point at this file: kept entries take the new checksum, the rest lose the file.
    in_file = list(entries)
    conn.execute(
        delete(CutoutRow).where(
            CutoutRow.path == str(path), CutoutRow.source == source.name, CutoutRow.cluster_id.not_in(in_file)
        )
    )
    if entries:
        conn.execute(
            update(CutoutRow).where(CutoutRow.path == str(path), CutoutRow.source == source.name).values(sha256=sha)
        )
        atomic_write(path, raw)
    else:
        path.unlink(missing_ok=True)


def _current_entries(conn: Connection, path: Path, source: str) -> dict[int, tuple[np.ndarray, float, float]]:
    """Entries of an existing store file that its rows still vouch for (same checksum), else none."""
    shas = conn.execute(
        select(CutoutRow.sha256).where(CutoutRow.path == str(path), CutoutRow.source == source).distinct()
    ).scalars().all()
    if len(shas) != 1:
        return {}
    entries = read_store(path, shas[0]) or {}
    listed = set(
        conn.execute(select(CutoutRow.cluster_id).where(CutoutRow.path == str(path), CutoutRow.source == source)).scalars()
    )
    return {cid: e for cid, e in entries.items() if cid in listed}


def _refuse_other_versions(conn: Connection, ids: np.ndarray, source: str) -> None:
    """ImageError if the store holds cutouts of these clusters from another version of a versioned source."""
    family, sep, _ = source.rpartition("-v")
    if not sep or len(ids) == 0:
        return
    table = CutoutRow.__table__
    other = conn.execute(
        select(table.c.source, func.count(), func.min(table.c.cluster_id))
        .where(table.c.cluster_id.in_([int(i) for i in ids]), table.c.source != source,
               or_(table.c.source == family, table.c.source.like(f"{family}-v%")))
        .group_by(table.c.source).order_by(table.c.source)
    ).first()
    if other is not None:
        name, n, first = other
        raise ImageError(
            f"cluster {first} (and {n - 1} more): the cutout store holds its cutout from {name!r}, this cmcat renders "
            f"{source!r}; delete the old entries (psql \"$(cmcat db url --libpq)\" -c \"DELETE FROM cutouts WHERE source = "
            f"'{name}'\") or use a new --data-dir, then run again to render them with {source!r}")


def _load_rows(conn: Connection, ids: np.ndarray, source: str) -> dict[int, Any]:
    """The `cutouts` rows of these clusters and source, by cluster id."""
    if len(ids) == 0:
        return {}
    table = CutoutRow.__table__
    stmt = select(table).where(table.c.source == source, table.c.cluster_id.in_([int(i) for i in ids]))
    return {r.cluster_id: r for r in conn.execute(stmt).all()}


def _expected_scales(clusters: pd.DataFrame, grid: CutoutGrid) -> np.ndarray:
    z = clusters["z"].to_numpy(float) if "z" in clusters else np.full(len(clusters), np.nan)
    out = np.full(len(clusters), np.nan)
    for k, zk in enumerate(z):
        try:
            out[k] = grid.pixel_scale(zk)
        except ValueError:
            pass
    return out


def _same_scale(stored: float | None, expected: float) -> bool:
    """Stored pixel scale matches the grid's (a cluster without a usable redshift never matches)."""
    return stored is not None and bool(np.isfinite(expected)) and abs(stored - expected) <= _SCALE_RTOL * expected
