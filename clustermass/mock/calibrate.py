"""Comparisons of a mock universe with the real catalogues and frames (plain data in, numbers out).

Each function takes a universe folder and/or the real data folder and returns plain dicts or
DataFrames; tests assert the calibration targets on them and `cmcat mock plot` draws them.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from astropy.table import Table
from astropy.units import UnitsWarning
from scipy.stats import ks_2samp

from clustermass.cosmology import COSMO
from clustermass.mock.galaxies import Sources, field_sources
from clustermass.mock.groups import group_sources
from clustermass.mock.relations import Z_MAX, Z_MIN, m500_of_lambda
from clustermass.mock.version import universe_params
from clustermass.mock.instrument import PSF_FWHM, field_conditions
from clustermass.mock.sed import kcorr
from clustermass.mock.writers import FILES, read_truth

REAL_REDMAPPER = "clusterdb/sdss_redmapper.csv.gz"
REAL_MCXC = "clusterdb/mcxc.csv.gz"
REAL_PSZ2 = "HFI_PCCS_SZ-union_R2.08.fits"
REAL_SPIDERS_BCG = "crossmatch/SpidersXclusterBCGs-v2.0.fits"
REAL_PHOTOOBJ = "sdss_frames/celeste/photoObj-003900-6-0269.fits"
REAL_PHOTOFIELD = "sdss_frames/celeste/photoField-003900-6.fits"
Z_BINS = np.arange(0.05, 0.45, 0.05)


def redmapper_pair(universe_dir: Path, real_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(mock, real) short-form redMaPPer tables over the same cuts (lambda >= 20, z range)."""
    mock = pd.read_csv(Path(universe_dir) / FILES["redmapper_csv"])
    real = pd.read_csv(Path(real_dir) / REAL_REDMAPPER)
    cut = lambda t: t[(t["lambda"] >= 20) & t.redshift.between(Z_MIN, Z_MAX)]  # noqa: E731
    return cut(mock), cut(real)


def ks_statistics(universe_dir: Path, real_dir: Path) -> dict[str, float]:
    """Two-sample KS statistics of lambda and z between the mock and the real redMaPPer v5.10."""
    mock, real = redmapper_pair(universe_dir, real_dir)
    return {"lambda": float(ks_2samp(mock["lambda"], real["lambda"]).statistic),
            "z": float(ks_2samp(mock.redshift, real.redshift).statistic)}


#: Sky area of the real redMaPPer v5.10 catalogue (deg^2; Rykoff et al. 2014).
REAL_AREA_DEG2 = 10400.0
#: Weak-lensing check: clusters of 35 <= lambda < 45 at 0.10 <= z < 0.33 (the sample of Simet+2017 and Murata+2018).
LENSING_BIN = (35.0, 45.0, 0.10, 0.33)


def abundance(universe_dir: Path, real_dir: Path) -> dict[str, float]:
    """Clusters per deg^2 (lambda >= 20, the catalogue's z range) of the mock, whose area is what its drawn haloes
    fill at the mass function's density (universe.json's sky_area_deg2), and of the real catalogue; and the mock's
    mean true mass at lambda ~ 40 (log10 of the mean M500c in LENSING_BIN) next to the weak-lensing one the
    relations quote (relations.m500_of_lambda(40): Simet+2017)."""
    mock, real = redmapper_pair(universe_dir, real_dir)
    area = float(universe_params(universe_dir)["sky_area_deg2"])
    t = read_truth(universe_dir)
    lo, hi, zlo, zhi = LENSING_BIN
    rm = t[(t.rm_id > 0) & (t.lambda_obs >= lo) & (t.lambda_obs < hi) & (t.z_phot >= zlo) & (t.z_phot < zhi)]
    return {"mock_per_deg2": len(mock) / area, "real_per_deg2": len(real) / REAL_AREA_DEG2,
            "ratio": len(mock) / area / (len(real) / REAL_AREA_DEG2),
            "log10_mean_m500_lambda40": float(np.log10(np.mean(10.0 ** rm.log10_m500.to_numpy()))),
            "lensing_log10_m500_lambda40": float(np.log10(m500_of_lambda(40.0))), "lensing_bin_clusters": len(rm)}


def _clusters(redmapper: pd.DataFrame) -> pd.DataFrame:
    """A short-form redMaPPer table as the (id, ra, dec, z, richness) rows `crossmatch.match` takes."""
    return pd.DataFrame({"id": redmapper.ID, "ra": redmapper.RA, "dec": redmapper.dec, "z": redmapper.redshift,
                         "richness": redmapper["lambda"]})


def _mcxc_rows(mcxc: pd.DataFrame) -> pd.DataFrame:
    """An MCXC table as (id, ra, dec, z, log10_m500, log10_m500_err, source) measurement rows, id = row + 1."""
    return pd.DataFrame({"id": np.arange(1, len(mcxc) + 1), "ra": mcxc.RAdeg, "dec": mcxc.DEdeg, "z": mcxc.z,
                         "log10_m500": np.log10(mcxc.M500 * 1e14), "log10_m500_err": 0.1, "source": "mcxc"})


def _psz2_rows(psz2_fits: Path) -> pd.DataFrame:
    """A PSZ2 union file's entries with a redshift and a mass as measurement rows (like `_mcxc_rows`)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnitsWarning)  # the PSZ2 unit strings, as in the real file
        p = Table.read(psz2_fits, hdu="PSZ2_UNION").to_pandas()
    p = p[(p.REDSHIFT > 0) & (p.MSZ > 0)]
    return pd.DataFrame({"id": np.arange(1, len(p) + 1), "ra": p.RA, "dec": p.DEC, "z": p.REDSHIFT.astype(float),
                         "log10_m500": np.log10(p.MSZ.astype(float) * 1e14),
                         "log10_m500_err": (p.MSZ_ERR_UP / p.MSZ / np.log(10)).astype(float), "source": "psz2"})


def measurements(universe_dir: Path) -> pd.DataFrame:
    """The mock MCXC and PSZ2 masses as (id, ra, dec, z, log10_m500, log10_m500_err, source) rows."""
    d = Path(universe_dir)
    out = pd.concat([_mcxc_rows(pd.read_csv(d / FILES["mcxc"])), _psz2_rows(d / FILES["psz2"])], ignore_index=True)
    return out.assign(id=np.arange(1, len(out) + 1))


def labelled(universe_dir: Path) -> pd.DataFrame:
    """Mock clusters with a label, matched like `cmcat crossmatch` (2', |dz| < 0.05(1+z), MCXC first)."""
    from clustermass.catalogs.crossmatch import match

    clusters = _clusters(pd.read_csv(Path(universe_dir) / FILES["redmapper_csv"]))
    labels = match(clusters, measurements(universe_dir))
    return labels.merge(clusters, left_on="cluster_id", right_on="id")


#: MCXC's serendipitous surveys (pointed ROSAT/Einstein fields: deep, small area); its other catalogues are RASS-based.
SERENDIPITOUS_CATS = ("400SD", "160SD", "WARPS", "EMSS", "SHARC")


def serendipitous_share(redmapper_csv: Path, mcxc_csv: Path) -> dict[str, float]:
    """Share of the redMaPPer clusters' MCXC labels (matched like `cmcat crossmatch`) that come from the
    serendipitous surveys, how much lighter they are at fixed lambda (mean residual about a log-linear fit in
    lambda, serendipitous minus RASS, dex), and the median redshift of each kind: the same function reads the real
    files and a universe's (whose `Cat` says which sky detected the halo)."""
    from clustermass.catalogs.crossmatch import match

    clusters, x = _clusters(pd.read_csv(redmapper_csv)), pd.read_csv(mcxc_csv)
    lab = match(clusters, _mcxc_rows(x), priority=("mcxc",))
    ser = x.Cat.isin(SERENDIPITOUS_CATS).to_numpy()[lab.measurement_id.to_numpy() - 1]
    c = clusters.set_index("id").reindex(lab.cluster_id)
    z, logm = c.z.to_numpy(), lab.log10_m500.to_numpy()
    design = np.column_stack([np.ones(len(lab)), np.log10(c.richness.to_numpy() / 40.0)])
    resid = logm - design @ np.linalg.lstsq(design, logm, rcond=None)[0]
    return {"labels": int(len(lab)), "share": float(ser.mean()),
            "mass_offset_dex": float(resid[ser].mean() - resid[~ser].mean()),
            "median_z_serendipitous": float(np.median(z[ser])), "median_z_rass": float(np.median(z[~ser]))}


def catalogue_offset(redmapper_csv: Path, mcxc_csv: Path, psz2_fits: Path) -> dict[str, float]:
    """log10 MSZ - log10 M_MCXC (dex) of the redMaPPer clusters that both catalogues match (each matched on its
    own, like `cmcat crossmatch`): mean, median, standard deviation and count. The same function reads the real
    files and a universe's; relations.PSZ2_MASS_OFFSET_DEX is calibrated on it."""
    from clustermass.catalogs.crossmatch import match

    clusters = _clusters(pd.read_csv(redmapper_csv))
    per = {}
    for name, rows in (("mcxc", _mcxc_rows(pd.read_csv(mcxc_csv))), ("psz2", _psz2_rows(psz2_fits))):
        per[name] = match(clusters, rows, priority=(name,)).set_index("cluster_id")
    both = per["psz2"].log10_m500.sub(per["mcxc"].log10_m500).dropna().to_numpy()
    return {"clusters": int(both.size), "mean_dex": float(both.mean()), "median_dex": float(np.median(both)),
            "sd_dex": float(both.std(ddof=1))}


def baseline_summary(universe_dir: Path, seed: int = 0) -> dict:
    """Label counts and the 5-fold richness-baseline metrics on the mock (as `cmcat baseline` computes them)."""
    from clustermass.model.baseline import cross_validate, fit

    lab = labelled(universe_dir)
    n_rm = len(pd.read_csv(Path(universe_dir) / FILES["redmapper_csv"], usecols=["ID"]))
    cv = cross_validate(lab.cluster_id.to_numpy(), lab.richness.to_numpy(), lab.z.to_numpy(),
                        lab.log10_m500.to_numpy(), k=5, seed=seed, groups=lab.source.to_numpy())
    coef = fit(lab.richness.to_numpy(), lab.z.to_numpy(), lab.log10_m500.to_numpy())
    truth = read_truth(universe_dir)
    true_m = truth[truth.rm_id > 0].set_index("rm_id").log10_m500.reindex(lab.cluster_id).to_numpy()
    return {
        "clusters": n_rm, "labelled": len(lab), "fraction": len(lab) / n_rm,
        "xray": int((lab.source == "mcxc").sum()), "sz": int((lab.source == "psz2").sum()),
        "mae": cv["overall"]["mae"], "groups": cv["groups"], "coef": coef.tolist(),
        "label_scatter_vs_truth": float(np.std(lab.log10_m500.to_numpy() - true_m)),
        "label_z": lab.z.to_numpy(), "predicted": cv["predicted"], "measured": lab.log10_m500.to_numpy(),
        "source": lab.source.to_numpy(),
    }


def baseline_sampling_error(universe_dir: Path, n_boot: int = 200, seed: int = 0) -> dict[str, float]:
    """Bootstrap standard deviations of the baseline's 5-fold MAE (dex) and slope over the labelled clusters:
    the sampling noise of a ~450-label sample (the real catalogue's 460 labels carry the same)."""
    from clustermass.model.baseline import cross_validate, fit

    lab = labelled(universe_dir)
    ids, lam, z, y = lab.cluster_id.to_numpy(), lab.richness.to_numpy(), lab.z.to_numpy(), lab.log10_m500.to_numpy()
    rng = np.random.default_rng(seed)
    mae, slope = [], []
    for _ in range(n_boot):
        i = rng.integers(0, y.size, y.size)  # a drawn-twice cluster keeps its one fold
        mae.append(cross_validate(ids[i], lam[i], z[i], y[i], k=5, seed=0)["overall"]["mae"])
        slope.append(fit(lam[i], z[i], y[i])[1])
    return {"mae_sd": float(np.std(mae)), "slope_sd": float(np.std(slope))}


def bcg_table(universe_dir: Path) -> pd.DataFrame:
    """Mock BCG apparent g, r, i (AB) and z of the X-ray-detected clusters (like SPIDERS' sample)."""
    t = read_truth(universe_dir)
    t = t[t.in_mcxc].reset_index(drop=True)
    z = t.z.to_numpy()
    mags = t.bcg_mr.to_numpy()[:, None] + COSMO.distmod(z).value[:, None] + kcorr("red", z)
    return pd.DataFrame({"z": z, "g": mags[:, 1], "r": mags[:, 2], "i": mags[:, 3]})


def spidders_bcgs(real_dir: Path) -> pd.DataFrame:
    """Real SPIDERS BCGs: spectroscopic z and Sersic g, r, i magnitudes (valid rows)."""
    t = Table.read(Path(real_dir) / REAL_SPIDERS_BCG)
    df = pd.DataFrame({"z": np.asarray(t["CLUZSPEC"], float),
                       **{b: np.asarray(t[f"GAL_sdss_{b}_modS_C1_MAG"], float) for b in "gri"}})
    return df[df[list("gri")].apply(lambda c: c.between(10, 25)).all(axis=1) & (df.z > 0)]


def bcg_offsets(universe_dir: Path, real_dir: Path, bins: np.ndarray = Z_BINS, min_count: int = 20) -> pd.DataFrame:
    """Median g-r, r-i and r of BCGs per z bin, mock minus real (bins with >= min_count real BCGs)."""
    mock, real = bcg_table(universe_dir), spidders_bcgs(real_dir)
    rows = []
    for lo, hi in zip(bins[:-1], bins[1:]):
        m, r = mock[mock.z.between(lo, hi)], real[real.z.between(lo, hi)]
        if len(r) < min_count or len(m) < 3:
            continue
        med = lambda t, a, b: float(np.median(t[a] - t[b]) if b else np.median(t[a]))  # noqa: E731
        rows.append({"z_lo": lo, "z_hi": hi, "n_real": len(r), "n_mock": len(m),
                     "d_gr": med(m, "g", "r") - med(r, "g", "r"), "d_ri": med(m, "r", "i") - med(r, "r", "i"),
                     "d_r": med(m, "r", None) - med(r, "r", None),
                     "real_gr": med(r, "g", "r"), "mock_gr": med(m, "g", "r"),
                     "real_ri": med(r, "r", "i"), "mock_ri": med(m, "r", "i")})
    return pd.DataFrame(rows)


def field_comparison(real_dir: Path, seed: int = 0) -> dict:
    """Counts per deg^2 (galaxies, stars; 18 < r < 21.5) and median colours: real photoObj field vs mock sky."""
    p = Table.read(Path(real_dir) / REAL_PHOTOOBJ, hdu=1)
    mag = np.asarray(p["MODELMAG"], float)
    kind = np.asarray(p["OBJC_TYPE"])
    ra, dec = np.asarray(p["RA"], float), np.asarray(p["DEC"], float)
    area = (np.ptp(ra) * np.cos(np.radians(np.median(dec)))) * np.ptp(dec)
    ra0, dec0, half = float(np.median(ra)), float(np.median(dec)), 0.5  # a 1 deg^2 box of mock sky
    mock = Sources.concat([field_sources(seed, ra0, dec0, half), group_sources(seed, ra0, dec0, half)])
    m_box = (np.abs(mock.dec - dec0) < half) & (np.abs((mock.ra - ra0 + 180) % 360 - 180) * np.cos(np.radians(dec0)) < half)
    m_area = (2 * half) ** 2
    mm = mock.mag[m_box]
    star_m = mock.r_e[m_box] == 0
    out = {}
    rng = np.random.default_rng(0)
    for name, sel_real, mag_real, sel_mock in (("galaxies", kind == 3, mag, ~star_m), ("stars", kind == 6, mag, star_m)):
        rr = sel_real & (mag_real[:, 2] > 18) & (mag_real[:, 2] < 21.5)
        mk = sel_mock & (mm[:, 2] > 18) & (mm[:, 2] < 21.5)
        out[name] = {"real_per_deg2": float(rr.sum() / area), "mock_per_deg2": float(mk.sum() / m_area),
                     "real_per_deg2_err": float(np.sqrt(rr.sum()) / area)}
        for col, (a, b) in (("gr", (1, 2)), ("ri", (2, 3)), ("iz", (3, 4))):
            real_c = mag_real[rr, a] - mag_real[rr, b]
            boot = [np.median(real_c[rng.integers(0, real_c.size, real_c.size)]) for _ in range(500)]
            out[name] |= {f"real_{col}": float(np.median(real_c)), f"real_{col}_err": float(np.std(boot)),
                          f"mock_{col}": float(np.median(mm[mk, a] - mm[mk, b]))}
    out["psf_fwhm"] = {"real": np.median(np.asarray(p["PSF_FWHM"], float), axis=0).tolist(), "mock": PSF_FWHM.tolist()}
    return out


def conditions_comparison(real_dir: Path, seed: int = 0, n_fields: int = 2000) -> dict:
    """Percentiles (5, 50, 95) of r-band seeing FWHM (arcsec) and sky (mag/arcsec^2): mock fields vs the
    real photoField of run 3900 camcol 6 (815 fields)."""
    t = Table.read(Path(real_dir) / REAL_PHOTOFIELD)
    real_sky = 22.5 - 2.5 * np.log10(np.asarray(t["SKY"], float)[:, 2])
    cond = [field_conditions(seed, 4000 + k // 6, k % 6 + 1, 11 + k) for k in range(n_fields)]
    pct = lambda a: np.percentile(a, [5, 50, 95]).round(3).tolist()  # noqa: E731
    return {"real_fwhm_r": pct(np.asarray(t["PSF_WIDTH"], float)[:, 2]), "mock_fwhm_r": pct([c.psf_fwhm[2] for c in cond]),
            "real_sky_r": pct(real_sky), "mock_sky_r": pct([c.sky_mu[2] for c in cond]),
            "real_score": pct(np.asarray(t["SCORE"], float)), "mock_score": pct([c.score for c in cond])}


def _rms_of_fit(y: np.ndarray, *columns: np.ndarray) -> float:
    """rms residual of a least-squares fit of y on the columns and a constant."""
    x = np.column_stack([*columns, np.ones(len(y))])
    return float(np.std(y - x @ np.linalg.lstsq(x, y, rcond=None)[0]))


def assembly_effects(universe_dir: Path) -> dict:
    """Miscentring and magnitude-gap figures of the catalogue (lambda >= 20 in the z range), on true masses.

    miscentred_fraction, mean offset of the miscentred (R_lambda), their lambda bias (own members counted
    per member, relative to the well-centred ones); sigma(log10 M | N, z) without and with the magnitude gap
    m12 (mag) and its fractional reduction, Hearin+2013's measure: N is the cluster's own members (as in their
    halo-based mock groups, no line-of-sight interlopers or background noise); the `_obs` keys repeat it with
    the catalogue's observed lambda.
    """
    t = read_truth(universe_dir)
    rm = t[(t.rm_id > 0) & (t.lambda_obs >= 20) & t.z_phot.between(Z_MIN, Z_MAX)]
    mis = rm[rm.miscentred]
    y, z, gap = rm.log10_m500.to_numpy(), np.log10(1 + rm.z_phot.to_numpy()), rm.gap12.to_numpy()
    gap_effect = {}
    for suffix, richness in (("", rm.lambda_members), ("_obs", rm.lambda_obs)):
        own = richness.to_numpy() >= 1  # a few poor haloes count no member of their own: all their lambda projects
        lam = np.log10(richness.to_numpy()[own])
        without, with_gap = _rms_of_fit(y[own], lam, z[own]), _rms_of_fit(y[own], lam, z[own], gap[own])
        gap_effect |= {f"sigma_logm_lambda{suffix}": without, f"sigma_logm_lambda_gap{suffix}": with_gap,
                       f"gap_scatter_reduction{suffix}": 1 - with_gap / without}
    return {
        "clusters": len(rm), "miscentred_fraction": float(rm.miscentred.mean()),
        "miscentred_offset_rlambda": float(mis.offset_rlambda.mean()),
        "miscentred_lambda_ratio": float((mis.lambda_members / (mis.n_red + 1)).mean()
                                         / (rm[~rm.miscentred].lambda_members / (rm[~rm.miscentred].n_red + 1)).mean()),
        **gap_effect,
        "gap12_median": float(rm.gap12.median()), "c500_ln_scatter": float(np.log(rm.c500).std()),
    }


LAMBDA_BINS = (20, 30, 50, 100, 1000)


def projection_shares(universe_dir: Path, bins: tuple = LAMBDA_BINS) -> dict:
    """Mean share of lambda from line-of-sight neighbours (lambda_proj / counted members) per lambda bin,
    and sigma(ln lambda | M) of the catalogue (least-squares on log10 M500)."""
    t = read_truth(universe_dir)
    rm = t[(t.rm_id > 0) & (t.lambda_obs >= 20) & t.z_phot.between(Z_MIN, Z_MAX)]
    share = rm.lambda_proj / (rm.lambda_members + rm.lambda_proj).clip(lower=1)
    out = {f"{lo}-{hi}": float(share[(rm.lambda_obs >= lo) & (rm.lambda_obs < hi)].mean()) for lo, hi in zip(bins[:-1], bins[1:])}
    y, x = rm.log10_m500.to_numpy(), np.log(rm.lambda_obs.to_numpy())
    return {"share": out, "all": float(share.mean()), "sigma_lnlambda_at_m": _rms_of_fit(x, y)}


def comparison(universe_dir: Path, real_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Everything `cmcat mock plot` shows: (data for clustermass.plots.mock.plot_all, the numbers
    reported: KS statistics, baseline summary, BCG colour offsets, field counts)."""
    base = baseline_summary(universe_dir)
    data = {
        "redmapper": redmapper_pair(universe_dir, real_dir),
        "ks": ks_statistics(universe_dir, real_dir),
        "baseline": base,
        "bcg": (bcg_table(universe_dir), spidders_bcgs(real_dir)),
        "field": field_comparison(real_dir),
        "projection": projection_shares(universe_dir),
        "assembly": assembly_effects(universe_dir),
    }
    numbers = {
        "ks": data["ks"],
        "baseline": {k: base[k] for k in ("clusters", "labelled", "fraction", "xray", "sz", "mae", "coef")},
        "bcg_offsets": bcg_offsets(universe_dir, real_dir).round(3).to_dict(orient="records"),
        "field": data["field"],
        "projection": data["projection"],
        "assembly": data["assembly"],
    }
    return data, numbers
