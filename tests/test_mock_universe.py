"""Mock universe: catalogue files, determinism, and the direct MockSource render."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from astropy.table import Table

from clustermass.images.base import BANDS, CutoutGrid
from clustermass.mock.source import MockSource
from clustermass.mock.instrument import cutout_noise
from clustermass.mock.population import build_universe
from clustermass.mock.writers import FILES, write_universe
from clustermass.model.truth import read_truth


@pytest.fixture(scope="module")
def universe_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("universe")
    u = build_universe(150, seed=7, area_deg2=10.0)
    write_universe(u, out, {"n": 150, "seed": 7, "area_deg2": 10.0})
    return out


def test_cli_universe_is_byte_identical_per_seed(cli, tmp_path):
    args = ["mock", "universe", "--n", "60", "--area", "5", "--json"]
    a = json.loads(cli(*args, "--seed", "1", "--out", str(tmp_path / "a")).stdout)
    cli(*args, "--seed", "1", "--out", str(tmp_path / "b"))
    cli(*args, "--seed", "2", "--out", str(tmp_path / "c"))
    assert a["clusters"] == 60
    for name in FILES.values():
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert (tmp_path / "a" / FILES["truth"]).read_bytes() != (tmp_path / "c" / FILES["truth"]).read_bytes()


def test_catalogue_formats(universe_dir):
    rm = Table.read(universe_dir / FILES["redmapper_fits"])
    for col in ("MEM_MATCH_ID", "RA", "DEC", "Z_LAMBDA", "Z_LAMBDA_ERR", "LAMBDA_CHISQ", "LAMBDA_CHISQ_E"):
        assert col in rm.colnames
    assert len(rm) == 150 and np.all(np.asarray(rm["LAMBDA_CHISQ"]) >= 20)
    assert np.all((np.asarray(rm["Z_LAMBDA"]) >= 0.08) & (np.asarray(rm["Z_LAMBDA"]) <= 0.55))
    short = pd.read_csv(universe_dir / FILES["redmapper_csv"])
    assert list(short.columns) == ["ID", "name", "RA", "dec", "redshift", "lambda", "r500"]
    assert short.name.str.match(r"^RMJ\d{6}\.\d[+-]\d{6}\.\d$").all()
    mcxc = pd.read_csv(universe_dir / FILES["mcxc"])
    assert {"MCXC", "RAdeg", "DEdeg", "z", "M500", "L500", "R500"} <= set(mcxc.columns)
    assert mcxc.M500.between(0.05, 50).all()  # 1e14 Msun units
    psz = Table.read(universe_dir / FILES["psz2"], hdu="PSZ2_UNION")
    assert {"NAME", "RA", "DEC", "REDSHIFT", "MSZ", "MSZ_ERR_UP", "MSZ_ERR_LOW"} <= set(psz.colnames)
    unknown = np.asarray(psz["REDSHIFT"]) == -1
    assert np.all(np.asarray(psz["MSZ"])[unknown] == 0)


def test_catalogues_match_the_real_column_layout(universe_dir, real_data):
    real = pd.read_csv(real_data / "clusterdb" / "mcxc.csv.gz", nrows=5)
    assert list(pd.read_csv(universe_dir / FILES["mcxc"]).columns) == list(real.columns)
    real_psz = Table.read(real_data / "HFI_PCCS_SZ-union_R2.08.fits", hdu="PSZ2_UNION")
    mock_psz = Table.read(universe_dir / FILES["psz2"], hdu="PSZ2_UNION")
    assert mock_psz.colnames == real_psz.colnames


def test_observed_lambda_counts_rendered_members(universe_dir):
    truth = read_truth(universe_dir)
    rm = truth[truth.rm_id > 0]
    # lambda is the bright red member count plus zero-mean background noise
    resid = rm.lambda_obs - rm.n_red
    assert abs(resid.mean()) < 1.5 and resid.std() < np.sqrt(0.1 * rm.n_red.mean() + 2.0) * 1.5
    assert np.corrcoef(np.log(rm.lambda_obs), rm.log10_m500)[0, 1] > 0.5


def test_mock_source_is_deterministic_and_matches_universe(universe_dir):
    truth = read_truth(universe_dir)
    row = truth[truth.rm_id > 0].iloc[0]
    df = pd.DataFrame({"id": [1, 2], "ra": [row.ra + 0.5 / 3600, 150.0], "dec": [row.dec, 10.0],
                       "z": [row.z_phot, 0.3], "richness": [row.lambda_obs, 40.0]})
    grid = CutoutGrid()
    a = MockSource(universe_dir, seed=7).cutouts(df, grid)
    b = MockSource(universe_dir, seed=7).cutouts(df, grid)
    c = MockSource(universe_dir, seed=8).cutouts(df, grid)
    assert a[0].meta["halo_id"] == int(row.halo_id)
    assert a[1].meta["halo_id"] is None  # synthesised from richness and z
    for x, y in zip(a, b):
        assert x.data.shape == (5, 64, 64) and x.data.dtype == np.float32
        assert x.data.tobytes() == y.data.tobytes()
    assert a[0].data.tobytes() != c[0].data.tobytes()


def test_mock_source_flux_and_noise():
    """The synthetic cluster's light is where it should be and the noise has the configured level."""
    grid = CutoutGrid(size=64, aperture_mpc=None, aperture_arcsec=256.0)
    rows = pd.DataFrame({"id": [1, 2], "ra": [200.0, 200.0], "dec": [5.0, 5.0], "z": [0.2, 0.2],
                         "richness": [120.0, 0.0]})
    noisy = MockSource(seed=3).cutouts(rows, grid)
    clean = MockSource(seed=3, noise=False).cutouts(rows, grid)
    rich, empty = clean[0].data, clean[1].data
    cluster_light = (rich - empty)[2]
    centre = cluster_light[24:40, 24:40].mean()
    ring = np.ones((64, 64), bool)
    ring[8:56, 8:56] = False
    assert centre > 5 * cluster_light[ring].mean() > 0  # members concentrate towards the centre (NFW)
    peak = np.unravel_index(np.argmax(cluster_light), cluster_light.shape)
    assert abs(peak[0] - 31.5) < 2 and abs(peak[1] - 31.5) < 2  # the BCG sits at the centre
    resid = noisy[1].data - empty
    for b in range(5):
        assert resid[b].std() == pytest.approx(cutout_noise(4.0)[b], rel=0.05), BANDS[b]


def test_field_sky_is_the_same_whichever_region_asks():
    """Field galaxies/stars are a property of the sky: overlapping regions (also across RA = 0) agree."""
    from clustermass.mock.galaxies import field_sources

    a = field_sources(5, 0.02, 1.0, 0.06)
    b = field_sources(5, 359.97, 1.02, 0.06)
    key = lambda s: set(zip(np.round(s.ra, 9), np.round(s.dec, 9)))  # noqa: E731
    both = key(a) & key(b)
    assert len(both) > 50
    assert np.any(a.ra > 359) and np.any(a.ra < 1)  # the box wraps
    ia = {k: i for i, k in enumerate(zip(np.round(a.ra, 9), np.round(a.dec, 9)))}
    ib = {k: i for i, k in enumerate(zip(np.round(b.ra, 9), np.round(b.dec, 9)))}
    for k in list(both)[:50]:
        assert np.array_equal(a.mag[ia[k]], b.mag[ib[k]])
    assert not key(field_sources(6, 0.02, 1.0, 0.06)) & key(a)


def test_missing_redshift_with_a_physical_aperture_is_a_clear_error():
    from clustermass.errors import ImageError

    rows = pd.DataFrame({"id": [42], "ra": [10.0], "dec": [0.0], "z": [np.nan], "richness": [30.0]})
    with pytest.raises(ImageError, match="cluster 42"):
        MockSource(seed=0).cutouts(rows, CutoutGrid())
    ok = MockSource(seed=0).cutouts(rows, CutoutGrid(aperture_mpc=None, aperture_arcsec=200.0))[0]
    assert ok.meta["halo_id"] is None and np.isfinite(ok.data).all()
