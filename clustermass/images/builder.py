"""Cutout builder: SDSS frames reprojected onto a cluster-centred TAN grid, flux conserved.

For every cluster and band, each candidate frame is checked against the cutout footprint with
its own WCS; the frames that cover part of it are resampled onto `cutout_wcs(...)` and mosaicked.
Output pixels that no frame covers completely are NaN and the covered fraction is recorded.
Values are nanomaggies per output pixel (flux sums, not means).

One run per pixel, never an average of runs. Where runs (different nights, different seeing)
overlap, the candidate runs of a cutout are ranked by their best window_flist SCORE (SDSS's
field quality, 0..1; the highest-scoring field of a patch of sky is its primary), then by run
number; runs without a score rank last. Frames are read rank by rank: the best run fills what it
covers, the next run only the pixels still empty, and so on until the cutout is covered, so the
frames of runs that are not needed are never fetched. Fields of the same run that overlap (the
128 rows adjacent fields share, neighbouring camcols) are the same exposure and are averaged.

Resampling (measured in scripts/bench_fetch.py): the cutout grid is usually 8-15x coarser than
SDSS's 0.396"/px, so by default ("auto") each frame pixel's flux goes to the output pixel that
contains its centre through an affine pixel map ("bin": flux exact, ~25 ms a cutout band); when
output pixels are under 4 frame pixels wide, binning quantises too coarsely and `reproject_exact`
(spherical polygon overlap, ~50x slower) is used instead. Every frame is read once per call.
"""

from __future__ import annotations

from collections import defaultdict, deque
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from typing import Iterator, Protocol, Sequence

import numpy as np
import pandas as pd
from astropy.wcs import WCS

from clustermass.images.base import BANDS, Cutout, CutoutGrid, cutout_wcs
from clustermass.images.frames import DEFAULT_RERUN, Frame, FrameReader, frame_relpath
from clustermass.errors import ImageError

METHODS = ("auto", "bin", "exact")
#: Below this ratio of output to frame pixel size, "auto" uses exact polygon overlap.
BIN_MIN_RATIO = 4.0
#: Largest tolerated error (output pixels) of the affine pixel map before falling back to full WCS transforms.
AFFINE_TOLERANCE_PX = 0.01


class FieldIndex(Protocol):
    def candidates(self, ra: Sequence[float], dec: Sequence[float], radius_deg: Sequence[float]) -> list[pd.DataFrame]:
        ...


def project_frame(frame: Frame, out_wcs: WCS, size: int, method: str = "auto") -> np.ndarray | None:
    """Flux per output pixel (nanomaggies) from one frame; NaN where it does not fully cover; None if no overlap."""
    if method not in METHODS:
        raise ValueError(f"unknown resampling method {method!r}; use one of {METHODS}")
    ny, nx = frame.data.shape
    edges = np.arange(size + 1) - 0.5
    cx, cy = np.meshgrid(edges, edges)  # output pixel corners, (size+1, size+1)
    fx, fy = frame.wcs.world_to_pixel_values(*out_wcs.pixel_to_world_values(cx.ravel(), cy.ravel()))
    fx, fy = fx.reshape(cx.shape), fy.reshape(cy.shape)
    inside = (fx >= -0.5) & (fx <= nx - 0.5) & (fy >= -0.5) & (fy <= ny - 0.5)
    covered = inside[:-1, :-1] & inside[1:, :-1] & inside[:-1, 1:] & inside[1:, 1:]
    if not covered.any():
        return None
    x0, x1 = max(int(np.floor(fx[inside].min())) - 1, 0), min(int(np.ceil(fx[inside].max())) + 2, nx)
    y0, y1 = max(int(np.floor(fy[inside].min())) - 1, 0), min(int(np.ceil(fy[inside].max())) + 2, ny)
    crop = frame.data[y0:y1, x0:x1]
    ratio = float(np.sqrt(_pixel_area(out_wcs) / _pixel_area(frame.wcs)))
    if method == "exact" or (method == "auto" and ratio < BIN_MIN_RATIO):
        out = _resample_exact(crop, frame.wcs.slice((slice(y0, y1), slice(x0, x1))), out_wcs, size, ratio)
    else:
        out = _resample_bin(crop, x0, y0, fx.ravel(), fy.ravel(), cx.ravel(), cy.ravel(), frame.wcs, out_wcs, size)
    out[~covered] = np.nan
    return out


def _pixel_area(wcs: WCS) -> float:
    """Pixel area at the reference point (deg^2)."""
    area = wcs.proj_plane_pixel_area()
    return float(getattr(area, "value", area))


def _resample_exact(crop: np.ndarray, crop_wcs: WCS, out_wcs: WCS, size: int, ratio: float) -> np.ndarray:
    from reproject import reproject_exact

    mean, _ = reproject_exact((crop, crop_wcs), out_wcs, shape_out=(size, size))
    return mean * ratio**2  # surface brightness per frame pixel -> flux per output pixel


def _resample_bin(
    crop: np.ndarray,
    x0: int,
    y0: int,
    fx: np.ndarray,
    fy: np.ndarray,
    ox: np.ndarray,
    oy: np.ndarray,
    frame_wcs: WCS,
    out_wcs: WCS,
    size: int,
) -> np.ndarray:
    """Sum each frame pixel into the output pixel holding its centre (affine map fitted on the corners)."""
    ny, nx = crop.shape
    design = np.column_stack([fx - x0, fy - y0, np.ones_like(fx)])
    coef_x, *_ = np.linalg.lstsq(design, ox, rcond=None)
    coef_y, *_ = np.linalg.lstsq(design, oy, rcond=None)
    resid = max(np.abs(design @ coef_x - ox).max(), np.abs(design @ coef_y - oy).max())
    xs, ys = np.arange(nx, dtype=np.float64), np.arange(ny, dtype=np.float64)[:, None]
    if resid <= AFFINE_TOLERANCE_PX:
        px = coef_x[0] * xs + coef_x[1] * ys + coef_x[2]
        py = coef_y[0] * xs + coef_y[1] * ys + coef_y[2]
    else:  # strongly non-linear map: transform every pixel exactly (slow, rare)
        gx, gy = np.meshgrid(xs + x0, ys[:, 0] + y0)
        px, py = out_wcs.world_to_pixel_values(*frame_wcs.pixel_to_world_values(gx, gy))
    ix = np.floor(px + 0.5).astype(np.int64)
    iy = np.floor(py + 0.5).astype(np.int64)
    ok = (ix >= 0) & (ix < size) & (iy >= 0) & (iy < size)
    flux = np.bincount(iy[ok] * size + ix[ok], weights=crop[ok].astype(np.float64), minlength=size * size)
    return flux.reshape(size, size)


def build_cutouts(
    clusters: pd.DataFrame,
    grid: CutoutGrid,
    bands: Sequence[str],
    index: FieldIndex,
    reader: FrameReader,
    concurrency: int = 4,
    method: str = "auto",
) -> list[Cutout]:
    """Cutouts (one per row of `clusters`: id, ra, dec, z) from the frames `index` names, read via `reader`."""
    n, nb, size = len(clusters), len(bands), grid.size
    ids = clusters["id"].to_numpy()
    ra, dec = clusters["ra"].to_numpy(float), clusters["dec"].to_numpy(float)
    z = clusters["z"].to_numpy(float) if "z" in clusters else np.full(n, np.nan)
    errors: list[list[str]] = [[] for _ in range(n)]
    scales = np.full(n, np.nan)
    for i in range(n):
        try:
            scales[i] = grid.pixel_scale(z[i])
        except ValueError as exc:
            errors[i].append(f"cluster {ids[i]}: {exc}")
    usable = np.flatnonzero(np.isfinite(scales))
    wcss = {i: cutout_wcs(ra[i], dec[i], size, scales[i]) for i in usable}
    radius = scales[usable] * size / 2 * np.sqrt(2) / 3600.0
    # per cluster, its candidate fields (run, camcol, field, rerun) grouped by the rank of their run
    by_rank: dict[int, list[list[tuple[int, int, int, str]]]] = {}
    for i, fields in zip(usable, index.candidates(ra[usable], dec[usable], radius)):
        levels: list[list[tuple[int, int, int, str]]] = [[] for _ in range(fields["run"].nunique())]
        for row, rank in zip(fields.itertuples(index=False), run_ranks(fields)):
            levels[rank].append((row.run, row.camcol, row.field, str(row.rerun) if row.rerun else DEFAULT_RERUN))
        by_rank[int(i)] = levels

    acc = np.zeros((n, nb, size, size), dtype=np.float32)  # float32: a dense tile holds ~2000 cutouts
    hits = np.zeros((n, nb, size, size), dtype=np.uint8)
    used: list[list[str]] = [[] for _ in range(n)]
    for level in range(max((len(v) for v in by_rank.values()), default=0)):
        plan: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for i, levels in by_rank.items():
            if level < len(levels) and (level == 0 or (hits[i] == 0).any()):
                for run, camcol, field, rerun in levels[level]:
                    for b, band in enumerate(bands):
                        plan[frame_relpath(band, run, camcol, field, rerun)].append((i, b))
        # pixels no better-ranked run filled (all of them at level 0)
        free = {i: hits[i] == 0 for i in {i for pairs in plan.values() for i, _ in pairs}} if level else None
        for relpath, frame, exc in _read_in_order(reader, sorted(plan), concurrency):
            for i, b in plan[relpath]:
                if exc is not None:
                    errors[i].append(str(exc))
                    continue
                flux = project_frame(frame, wcss[i], size, method)
                if flux is None:
                    continue
                ok = np.isfinite(flux) if free is None else np.isfinite(flux) & free[i][b]
                acc[i, b][ok] += flux[ok]
                hits[i, b][ok] += 1
                used[i].append(frame.name)

    out = []
    with np.errstate(invalid="ignore", divide="ignore"):
        data = np.where(hits > 0, acc / np.maximum(hits, 1), np.nan).astype(np.float32)
    for i in range(n):
        covered = float(np.isfinite(data[i]).mean())
        meta = {"frames": sorted(set(used[i])), "errors": errors[i]}
        if covered == 0 and not errors[i]:
            meta["errors"] = [
                f"cluster {ids[i]}: no frame in the field index covers ({ra[i]:.5f}, {dec[i]:.5f}) "
                "(outside the survey, or the `fields` table lacks it: cmcat ingest fields --sas)"
            ]
        out.append(
            Cutout(
                cluster_id=int(ids[i]),
                ra=float(ra[i]),
                dec=float(dec[i]),
                pixel_scale=float(scales[i]),
                data=data[i],
                covered_fraction=covered,
                meta=meta,
            )
        )
    return out


def run_ranks(fields: pd.DataFrame) -> np.ndarray:
    """Rank (0 = preferred) of each candidate field's run: best SCORE first, then run number; no score last."""
    if fields.empty:
        return np.zeros(0, dtype=np.int64)
    score = pd.to_numeric(fields["score"], errors="coerce") if "score" in fields else pd.Series(np.nan, index=fields.index)
    best = score.fillna(-np.inf).groupby(fields["run"].to_numpy()).max()
    order = sorted(best.index, key=lambda run: (-best[run], run))
    rank = {run: k for k, run in enumerate(order)}
    return np.array([rank[run] for run in fields["run"]], dtype=np.int64)


def _read_in_order(
    reader: FrameReader, relpaths: list[str], workers: int
) -> Iterator[tuple[str, Frame | None, ImageError | None]]:
    """Read frames on `workers` threads, at most `workers` ahead, yielding in the given order."""
    workers = max(1, int(workers))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        todo = iter(relpaths)
        pending = deque((rp, pool.submit(reader.read, rp)) for rp in islice(todo, workers))
        while pending:
            relpath, fut = pending.popleft()
            nxt = next(todo, None)
            if nxt is not None:
                pending.append((nxt, pool.submit(reader.read, nxt)))
            try:
                yield relpath, fut.result(), None
            except ImageError as exc:
                yield relpath, None, exc


class FrameSource:
    """An ImageSource that builds cutouts from SDSS frames: a field index plus a frame reader."""

    def __init__(self, name: str, reader: FrameReader, index: FieldIndex, concurrency: int = 4, method: str = "auto"):
        if method not in METHODS:
            raise ValueError(f"unknown resampling method {method!r}; use one of {METHODS}")
        self.name = name
        self.reader = reader
        self.index = index
        self.concurrency = concurrency
        self.method = method

    def cutouts(self, clusters: pd.DataFrame, grid: CutoutGrid, bands: Sequence[str] = BANDS) -> list[Cutout]:
        return build_cutouts(clusters, grid, bands, self.index, self.reader, self.concurrency, self.method)
