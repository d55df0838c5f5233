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


def window_flist_bytes(frames: list[tuple[int, int, int, WCS, tuple[int, int], float]], n_filler: int = 0) -> bytes:
    """window_flist.fits in the real file's column layout (SDSS data model: RUN ... SCORE, per-band
    PSF_FWHM/SKYFLUX/status arrays) for frames (run, camcol, field, wcs, (ny, nx), score), placed
    where each WCS says, plus `n_filler` fields far away (to give the file some bytes)."""
    from clustermass.images.frames import radec_to_munu
    from clustermass.mock.frames import window_flist

    node, incl = 95.0, 0.0  # the equatorial stripe's great circle: (mu, nu) = (ra, dec)
    rows = []
    for run, camcol, field, wcs, (ny, nx), score in frames:
        ra, dec = (float(v) for v in wcs.pixel_to_world_values((nx - 1) / 2, (ny - 1) / 2))
        cra, cdec = wcs.pixel_to_world_values(np.array([-0.5, nx - 0.5, -0.5, nx - 0.5]), np.array([-0.5, -0.5, ny - 0.5, ny - 0.5]))
        mu, nu = radec_to_munu(np.asarray(cra), np.asarray(cdec), node, incl)
        rows.append((run, camcol, field, ra, dec, score, mu.min(), mu.max(), nu.min(), nu.max()))
    for k in range(n_filler):
        ra, dec = 200.0 + 0.1 * (k % 500), 60.0 + 0.2 * (k // 500)
        rows.append((9000 + k // 500, 1 + k % 6, 11 + k % 500, ra, dec, 0.5, ra - 0.07, ra + 0.07, dec - 0.1, dec + 0.1))
    n = len(rows)
    col = lambda i: np.array([r[i] for r in rows])  # noqa: E731
    base = window_flist([], seed=0)  # the mock's column definitions, filled here with these fields' values
    arrays = {"RUN": col(0), "RERUN": ["301"] * n, "CAMCOL": col(1), "FIELD": col(2), "RA": col(3), "DEC": col(4),
              "SCORE": col(5), "MU_START": col(6), "MU_END": col(7), "NU_START": col(8), "NU_END": col(9),
              "INCL": np.full(n, incl), "NODE": np.full(n, node)}
    cols = [fits.Column(c.name, c.format, array=arrays[c.name]) for c in base.columns if c.name in arrays]
    rng = np.random.default_rng(0)
    extra = [  # the real file's other columns (values plausible, unused by cmcat)
        fits.Column("MJD", "J", array=np.full(n, 51075)), fits.Column("TAI", "D", array=np.full(n, 4.4e9)),
        fits.Column("PHOTO_STATUS", "J", array=np.zeros(n)), fits.Column("XBIN", "J", array=np.ones(n)),
        fits.Column("YBIN", "J", array=np.ones(n)), fits.Column("SUN_ANGLE", "E", array=np.full(n, -30.0)),
        fits.Column("PSF_FWHM", "5E", array=rng.uniform(1.0, 1.8, (n, 5))),
        fits.Column("SKYFLUX", "5E", array=rng.uniform(1.0, 20.0, (n, 5))),
        fits.Column("IMAGE_STATUS", "5J", array=np.zeros((n, 5))), fits.Column("PSP_STATUS", "5J", array=np.zeros((n, 5))),
        fits.Column("CALIB_STATUS", "5J", array=np.ones((n, 5))), fits.Column("AIRMASS", "5E", array=np.full((n, 5), 1.2)),
    ]
    buf = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols[:4] + extra[:2] + cols[4:] + extra[2:])]).writeto(buf)
    return buf.getvalue()
