"""SDSS corrected frames: path naming, decoding, and which frames cover a position.

A corrected frame (`frame-{band}-{run:06d}-{camcol}-{field:04d}.fits.bz2`) holds in HDU 0 the
calibrated image in nanomaggies per pixel (2048 x 1489, 0.396"/px) with a TAN WCS. Which frames
may cover a position comes from the `fields` table (SDSS window_flist rows, hpx29-indexed): a
cone query around the field centres, then a (mu, nu) great-circle bound check when window_flist
columns are present. The exact WCS footprint check happens when the frame is read (builder).
"""

from __future__ import annotations

import bz2
import io
import re
import warnings
from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np
import pandas as pd
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning
from sqlalchemy import Engine, select

from clustermass import sky
from clustermass.db.models import Field
from clustermass.db.queries import hpx_ranges_clause
from clustermass.errors import ImageError

FRAMES_PREFIX = "dr12/boss/photoObj/frames"
DEFAULT_RERUN = "301"
#: Angular radius (deg) around a field centre that contains the whole frame (half-diagonal 0.139 deg).
FRAME_RADIUS_DEG = 0.15
_NAME = re.compile(r"frame-([ugriz])-(\d{6})-(\d)-(\d{4})\.fits\.bz2$")


def frame_relpath(band: str, run: int, camcol: int, field: int, rerun: str = DEFAULT_RERUN) -> str:
    """Path of a corrected frame relative to the SAS base URL (or a local mirror's root)."""
    return (
        f"{FRAMES_PREFIX}/{rerun}/{int(run)}/{int(camcol)}/"
        f"frame-{band}-{int(run):06d}-{int(camcol)}-{int(field):04d}.fits.bz2"
    )


def parse_frame_name(name: str) -> tuple[str, int, int, int]:
    """(band, run, camcol, field) of a frame file name or path."""
    m = _NAME.search(name)
    if m is None:
        raise ValueError(f"{name!r} is not an SDSS frame name (frame-BAND-RUN6-CAMCOL-FIELD4.fits.bz2)")
    return m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4))


@dataclass
class Frame:
    """A decoded corrected frame: image (nanomaggies per pixel, native float32) and its WCS."""

    name: str
    data: np.ndarray  # (ny, nx) float32
    wcs: WCS


def decode_frame(raw: bytes, name: str) -> Frame:
    """Decompress and parse a `.fits.bz2` frame; ImageError names `name` if it is truncated or corrupt."""
    try:
        payload = bz2.decompress(raw)
    except (OSError, ValueError, EOFError) as exc:
        raise ImageError(f"{name}: corrupt or truncated bz2 data ({exc})") from None
    try:
        with fits.open(io.BytesIO(payload), memmap=False, lazy_load_hdus=True) as hdul:
            hdu = hdul[0]
            shape = (int(hdu.header.get("NAXIS2", 0)), int(hdu.header.get("NAXIS1", 0)))
            data = hdu.data
            if data is None or data.shape != shape or min(shape) == 0:
                raise ImageError(f"{name}: HDU 0 has no image of the size its header states {shape}")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FITSFixedWarning)
                wcs = WCS(hdu.header, naxis=2)
            image = np.asarray(data, dtype=np.float32)
    except ImageError:
        raise
    except Exception as exc:  # astropy raises many kinds on broken FITS
        raise ImageError(f"{name}: not a valid FITS frame ({type(exc).__name__}: {exc})") from None
    if not wcs.has_celestial or "TAN" not in wcs.wcs.ctype[0]:
        raise ImageError(f"{name}: HDU 0 has no TAN WCS (CTYPE {list(wcs.wcs.ctype)})")
    return Frame(name=name, data=image, wcs=wcs)


class FrameReader(Protocol):
    """Reads a frame given its path relative to the SAS base; raises ImageError when it cannot."""

    def read(self, relpath: str) -> Frame:
        ...


def radec_to_munu(ra: np.ndarray, dec: np.ndarray, node: float, incl: float) -> tuple[np.ndarray, np.ndarray]:
    """SDSS great-circle coordinates (mu, nu) in deg of (ra, dec) for a stripe's node and inclination."""
    ra_r, dec_r = np.radians(ra) - np.radians(node), np.radians(dec)
    inc = np.radians(incl)
    x = np.cos(dec_r) * np.cos(ra_r)
    y = np.cos(dec_r) * np.sin(ra_r)
    z = np.sin(dec_r)
    y2 = y * np.cos(inc) + z * np.sin(inc)
    z2 = -y * np.sin(inc) + z * np.cos(inc)
    mu = (np.degrees(np.arctan2(y2, x)) + node) % 360.0
    nu = np.degrees(np.arcsin(np.clip(z2, -1, 1)))
    return mu, nu


def _munu_bounds(extra: dict) -> tuple[float, float, float, float, float, float] | None:
    """(node, incl, mu_start, mu_end, nu_start, nu_end) from window_flist columns, if all present."""
    low = {str(k).lower(): v for k, v in (extra or {}).items()}
    keys = ("node", "incl", "mu_start", "mu_end", "nu_start", "nu_end")
    try:
        return tuple(float(low[k]) for k in keys)  # type: ignore[return-value]
    except (KeyError, TypeError, ValueError):
        return None


def may_cover(extra: dict, ra: float, dec: float, pad_deg: float) -> bool:
    """False only when window_flist (mu, nu) bounds prove the field misses a `pad_deg` circle at (ra, dec)."""
    bounds = _munu_bounds(extra)
    if bounds is None:
        return True
    node, incl, mu0, mu1, nu0, nu1 = bounds
    mu, nu = radec_to_munu(np.array([ra]), np.array([dec]), node, incl)
    dmu = (float(mu[0]) - mu0 + 180.0) % 360.0 - 180.0  # mu relative to the field start, wrapped
    span = (mu1 - mu0) % 360.0
    return -pad_deg <= dmu <= span + pad_deg and nu0 - pad_deg <= float(nu[0]) <= nu1 + pad_deg


def require_field_index(engine: Engine) -> None:
    """ImageError when the `fields` table is empty: no frame of any cluster could be located."""
    with engine.connect() as conn:
        if conn.execute(select(Field.id).limit(1)).first() is None:
            raise ImageError(
                "the `fields` table (SDSS field index) is empty, so no frame can be located for any cluster: "
                "load it with `cmcat ingest fields --sas` (or `cmcat ingest fields window_flist.fits`)"
            )


class DbFieldIndex:
    """Candidate frames for positions from the `fields` table."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def candidates(self, ra: Sequence[float], dec: Sequence[float], radius_deg: Sequence[float]) -> list[pd.DataFrame]:
        """For each position, the fields (run, rerun, camcol, field, ra, dec, score, extra) whose frame may overlap a circle of `radius_deg`."""
        ra, dec, radius = (np.asarray(a, dtype=float) for a in (ra, dec, radius_deg))
        if ra.size == 0:
            return []
        ranges: list[tuple[int, int]] = []
        for r, d, rad in zip(ra, dec, radius):
            ranges.extend(sky.cone_ranges(float(r), float(d), float(rad) + FRAME_RADIUS_DEG))
        cols = [Field.run, Field.rerun, Field.camcol, Field.field, Field.ra, Field.dec, Field.score, Field.extra]
        stmt = select(*cols).where(hpx_ranges_clause(Field.hpx29, _merge(ranges)))
        with self.engine.connect() as conn:
            fields = pd.DataFrame(conn.execute(stmt).all(), columns=[c.key for c in cols])
        out = []
        for r, d, rad in zip(ra, dec, radius):
            if fields.empty:
                out.append(fields)
                continue
            sep = sky.angular_separation(r, d, fields["ra"].to_numpy(), fields["dec"].to_numpy())
            near = fields[sep <= rad + FRAME_RADIUS_DEG]
            keep = np.array([may_cover(e, r, d, rad) for e in near["extra"]], dtype=bool)
            out.append(near[keep].sort_values(["run", "camcol", "field"]).reset_index(drop=True))
        return out


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, disjoint union of inclusive integer ranges."""
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return merged
