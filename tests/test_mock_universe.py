"""Mock universe: catalogue files, determinism, and the direct MockSource render."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from astropy.table import Table

from clustermass.images.base import BANDS, CutoutGrid
from clustermass.mock.source import MockSource
from clustermass.mock.frames import field_at
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
    """lambda is the red-sequence count, inside R_lambda of the catalogue centre, of the galaxies the images
    draw (the cluster's, its line-of-sight neighbours' and the line-of-sight groups'), plus the smooth
    background's noise."""
    from clustermass.mock import relations as rel
    from clustermass.mock.projection import red_sequence_window
    from clustermass.mock.render import gnomonic
    from clustermass.mock.groups import group_sources
    from clustermass.mock.scene import halo_sources

    truth = read_truth(universe_dir)
    rm = truth[truth.rm_id > 0]
    assert (truth.host_id > 0).sum() > 0.2 * len(rm)  # neighbours are haloes of the universe
    src = MockSource(universe_dir)
    for c in rm.head(8).to_dict("records"):
        rows = [c] + truth[truth.host_id == c["halo_id"]].to_dict("records")
        counts = []
        box = 2.5 * rel.r_lambda_mpc(max(c["lambda_true"], 1.0)) * rel.deg_per_mpc(c["z"])
        for m in [halo_sources(src.seed, h) for h in rows] + [group_sources(src.seed, c["ra"], c["dec"], box)]:
            keep = red_sequence_window(m.mag, c["z"])
            xi, eta = gnomonic(m.ra[keep], m.dec[keep], c["ra"], c["dec"])
            counts.append(np.hypot(xi, eta) / rel.deg_per_mpc(c["z"]))
        r = np.concatenate(counts)
        counted = c["lambda_members"] + c["lambda_proj"] + c["group_background"]  # groups' mean: subtracted
        radius = rel.r_lambda_mpc(max(counted, 1.0))
        assert abs((r <= radius).sum() - counted) <= 1  # same galaxies
        assert (np.concatenate(counts[:1]) <= radius).sum() == pytest.approx(c["lambda_members"], abs=1)
    from clustermass.mock.population import depth_boost

    resid = rm.lambda_obs / depth_boost(rm.z_phot.to_numpy()) - rm.lambda_members - rm.lambda_proj
    assert abs(resid.mean()) < 1.5 and resid.std() < np.sqrt(rm.background.mean()) * 1.5
    # lambda tracks mass (Murata+2018's scatter, ~0.45 in ln at 2e14 Msun, and the lambda >= 20 cut keep it loose)
    assert np.corrcoef(np.log(rm.lambda_obs / depth_boost(rm.z_phot.to_numpy())), rm.log10_m500)[0, 1] > 0.25


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
    from clustermass.mock.source import synthetic_halo

    assert synthetic_halo(3, 200.03, 5.0, 0.2, 120.0)["off_x_mpc"] == 0.0  # a well-centred one
    grid = CutoutGrid(size=64, aperture_mpc=None, aperture_arcsec=256.0)
    rows = pd.DataFrame({"id": [1, 2], "ra": [200.03, 200.03], "dec": [5.0, 5.0], "z": [0.2, 0.2],
                         "richness": [120.0, 0.0]})
    noisy = MockSource(seed=3).cutouts(rows, grid)
    clean = MockSource(seed=3, noise=False).cutouts(rows, grid)
    rich, empty = clean[0].data, clean[1].data
    cluster_light = (rich - empty)[2]
    centre = cluster_light[24:40, 24:40].mean()
    ring = np.ones((64, 64), bool)
    ring[8:56, 8:56] = False
    assert centre > 5 * cluster_light[ring].mean() > 0  # members concentrate towards the centre (NFW)
    from clustermass.mock.groups import group_sources
    from clustermass.mock.scene import halo_sources

    bcg = halo_sources(3, synthetic_halo(3, 200.03, 5.0, 0.2, 120.0))  # the BCG comes first
    assert 3600 * np.hypot((bcg.ra[0] - 200.03) * np.cos(np.radians(5.0)), bcg.dec[0] - 5.0) < 10.0  # at the centre (10 kpc jitter)
    assert cluster_light[28:36, 28:36].sum() > 0.5 * bcg.flux[0, 2]
    resid = noisy[1].data - empty
    cond = field_at(200.03, 5.0).conditions(3)  # the seeing and sky of the field holding the cutout
    for b in range(5):
        assert resid[b].std() == pytest.approx(cutout_noise(4.0, cond)[b], rel=0.05), BANDS[b]


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


def test_fields_have_their_own_seeing_and_sky_shared_by_cutouts_and_frames(tmp_path):
    """Seeing and sky vary from field to field (deterministically); the direct cutout uses its field's."""
    from astropy.io import fits

    from clustermass.mock.frames import fields_covering, write_window_flist
    from clustermass.mock.instrument import SKY_MU

    specs = fields_covering(200.0, 5.0, 1.0)
    cond = [s.conditions(3) for s in specs]
    fwhm = np.array([c.psf_fwhm for c in cond])
    assert len(specs) > 10 and fwhm[:, 2].std() > 0.05 and np.ptp([c.sky_mu[2] for c in cond]) > 0.2
    assert np.array_equal(specs[0].conditions(3).psf_fwhm, cond[0].psf_fwhm)  # deterministic
    assert not np.array_equal(specs[0].conditions(4).psf_fwhm, cond[0].psf_fwhm)
    assert np.all(fwhm[:, 0] > fwhm[:, 3])  # u is the worst band
    with fits.open(write_window_flist(specs, tmp_path, 3)) as hdul:
        t = hdul[1].data
        assert np.allclose(t["PSF_FWHM"], fwhm) and np.allclose(-2.5 * np.log10(t["SKYFLUX"]) + 22.5, [c.sky_mu for c in cond])
        assert 0.05 <= t["SCORE"].min() < t["SCORE"].max() <= 1.0
    assert abs(np.median([c.sky_mu[2] for c in cond]) - SKY_MU[2]) < 0.2
    # the direct cutout is drawn with the seeing of the field holding its centre
    from clustermass.mock.instrument import PSF_FWHM
    from clustermass.mock.render import render_cutout

    grid = CutoutGrid(size=32, aperture_mpc=None, aperture_arcsec=40.0)
    rows = pd.DataFrame({"id": [1], "ra": [200.0], "dec": [5.0], "z": [np.nan], "richness": [0.0]})  # sky only
    src = MockSource(seed=3, noise=False)
    img = src.cutouts(rows, grid, "r")[0].data[0]
    sky = src.scene.sources(200.0, 5.0, 40.0 / 3600.0 / 2 + 10.0 / 3600.0)
    for psf, same in ((field_at(200.0, 5.0).conditions(3).psf_fwhm, True), (PSF_FWHM * 1.3, False)):
        ref = render_cutout(sky.ra, sky.dec, sky.r_e, sky.flux, 200.0, 5.0, 32, 40.0 / 32, [2], psf)[0]
        assert np.allclose(img, ref, rtol=1e-5, atol=1e-7) == same


def test_miscentred_clusters_are_centred_on_a_bright_satellite(universe_dir):
    """A quarter of the catalogue is miscentred: its centre is a bright member's, the BCG lies off it,
    and lambda counts fewer members."""
    from clustermass.mock.groups import group_sources
    from clustermass.mock.scene import halo_sources

    truth = read_truth(universe_dir)
    rm = truth[truth.rm_id > 0]
    mis = rm[rm.miscentred]
    assert 0.1 < len(mis) / len(rm) < 0.45
    cen = rm[~rm.miscentred]
    assert (mis.lambda_members / (mis.n_red + 1)).mean() < (cen.lambda_members / (cen.n_red + 1)).mean()
    src = MockSource(universe_dir)
    h = src.scene.match(mis.ra.iloc[0], mis.dec.iloc[0], 2.0)
    assert h is not None and h["halo_id"] == mis.halo_id.iloc[0]
    members = halo_sources(src.seed, h)
    sep = 3600 * np.hypot((members.ra - h["ra"]) * np.cos(np.radians(h["dec"])), members.dec - h["dec"])
    k = int(np.argmin(sep))
    assert sep[k] < 0.5 and k > 0  # a satellite sits on the catalogue centre, not the BCG (first)
    assert members.mag[k, 2] <= np.min(members.mag[1:, 2]) + 1e-9  # the brightest satellite
    assert sep[0] > 5.0


def test_rendered_members_carry_the_assembly_history(universe_dir):
    """The brightest satellite is gap12 mag fainter than the BCG; the gap and concentration follow the latent."""
    from clustermass.mock.groups import group_sources
    from clustermass.mock.scene import halo_sources

    truth = read_truth(universe_dir)
    rm = truth[truth.rm_id > 0]
    src = MockSource(universe_dir)
    for h in rm.head(5).to_dict("records"):
        members = halo_sources(src.seed, h)
        r_abs = members.mag[:, 2] - members.mag[0, 2]  # same K-correction for all: the gap in r
        assert np.min(r_abs[1:]) == pytest.approx(h["gap12"], abs=0.2)  # red-sequence scatter aside
    assert np.corrcoef(rm.assembly, np.log(rm.gap12))[0, 1] > 0.6
    assert np.corrcoef(rm.assembly, np.log(rm.c500))[0, 1] > 0.99


def test_blue_members_rise_with_redshift_and_resolved_galaxies_are_sersic_mixtures():
    from clustermass.mock.galaxies import Sources, blue_fraction, cluster_sources, expand_profiles
    from clustermass.profiles import sersic_mixture

    f = blue_fraction(np.array([0.1, 0.3, 0.5, 0.3]), np.array([40.0, 40.0, 40.0, 150.0]))
    assert f[0] < f[1] < f[2] and f[3] < f[1]  # Butcher-Oemler; fewer in rich clusters
    h = {"z": 0.45, "bcg_mr": -24.0, "gap12": 0.8, "log10_m500": 14.5, "lambda_true": 40.0, "n_red": 40, "n_faint": 60,
         "c500": 3.0, "halo_ra": 10.0, "halo_dec": 0.0, "off_x_mpc": 0.0, "off_y_mpc": 0.0}
    m = cluster_sources(0, (1, 5), h)
    blue = m.sersic == 1
    assert 0.1 < blue.mean() < 0.4
    gr = m.mag[:, 1] - m.mag[:, 2]
    assert np.median(gr[blue]) < np.median(gr[~blue]) - 0.3
    assert np.min(m.mag[1:, 2]) - m.mag[0, 2] == pytest.approx(0.8, abs=0.15)  # blue members keep the gap
    for n in (1, 4):
        w, s = sersic_mixture(n)
        r = np.linspace(0.0, 10.0, 20001)
        cum = sum(wk * (1 - np.exp(-r**2 / (2 * sk**2))) for wk, sk in zip(w, s))
        assert w.sum() == pytest.approx(1.0) and r[np.searchsorted(cum, 0.5)] == pytest.approx(1.0, abs=0.08)
    big = Sources(np.array([1.0, 2.0]), np.array([0.0, 0.0]), np.full((2, 5), 18.0), np.array([3.0, 0.5]), np.array([4.0, 4.0]))
    e = expand_profiles(big)
    assert len(e) == sersic_mixture(4)[0].size + 1  # only the resolved one is split
    assert e.flux.sum(axis=0) == pytest.approx(big.flux.sum(axis=0))
