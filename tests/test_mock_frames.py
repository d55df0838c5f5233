"""Mock SDSS frames: SAS layout, real-frame structure, WCS, and agreement with the direct render."""

from __future__ import annotations

import bz2
import json
import warnings

import numpy as np
import pytest
from astropy.io import fits
from astropy.stats import sigma_clipped_stats
from astropy.wcs import WCS, FITSFixedWarning

from clustermass.images.base import CutoutGrid, cutout_wcs
from clustermass.images.builder import project_frame
from clustermass.images.local import LocalFrames
from clustermass.mock.source import MockSource
from clustermass.mock.frames import NX, NY, field_at, fields_covering, pixel_coords, write_frame
from clustermass.mock.instrument import cutout_noise, frame_noise
from clustermass.mock.population import build_universe
from clustermass.mock.scene import Scene
from clustermass.mock.writers import write_universe
from clustermass.model.truth import read_truth

REAL_FRAME = "sdss_frames/stellar_classification/frame-g-000756-2-0471.fits.bz2"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A one-cluster universe and the r frame of the field holding its centre."""
    root = tmp_path_factory.mktemp("frames")
    u = build_universe(1, seed=11, area_deg2=0.05)
    write_universe(u, root / "u", {"n": 1, "seed": 11, "area_deg2": 0.05})
    truth = read_truth(root / "u")
    cl = truth[truth.rm_id > 0].iloc[0]
    spec = field_at(cl.ra, cl.dec)  # the field whose seeing and sky the direct cutout takes
    scene = Scene(11, truth)
    paths = write_frame(scene, spec, "r", root / "sas")
    return {"root": root, "cluster": cl, "spec": spec, "paths": paths}


def _open(path):
    return fits.open(path)


def test_frame_layout_and_structure(tiny, real_data):
    spec = tiny["spec"]
    rel = f"dr12/boss/photoObj/frames/301/{spec.run}/{spec.camcol}/frame-r-{spec.run:06d}-{spec.camcol}-{spec.field:04d}.fits.bz2"
    assert (tiny["root"] / "sas" / rel).is_file()
    with _open(tiny["paths"][0]) as mock, _open(real_data / REAL_FRAME) as real:
        assert [type(h).__name__ for h in mock] == [type(h).__name__ for h in real]
        assert mock[0].data.shape == real[0].data.shape == (NY, NX)
        assert mock[0].data.dtype == real[0].data.dtype
        for key in ("BUNIT", "FILTER", "RUN", "CAMCOL", "CTYPE1", "CTYPE2", "CD1_2", "CD2_1", "NMGY", "RERUN"):
            assert key in mock[0].header, key
        assert mock[0].header["BUNIT"] == "nanomaggy"
        assert mock[2].columns.names == real[2].columns.names
        assert mock[3].columns.names == real[3].columns.names
        assert mock[1].data.shape == real[1].data.shape


def test_frame_wcs_puts_the_cluster_where_the_bcg_is(tiny):
    cl = tiny["cluster"]
    with _open(tiny["paths"][0]) as hdul:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            w = WCS(hdul[0].header)
        img = hdul[0].data
    x, y = w.world_to_pixel_values(cl.ra, cl.dec)
    xs, ys = pixel_coords(tiny["spec"], np.array([cl.ra]), np.array([cl.dec]))
    assert x == pytest.approx(xs[0], abs=1e-3) and y == pytest.approx(ys[0], abs=1e-3)
    ix, iy = int(round(float(x))), int(round(float(y)))
    box = img[max(iy - 8, 0): iy + 9, max(ix - 8, 0): ix + 9]
    assert box.sum() > 20 * frame_noise(tiny["spec"].conditions(11))[2] * np.sqrt(box.size)  # the BCG is there


def test_frames_match_the_direct_render_within_noise(tiny):
    cl = tiny["cluster"]
    grid = CutoutGrid()
    direct = MockSource(tiny["root"] / "u", noise=False).render(cl.ra, cl.dec, cl.z_phot, cl.lambda_obs, grid, "r")
    w = cutout_wcs(cl.ra, cl.dec, grid.size, direct.pixel_scale)
    frame = LocalFrames(tiny["root"] / "sas").read(tiny["spec"].relpath("r"))
    projected = project_frame(frame, w, grid.size)
    ok = np.isfinite(projected)
    assert ok.mean() > 0.3
    resid = projected[ok] - direct.data[0][ok]
    noise = cutout_noise(direct.pixel_scale, tiny["spec"].conditions(11))[2]
    assert abs(np.median(resid)) < 0.2 * noise
    robust_sd = lambda r: 1.4826 * np.median(np.abs(r - np.median(r)))  # noqa: E731 (a bright star's
    # resampled core may differ by more than the noise in a pixel or two; its flux agrees)
    assert robust_sd(resid) < 2.0 * noise
    assert projected[ok].sum() == pytest.approx(direct.data[0][ok].sum(), rel=0.05)
    # a different sky (seed) would not match
    other = MockSource(seed=99, noise=False).render(cl.ra, cl.dec, cl.z_phot, cl.lambda_obs, grid, "r")
    assert np.std(projected[ok] - other.data[0][ok]) > 3 * robust_sd(resid)


def test_frame_noise_resembles_the_real_frames(tiny, real_data):
    """The r frame carries the modelled noise, and the modelled g noise is the real g frame's."""
    with _open(tiny["paths"][0]) as mock, _open(real_data / REAL_FRAME) as real:
        _, _, mock_sd = sigma_clipped_stats(mock[0].data[::4, ::4])
        _, _, real_sd = sigma_clipped_stats(real[0].data[::4, ::4])
    assert mock_sd == pytest.approx(frame_noise(tiny["spec"].conditions(11))[2], rel=0.1)
    assert frame_noise()[1] == pytest.approx(real_sd, rel=0.3)  # at the median sky


def test_cli_frames_and_window_flist(cli, tmp_path, tiny):
    out = tmp_path / "sas"
    args = ["mock", "frames", "--universe", str(tiny["root"] / "u"), "--out", str(out), "--bands", "i",
            "--max-frames", "1", "--json"]
    first = json.loads(cli(*args).stdout)
    second = json.loads(cli(*args).stdout)
    assert first["fields_written"] == 1 and second["fields_written"] == 0 and second["fields_skipped"] == 1
    files = list(out.rglob("frame-i-*.fits.bz2"))
    assert len(files) == 1
    bz2.decompress(files[0].read_bytes())  # valid bz2
    with fits.open(out / "window_flist.fits") as hdul:
        cols = hdul[1].columns.names
        row = hdul[1].data[0]
    for col in ("RUN", "RERUN", "CAMCOL", "FIELD", "RA", "DEC", "SCORE", "MU_START", "MU_END", "NU_START",
                "NU_END", "INCL", "NODE"):
        assert col in cols
    assert files[0].name == f"frame-i-{row['RUN']:06d}-{row['CAMCOL']}-{row['FIELD']:04d}.fits.bz2"
    bad = cli("mock", "frames", "--universe", str(tiny["root"] / "u"), "--out", str(out), "--bands", "x", ok=False)
    assert bad.exit_code != 0 and "ugriz" in str(bad.exception)


def test_local_source_round_trip_through_the_fields_table(cli, db, tiny):
    """window_flist -> `cmcat ingest fields` -> LocalSource cutout == direct render within noise."""
    import pandas as pd

    from clustermass.images.local import LocalSource
    from clustermass.mock.frames import write_window_flist

    flist = write_window_flist([tiny["spec"]], tiny["root"] / "sas", 11)
    cli("ingest", "fields", str(flist))
    cl = tiny["cluster"]
    rows = pd.DataFrame({"id": [1], "ra": [cl.ra], "dec": [cl.dec], "z": [cl.z_phot], "richness": [cl.lambda_obs]})
    grid = CutoutGrid()
    local = LocalSource(tiny["root"] / "sas", db).cutouts(rows, grid, "r")[0]
    direct = MockSource(tiny["root"] / "u", noise=False).cutouts(rows, grid, "r")[0]
    ok = np.isfinite(local.data[0])
    assert local.covered_fraction > 0.3 and ok.mean() == pytest.approx(local.covered_fraction, abs=0.05)
    resid = local.data[0][ok] - direct.data[0][ok]
    robust_sd = 1.4826 * np.median(np.abs(resid - np.median(resid)))  # bright stars' resampled cores aside
    assert robust_sd < 2.0 * cutout_noise(direct.pixel_scale, tiny["spec"].conditions(11))[2]
    assert local.data[0][ok].sum() == pytest.approx(direct.data[0][ok].sum(), rel=0.05)


@pytest.mark.slow
def test_frames_are_deterministic(tiny, tmp_path):
    scene = Scene(11, read_truth(tiny["root"] / "u"))
    again = write_frame(scene, tiny["spec"], "r", tmp_path)
    assert again[0].read_bytes() == tiny["paths"][0].read_bytes()
