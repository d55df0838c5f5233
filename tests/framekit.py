"""Test helpers: SDSS-layout frame mirrors and `fields` rows built from frames' own WCS."""

from __future__ import annotations

import bz2
import io
import shutil
import warnings
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning
from sqlalchemy import Engine, insert

from clustermass import sky
from clustermass.db.models import Catalog, Field
from clustermass.images.frames import frame_relpath, parse_frame_name

REAL_FRAMES = ("stellar_classification/frame-g-000756-2-0471.fits.bz2", "stellar_classification/frame-g-007778-5-0267.fits.bz2")


def mirror_real(real_data: Path, root: Path, names=REAL_FRAMES) -> list[tuple[str, int, int, int]]:
    """Copy real frames into `root` in the SAS layout; returns their (band, run, camcol, field)."""
    keys = []
    for name in names:
        key = parse_frame_name(name)
        target = root / frame_relpath(*key)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(real_data / "sdss_frames" / name, target)
        keys.append(key)
    return keys


def read_header(path: Path) -> fits.Header:
    return fits.getheader(path)


def frame_wcs(header: fits.Header) -> WCS:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        return WCS(header, naxis=2)


def write_frame(root: Path, band: str, run: int, camcol: int, field: int, data: np.ndarray, header: fits.Header) -> Path:
    """Write a frame (HDU 0 = `data` with `header`'s WCS) as .fits.bz2 in the SAS layout."""
    hdr = header.copy()
    for key in ("NAXIS1", "NAXIS2"):
        hdr.remove(key, ignore_missing=True)
    buf = io.BytesIO()
    fits.PrimaryHDU(data.astype(np.float32), header=hdr).writeto(buf)
    path = root / frame_relpath(band, run, camcol, field)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bz2.compress(buf.getvalue(), 1))
    return path


def add_fields(engine: Engine, frames: list[tuple[int, int, int, WCS, tuple[int, int]]]) -> None:
    """`fields` rows (run, camcol, field, wcs, (ny, nx)) centred where each frame's WCS says."""
    with engine.begin() as conn:
        cat = conn.execute(
            insert(Catalog).values(name="fields-test", kind="fields", path="/x", sha256="0", n_rows=len(frames)).returning(
                Catalog.id
            )
        ).scalar_one()
        values = []
        for run, camcol, field, wcs, (ny, nx) in frames:
            ra, dec = (float(v) for v in wcs.pixel_to_world_values((nx - 1) / 2, (ny - 1) / 2))
            values.append(
                {"catalog_id": cat, "run": run, "rerun": "301", "camcol": camcol, "field": field,
                 "ra": ra, "dec": dec, "hpx29": int(sky.hpx29(ra, dec))}
            )
        conn.execute(insert(Field), values)


def crop_header(header: fits.Header, rows: slice, cols: slice) -> fits.Header:
    """Header of a frame's sub-image: same CD matrix, CRPIX shifted (what SDSS would write)."""
    out = header.copy()
    out["CRPIX1"] = header["CRPIX1"] - cols.start
    out["CRPIX2"] = header["CRPIX2"] - rows.start
    return out
