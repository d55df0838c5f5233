"""Cutout builder on real SDSS frames: placement, flux conservation, mosaics, partial coverage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clustermass.images.base import CutoutGrid, cutout_wcs
from clustermass.images.builder import build_cutouts, project_frame
from clustermass.images.frames import DbFieldIndex, decode_frame, frame_relpath, may_cover, radec_to_munu
from clustermass.images.local import LocalFrames, LocalSource
from clustermass.images.store import classify
from framekit import add_fields, frame_wcs, mirror_real, read_header, write_frame

RMJ1225 = (186.30556, -0.44375, 0.285)  # in frame-g-000756-2-0471 at pixel (1762, 416)
RMJ2330 = (352.536667, -1.827528, 0.433)  # ~63 px beyond x=0 of frame-g-007778-5-0267
GRID = CutoutGrid()  # 64 px over 1.5 Mpc


@pytest.fixture(scope="module")
def frame756(real_data):
    raw = (real_data / "sdss_frames/stellar_classification/frame-g-000756-2-0471.fits.bz2").read_bytes()
    return decode_frame(raw, "frame-g-000756-2-0471")


def _direct_flux(frame, out_wcs, size, box):
    """Flux per cutout pixel by mapping every frame pixel centre of `box` exactly through both WCSs."""
    (y0, y1), (x0, x1) = box
    gy, gx = np.mgrid[y0:y1, x0:x1]
    px, py = out_wcs.world_to_pixel_values(*frame.wcs.pixel_to_world_values(gx.ravel(), gy.ravel()))
    ix, iy = np.floor(px + 0.5).astype(int), np.floor(py + 0.5).astype(int)
    ok = (ix >= 0) & (ix < size) & (iy >= 0) & (iy < size)
    vals = frame.data[gy.ravel()[ok], gx.ravel()[ok]].astype(np.float64)
    return np.bincount(iy[ok] * size + ix[ok], weights=vals, minlength=size * size).reshape(size, size)


def test_binning_conserves_flux_and_agrees_with_exact(frame756):
    ra, dec = (float(v) for v in frame756.wcs.pixel_to_world_values(1000, 700))  # well inside the frame
    scale = GRID.pixel_scale(0.285)
    w = cutout_wcs(ra, dec, 64, scale)
    binned = project_frame(frame756, w, 64, "bin")
    exact = project_frame(frame756, w, 64, "exact")
    direct = _direct_flux(frame756, w, 64, ((200, 1250), (450, 1550)))
    assert np.isfinite(binned).all() and np.isfinite(exact).all()
    # Identical up to a few frame pixels on cutout-pixel boundaries (affine vs exact map, ~1e-6 px).
    assert binned.sum() == pytest.approx(direct.sum(), rel=1e-5)
    assert np.mean(np.isclose(binned, direct, rtol=1e-4, atol=1e-3)) > 0.99
    assert exact.sum() == pytest.approx(direct.sum(), rel=2e-3)
    # Per pixel, binning differs from exact polygon overlap by a small part of the pixel scatter.
    assert np.sqrt(np.mean((binned - exact) ** 2)) < 0.05 * np.std(exact)


def test_no_overlap_gives_none(frame756):
    w = cutout_wcs(10.0, 10.0, 64, 5.0)
    assert project_frame(frame756, w, 64) is None
    with pytest.raises(ValueError):
        project_frame(frame756, w, 64, "nearest")


def test_rmj1225_at_cutout_centre_real_frame(db, real_data, tmp_path, frame756):
    # The frame WCS puts the known pixel (1762, 416) at the catalogue position (within ~1").
    ra, dec = (float(v) for v in frame756.wcs.pixel_to_world_values(1762, 416))
    scale = GRID.pixel_scale(RMJ1225[2])
    w = cutout_wcs(RMJ1225[0], RMJ1225[1], 64, scale)
    cx, cy = w.world_to_pixel_values(ra, dec)
    assert abs(cx - 31.5) < 0.5 and abs(cy - 31.5) < 0.5

    # A point source injected at that pixel of the real frame lands in the central 2x2 pixels, flux intact.
    header = read_header(real_data / "sdss_frames/stellar_classification/frame-g-000756-2-0471.fits.bz2")
    data = np.zeros((1489, 2048), dtype=np.float32)
    data[416, 1762] = 1000.0
    write_frame(tmp_path, "g", 756, 2, 471, data, header)
    add_fields(db, [(756, 2, 471, frame_wcs(header), data.shape)])
    clusters = pd.DataFrame({"id": [1], "ra": [RMJ1225[0]], "dec": [RMJ1225[1]], "z": [RMJ1225[2]]})
    (cut,) = LocalSource(tmp_path, db).cutouts(clusters, GRID, "g")
    img = cut.data[0]
    assert np.nansum(img) == pytest.approx(1000.0)
    iy, ix = np.unravel_index(np.nanargmax(img), img.shape)
    assert iy in (31, 32) and ix in (31, 32)
    assert cut.meta["frames"] and cut.pixel_scale == pytest.approx(scale)


def test_real_frames_partial_coverage_recorded(db, real_data, tmp_path):
    keys = mirror_real(real_data, tmp_path)
    add_fields(
        db,
        [(run, camcol, field, frame_wcs(read_header(tmp_path / frame_relpath(b, run, camcol, field))), (1489, 2048))
         for b, run, camcol, field in keys],
    )
    clusters = pd.DataFrame(
        {"id": [1, 2, 3], "ra": [RMJ1225[0], RMJ2330[0], 20.0], "dec": [RMJ1225[1], RMJ2330[1], 20.0],
         "z": [RMJ1225[2], RMJ2330[2], 0.3]}
    )
    reads = []

    class Counting(LocalFrames):
        def read(self, relpath):
            reads.append(relpath)
            return super().read(relpath)

    cuts = build_cutouts(clusters, GRID, "g", DbFieldIndex(db), Counting(tmp_path))
    assert sorted(reads) == sorted(set(reads)) and len(reads) == 2  # each frame read once
    c1225, c2330, nowhere = cuts
    # RMJ1225 sits 416 px from the frame's y=0 edge, the cutout half-width is ~440 frame px: nearly covered.
    assert 0.7 < c1225.covered_fraction < 1.0 and classify(c1225)[0] == "partial"
    img = c1225.data[0]
    assert np.isfinite(img[31:33, 31:33]).all() and np.nanstd(img) > 0
    # RMJ2330: beyond the x=0 edge, so only part of the cutout has data; the rest is NaN, never zeros.
    assert 0.2 < c2330.covered_fraction < 0.6
    status, note = classify(c2330)
    assert status == "partial" and "covered" in note
    img = c2330.data[0]
    assert np.isnan(img[32, 32])  # the cluster centre itself lies off the frame
    assert np.isfinite(img).any() and np.all(img[np.isfinite(img)] != 0)
    # No frame anywhere near: failed with a reason, all NaN.
    assert nowhere.covered_fraction == 0 and np.isnan(nowhere.data).all()
    assert classify(nowhere)[0] == "failed" and "no frame" in classify(nowhere)[1]


def test_mosaic_across_frame_edge_matches_single_frame(db, real_data, tmp_path, frame756):
    """Two overlapping frames cut from one real frame mosaic back to the single-frame cutout."""
    header = read_header(real_data / "sdss_frames/stellar_classification/frame-g-000756-2-0471.fits.bz2")
    rows, cols_left, cols_right = slice(200, 1200), slice(520, 1100), slice(900, 1480)  # kept small: fast bz2
    left, right = frame756.data[rows, cols_left], frame756.data[rows, cols_right]
    h_left = frame756.wcs.slice((rows, cols_left)).to_header()
    h_right = frame756.wcs.slice((rows, cols_right)).to_header()
    for h in (h_left, h_right):
        for key in ("CD1_1", "CD1_2", "CD2_1", "CD2_2"):
            h[key] = header[key]
        for key in ("PC1_1", "PC1_2", "PC2_1", "PC2_2", "CDELT1", "CDELT2"):
            h.remove(key, ignore_missing=True)
    write_frame(tmp_path, "g", 756, 2, 1, left, h_left)
    write_frame(tmp_path, "g", 756, 2, 2, right, h_right)
    add_fields(db, [(756, 2, 1, frame_wcs(h_left), left.shape), (756, 2, 2, frame_wcs(h_right), right.shape)])
    ra, dec = (float(v) for v in frame756.wcs.pixel_to_world_values(1000, 700))  # on the seam
    clusters = pd.DataFrame({"id": [7], "ra": [ra], "dec": [dec], "z": [0.285]})
    (cut,) = LocalSource(tmp_path, db).cutouts(clusters, GRID, "g")
    assert cut.covered_fraction == 1.0 and len(cut.meta["frames"]) == 2
    single = project_frame(frame756, cutout_wcs(ra, dec, 64, GRID.pixel_scale(0.285)), 64)
    np.testing.assert_allclose(cut.data[0], single, rtol=2e-3, atol=0.05)


def test_munu_prefilter():
    # Equatorial stripe (node 95, incl 0): (mu, nu) = (ra, dec).
    mu, nu = radec_to_munu(np.array([186.3]), np.array([-0.44]), 95.0, 0.0)
    assert mu[0] == pytest.approx(186.3) and nu[0] == pytest.approx(-0.44)
    # Inclined stripe: a point on the great circle has nu = 0.
    mu, nu = radec_to_munu(np.array([95.0 + 90.0]), np.array([30.0]), 95.0, 30.0)
    assert nu[0] == pytest.approx(0.0, abs=1e-9) and mu[0] == pytest.approx(185.0)
    field = {"MU_START": 186.0, "MU_END": 186.15, "NU_START": -0.6, "NU_END": -0.4, "NODE": 95.0, "INCL": 0.0}
    assert may_cover(field, 186.1, -0.5, 0.01)
    assert may_cover(field, 186.16, -0.5, 0.02)  # just outside, but the cutout reaches in
    assert not may_cover(field, 186.3, -0.5, 0.02)
    assert not may_cover(field, 186.1, -0.3, 0.02)
    assert may_cover({}, 0.0, 0.0, 0.01)  # without window_flist bounds, the cone decides


class _Fields:
    """A field index over fixed rows (run, camcol, field, ra, dec, score)."""

    def __init__(self, rows):
        self.rows = pd.DataFrame(rows, columns=["run", "camcol", "field", "ra", "dec", "score"]).assign(rerun="301", extra=[{}] * len(rows))

    def candidates(self, ra, dec, radius_deg):
        return [self.rows for _ in ra]


class _Frames:
    """Frames made in memory: constant `value` per frame pixel on a 0.396"/px grid; logs the reads."""

    def __init__(self, specs):
        self.specs, self.reads = specs, []

    def read(self, relpath):
        from clustermass.images.frames import Frame, parse_frame_name

        self.reads.append(relpath)
        _, run, camcol, field = parse_frame_name(relpath)
        ra, dec, npix, value = self.specs[(run, field)]
        return Frame(relpath, np.full((npix, npix), value, dtype=np.float32), cutout_wcs(ra, dec, npix, 0.396))


def test_overlapping_runs_one_run_per_pixel_by_score_never_averaged():
    """Run 100 (score 0.9) covers the cutout's eastern part; run 200 (score 0.6) covers all of it.
    Run 100's pixels keep its values, run 200 fills only the rest: no pixel is an average of runs."""
    ra, dec = 150.0, 2.0
    east = ra + 35.0 / 3600 / np.cos(np.radians(dec))
    specs = {(100, 11): (east, dec, 200, 1.0), (200, 21): (ra, dec, 400, 3.0)}
    grid = CutoutGrid(size=16, aperture_arcsec=60)
    per_pixel = (60 / 16 / 0.396) ** 2  # frame pixels per cutout pixel (81 to 100 of them: +-11%)
    clusters = pd.DataFrame({"id": [1], "ra": [ra], "dec": [dec], "z": [0.3]})

    frames = _Frames(specs)
    index = _Fields([(100, 3, 11, east, dec, 0.9), (200, 4, 21, ra, dec, 0.6)])
    (cut,) = build_cutouts(clusters, grid, "r", index, frames)
    level = cut.data[0] / per_pixel
    assert cut.covered_fraction == 1.0
    from_best, from_next = np.abs(level - 1.0) < 0.25, np.abs(level - 3.0) < 0.75
    assert (from_best | from_next).all()  # no pixel near 2 (the average of the runs)
    assert 0.3 < from_best.mean() < 0.8 and from_best[:, :4].all()  # east is left
    assert len(cut.meta["frames"]) == 2

    # The best run covering everything: the other run is not even read.
    frames = _Frames(specs)
    index = _Fields([(100, 3, 11, east, dec, 0.5), (200, 4, 21, ra, dec, 0.6)])
    (cut,) = build_cutouts(clusters, grid, "r", index, frames)
    assert np.allclose(cut.data[0] / per_pixel, 3.0, rtol=0.25) and frames.reads == [frame_relpath("r", 200, 4, 21)]


def test_run_ranks_best_score_first_then_run_number_unscored_last():
    from clustermass.images.builder import run_ranks

    fields = pd.DataFrame({"run": [5, 5, 7, 9, 3, 4], "score": [0.2, 0.8, 0.8, None, 0.1, None]})
    assert list(run_ranks(fields)) == [0, 0, 1, 4, 2, 3]
    assert list(run_ranks(fields.drop(columns="score"))) == [2, 2, 3, 4, 0, 1]  # no scores: by run number
