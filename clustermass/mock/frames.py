"""SDSS-format corrected frames of the mock sky, in the SAS folder layout, plus a window_flist.

The sky is tiled by mock fields: strips of constant Dec (one per (run, camcol)), each cut along
RA into fields of 2048 x 1489 pixels at 0.396"/pix with the real frames' orientation (columns
along Dec, rows along RA: CD1_2 = CD2_1 = +0.396"). Consecutive fields overlap by 128 rows and
strips by 148 columns, like SDSS. The stripes are great circles with NODE = 95, INCL = 0, so
window_flist's (mu, nu) are (RA, Dec).

A frame has the real HDU structure: 0 the image (nanomaggies, sky subtracted, TAN WCS, header
keywords of a DR12 frame), 1 the calibration vector (nanomaggies per count, per column), 2 the
sky model (ALLSKY counts on a 256 x 192 grid, XINTERP, YINTERP), 3 the astrometric
transformation row (asTrans columns). Its pixels are the same galaxies and stars as the direct
cutouts (galaxies.py), drawn with the band's PSF, plus noise from (seed, run, camcol, field, band).
"""

from __future__ import annotations

import bz2
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from astropy.io import fits

from clustermass.images.atomic import atomic_write
from clustermass.images.base import BANDS, SDSS_PIXEL_ARCSEC
from clustermass.images.frames import frame_relpath
from clustermass.mock.galaxies import Sources
from clustermass.mock.instrument import NMGY_PER_COUNT, Conditions, field_conditions, frame_noise, sky_nmgy_per_pixel
from clustermass.mock.render import gnomonic, render_stamps, source_sigma

NX, NY = 2048, 1489
RERUN = "301"
NODE, INCL = 95.0, 0.0
SCALE_DEG = SDSS_PIXEL_ARCSEC / 3600.0
STEP_DEC = (NX - 148) * SCALE_DEG  # strip spacing in Dec
STEP_RA = (NY - 128) * SCALE_DEG  # field spacing along a strip (great-circle degrees)
FIRST_FIELD = 11
FIRST_RUN = 4000
MANTISSA_BITS = 10  # FLOATCOMPRESS: floats truncated at 10 binary digits, as in the real frames


@dataclass(frozen=True)
class FieldSpec:
    """One mock field: ids and the TAN centre (deg)."""

    run: int
    camcol: int
    field: int
    ra: float
    dec: float
    strip: int
    index: int

    def relpath(self, band: str) -> str:
        """The frame's path under a SAS root."""
        return frame_relpath(band, self.run, self.camcol, self.field, RERUN)

    def conditions(self, seed: int) -> Conditions:
        """This field's seeing and sky under render seed `seed`."""
        return field_conditions(seed, self.run, self.camcol, self.field)


def _strip_geometry(k: int) -> tuple[float, int]:
    """(Dec centre, number of fields around the sky) of strip k."""
    dec_c = -90.0 + (k + 0.5) * STEP_DEC
    n = max(1, int(np.ceil(360.0 * np.cos(np.radians(dec_c)) / STEP_RA)))
    return dec_c, n


def field_spec(k: int, j: int) -> FieldSpec:
    dec_c, n = _strip_geometry(k)
    j = j % n
    return FieldSpec(FIRST_RUN + k // 6, k % 6 + 1, FIRST_FIELD + j, (j + 0.5) * 360.0 / n, dec_c, k, j)


def pixel_coords(spec: FieldSpec, ra: np.ndarray, dec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """0-based (x, y) frame pixel of positions: x along Dec (columns), y along RA (rows)."""
    xi, eta = gnomonic(ra, dec, spec.ra, spec.dec)
    return (NX / 2 - 0.5) + eta / SCALE_DEG, (NY - 1) / 2 + xi / SCALE_DEG


def fields_covering(ra: float, dec: float, radius_deg: float) -> list[FieldSpec]:
    """Fields whose frame overlaps a box of half-size radius_deg around (ra, dec)."""
    out = []
    k0 = int(np.floor((dec - radius_deg - STEP_DEC + 90.0) / STEP_DEC))
    k1 = int(np.floor((dec + radius_deg + STEP_DEC + 90.0) / STEP_DEC))
    for k in range(max(k0, 0), k1 + 1):
        dec_c, n = _strip_geometry(k)
        if dec_c > 90:
            break
        width = 360.0 / n
        j_c = int(np.floor(ra / width))
        span = int(np.ceil((radius_deg / max(np.cos(np.radians(min(abs(dec) + radius_deg, 89.0))), 1e-3)) / width)) + 1
        for j in range(j_c - span, j_c + span + 1):
            spec = field_spec(k, j)
            x, y = pixel_coords(spec, np.array([ra]), np.array([dec]))
            pad = radius_deg / SCALE_DEG
            if -pad <= x[0] <= NX - 1 + pad and -pad <= y[0] <= NY - 1 + pad:
                out.append(spec)
    return out


def field_at(ra: float, dec: float) -> FieldSpec:
    """The field whose frame holds (ra, dec); in an overlap, the one whose centre is nearest."""
    best, best_d = None, np.inf
    for spec in fields_covering(ra, dec, 0.0):
        x, y = pixel_coords(spec, np.array([ra]), np.array([dec]))
        d = float(np.hypot(x[0] - (NX - 1) / 2, y[0] - (NY - 1) / 2))
        if 0 <= x[0] <= NX - 1 and 0 <= y[0] <= NY - 1 and d < best_d:
            best, best_d = spec, d
    if best is None:  # not reached for |dec| < 90: strips tile the sky
        raise ValueError(f"no mock field holds ({ra}, {dec})")
    return best


def frame_header(spec: FieldSpec, band: str) -> fits.Header:
    """Primary header with the keywords of a real DR12 corrected frame."""
    b = BANDS.index(band)
    h = fits.Header()
    cards = [
        ("TAI", 4.4e9 + spec.run * 100.0 + spec.index * 36.0, "1st row - Number of seconds since Nov 17 1858"),
        ("RA", spec.ra, "1st row - RA of telescope boresight (deg)"),
        ("DEC", spec.dec, "1st row - Dec of telescope boresight (deg)"),
        ("SPA", 90.0, "1st row - Camera col position angle (deg)"),
        ("ORIGIN", "SDSS", ""), ("TELESCOP", "2.5m", ""), ("TIMESYS", "TAI", ""),
        ("RUN", spec.run, "Run number"), ("FRAME", spec.field, "Frame sequence number within the run"),
        ("CCDLOC", 10 * (b + 1) + spec.camcol, "Survey location of CCD (e.g., rowCol)"),
        ("STRIPE", spec.strip, "Stripe index number (mock strip)"), ("STRIP", "N", "Strip in the stripe"),
        ("FLAVOR", "science", "Flavor of this run"), ("SYS_SCN", "mean", "System of the scan great circle"),
        ("EQNX_SCN", 2000.0, "Equinox of the scan great circle. (years)"),
        ("NODE", NODE, "RA of the great circle's ascending node (deg)"),
        ("INCL", INCL, "Great circle's inclination wrt cel. eq. (deg)"),
        ("FIELD", spec.field, "Field sequence number within the run"),
        ("OBJECT", f"mock strip {spec.strip}", ""), ("EXPTIME", "53.907456", "Exposure time (seconds)"),
        ("SYSTEM", "FK5", ""), ("CCDMODE", "DRIFT", "'STARING' or 'DRIFT'"),
        ("COLBIN", 1, ""), ("ROWBIN", 1, ""), ("CAMROW", [1, 5, 3, 2, 4][b], "Row in the imaging camera"),
        ("BADLINES", 0, "Number of bad lines in frame"), ("EQUINOX", 2000.0, ""), ("SOFTBIAS", 1000, ""),
        ("BUNIT", "nanomaggy", "1 nanomaggy = 3.631e-6 Jy"), ("FILTER", band, "filter used"),
        ("CAMCOL", spec.camcol, "column in the imaging camera"), ("VERSION", "mock", ""),
        ("RADECSYS", "ICRS", "International Celestial Ref. System"),
        ("CTYPE1", "RA---TAN", "Coordinate type"), ("CTYPE2", "DEC--TAN", "Coordinate type"),
        ("CUNIT1", "deg", "Units"), ("CUNIT2", "deg", "Units"),
        ("CRPIX1", NX / 2 + 0.5, "X of reference pixel"), ("CRPIX2", (NY + 1) / 2, "Y of reference pixel"),
        ("CRVAL1", spec.ra, "RA of reference pixel (deg)"), ("CRVAL2", spec.dec, "Dec of reference pixel (deg)"),
        ("CD1_1", 0.0, "RA deg per column pixel"), ("CD1_2", SCALE_DEG, "RA deg per row pixel"),
        ("CD2_1", SCALE_DEG, "Dec deg per column pixel"), ("CD2_2", 0.0, "Dec deg per row pixel"),
        ("NMGY", float(NMGY_PER_COUNT[b]), "Calibration factor [nMgy per count]"),
        ("NMGYIVAR", 0.07, "Calibration factor inverse variance"), ("RERUN", RERUN, "rerun"),
    ]
    for key, value, comment in cards:
        h[key] = (value, comment)
    h["COMMENT"] = "Floats truncated at 10 binary digits with FLOATCOMPRESS"
    h["COMMENT"] = "cmcat mock frame: simulated sky, not SDSS data"
    return h


def _astrans(spec: FieldSpec, band: str) -> fits.BinTableHDU:
    """The asTrans row: (mu, nu) = (A + B row + C col, D + E row + F col) in deg (INCL = 0: mu = RA)."""
    cos_d = np.cos(np.radians(spec.dec))
    ra0 = spec.ra - (NY - 1) / 2 * SCALE_DEG / cos_d
    dec0 = spec.dec - (NX / 2 - 0.5) * SCALE_DEG
    cols = [
        fits.Column("RUN", "J", array=[spec.run]), fits.Column("RERUN", "3A", array=[RERUN]),
        fits.Column("CAMCOL", "J", array=[spec.camcol]), fits.Column("FILTER", "A", array=[band]),
        fits.Column("NODE", "D", array=[NODE]), fits.Column("INCL", "D", array=[INCL]),
        fits.Column("NAXIS", "2J", array=[[NX, NY]]), fits.Column("FIELD", "J", array=[spec.field]),
        fits.Column("A", "D", array=[ra0]), fits.Column("B", "D", array=[SCALE_DEG / cos_d]),
        fits.Column("C", "D", array=[0.0]), fits.Column("D", "D", array=[dec0]),
        fits.Column("E", "D", array=[0.0]), fits.Column("F", "D", array=[SCALE_DEG]),
    ]
    cols += [fits.Column(n, "D", array=[0.0]) for n in
             ("DROW0", "DROW1", "DROW2", "DROW3", "DCOL0", "DCOL1", "DCOL2", "DCOL3")]
    cols += [fits.Column(n, "D", array=[v]) for n, v in
             (("CSROW", 0.0), ("CSCOL", 0.0), ("CCROW", 0.0), ("CCCOL", 0.0), ("RICUT", 1.5),
              ("MJD", 52000.0 + spec.run / 10.0), ("AIRMASS", 1.2))]
    cols += [fits.Column("MUERR", "E", array=[0.03]), fits.Column("NUERR", "E", array=[0.03])]
    return fits.BinTableHDU.from_columns(cols)


def _sky_hdu(band: str, cond: Conditions) -> fits.BinTableHDU:
    b = BANDS.index(band)
    allsky = np.full((1, 192, 256), sky_nmgy_per_pixel(cond)[b] / NMGY_PER_COUNT[b], np.float32)
    xi = ((np.arange(NX) + 0.5) / 8 - 0.5).astype(np.float32)[None]
    yi = ((np.arange(NY) + 0.5) / 8 - 0.5).astype(np.float32)[None]
    hdu = fits.BinTableHDU.from_columns([
        fits.Column("ALLSKY", "49152E", dim="(256, 192)", array=allsky),
        fits.Column("XINTERP", "2048E", array=xi), fits.Column("YINTERP", "1489E", array=yi),
    ])
    return hdu


def truncate_mantissa(img: np.ndarray, bits: int = MANTISSA_BITS) -> np.ndarray:
    """float32 with only `bits` mantissa bits kept (what SDSS's FLOATCOMPRESS does; bz2 then compresses)."""
    raw = np.ascontiguousarray(img, dtype=np.float32).view(np.uint32)
    mask = np.uint32((0xFFFFFFFF << (23 - bits)) & 0xFFFFFFFF)
    return (raw & mask).view(np.float32)


def render_frame(spec: FieldSpec, band: str, sources: Sources, seed: int, noise: bool = True) -> np.ndarray:
    """(1489, 2048) float32 image of `sources` in nanomaggies (sky subtracted) with the band's noise."""
    b = BANDS.index(band)
    cond = spec.conditions(seed)
    x, y = pixel_coords(spec, sources.ra, sources.dec)
    sigma = source_sigma(sources.r_e, b, cond.psf_fwhm) / SDSS_PIXEL_ARCSEC
    keep = (x > -4 * sigma - 2) & (x < NX + 4 * sigma + 2) & (y > -4 * sigma - 2) & (y < NY + 4 * sigma + 2)
    img = render_stamps(x[keep], y[keep], sigma[keep], sources.flux[keep, b], (NY, NX))
    if noise:
        rng = np.random.default_rng([seed, 5, spec.run, spec.camcol, spec.field, b])
        img += rng.standard_normal((NY, NX)) * frame_noise(cond)[b]
    return truncate_mantissa(img)


def frame_bytes(spec: FieldSpec, band: str, image: np.ndarray, seed: int) -> bytes:
    """The bz2-compressed FITS file of a frame (its sky HDU from the field's conditions under `seed`)."""
    b = BANDS.index(band)
    calib = np.full(NX, NMGY_PER_COUNT[b], np.float32)
    hdul = fits.HDUList([fits.PrimaryHDU(image, frame_header(spec, band)), fits.ImageHDU(calib),
                         _sky_hdu(band, spec.conditions(seed)), _astrans(spec, band)])
    buf = io.BytesIO()
    hdul.writeto(buf)
    return bz2.compress(buf.getvalue(), 9)


def window_flist(specs: list[FieldSpec], seed: int) -> fits.BinTableHDU:
    """window_flist rows (RUN, RERUN, CAMCOL, FIELD, RA, DEC, SCORE, MU/NU bounds, INCL, NODE, and per
    band PSF_FWHM in arcsec and SKYFLUX in nanomaggies/arcsec^2) with the fields' conditions under `seed`."""
    n = len(specs)
    cos_d = np.cos(np.radians([s.dec for s in specs]))
    half_ra = (NY / 2) * SCALE_DEG / np.maximum(cos_d, 1e-3)
    half_dec = (NX / 2) * SCALE_DEG
    ra = np.array([s.ra for s in specs])
    dec = np.array([s.dec for s in specs])
    cond = [s.conditions(seed) for s in specs]
    cols = [
        fits.Column("RUN", "J", array=[s.run for s in specs]),
        fits.Column("RERUN", "3A", array=[RERUN] * n),
        fits.Column("CAMCOL", "J", array=[s.camcol for s in specs]),
        fits.Column("FIELD", "J", array=[s.field for s in specs]),
        fits.Column("RA", "D", array=ra), fits.Column("DEC", "D", array=dec),
        fits.Column("SCORE", "E", array=np.array([c.score for c in cond])),
        fits.Column("MU_START", "D", array=np.mod(ra - half_ra, 360.0)),
        fits.Column("MU_END", "D", array=np.mod(ra + half_ra, 360.0)),
        fits.Column("NU_START", "D", array=dec - half_dec), fits.Column("NU_END", "D", array=dec + half_dec),
        fits.Column("INCL", "D", array=np.full(n, INCL)), fits.Column("NODE", "D", array=np.full(n, NODE)),
        fits.Column("PSF_FWHM", "5E", array=np.array([c.psf_fwhm for c in cond]).reshape(n, 5)),
        fits.Column("SKYFLUX", "5E", array=np.array([c.sky_flux for c in cond]).reshape(n, 5)),
    ]
    return fits.BinTableHDU.from_columns(cols, name="WINDOW_FLIST")


FRAME_HALF_DIAG_DEG = 0.5 * np.hypot(NX, NY) * SCALE_DEG


def plan_frames(clusters: pd.DataFrame, aperture_mpc: float) -> list[FieldSpec]:
    """Fields that a cutout of `aperture_mpc` (physical side) around any of `clusters` (ra, dec, z) touches."""
    from clustermass.cosmology import arcsec_per_mpc

    half = 0.5 * aperture_mpc * arcsec_per_mpc(clusters.z.to_numpy(float)) / 3600.0
    seen: dict[tuple[int, int], FieldSpec] = {}
    for ra, dec, h in zip(clusters.ra.to_numpy(float), clusters.dec.to_numpy(float), half):
        for spec in fields_covering(ra, dec, float(h)):
            seen.setdefault((spec.strip, spec.index), spec)
    return [seen[k] for k in sorted(seen)]


def write_frame(scene, spec: FieldSpec, bands: str, root: Path, noise: bool = True) -> list[Path]:
    """Render and write the frames of one field in `bands` under the SAS layout at `root`."""
    sources = scene.sources(spec.ra, spec.dec, FRAME_HALF_DIAG_DEG + 0.01)
    paths = []
    for band in bands:
        path = root / spec.relpath(band)
        atomic_write(path, frame_bytes(spec, band, render_frame(spec, band, sources, scene.seed, noise), scene.seed))
        paths.append(path)
    return paths


def write_window_flist(specs: list[FieldSpec], root: Path, seed: int) -> Path:
    """window_flist.fits at `root` listing `specs` (conditions under render seed `seed`)."""
    buf = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), window_flist(specs, seed)]).writeto(buf)
    path = root / "window_flist.fits"
    atomic_write(path, buf.getvalue())
    return path
