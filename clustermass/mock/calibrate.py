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
from clustermass.mock.galaxies import field_sources
from clustermass.mock.relations import Z_MAX, Z_MIN
from clustermass.mock.render import PSF_FWHM
from clustermass.mock.sed import kcorr
from clustermass.mock.writers import FILES
from clustermass.model.truth import read_truth

REAL_REDMAPPER = "clusterdb/sdss_redmapper.csv.gz"
REAL_SPIDERS_BCG = "crossmatch/SpidersXclusterBCGs-v2.0.fits"
REAL_PHOTOOBJ = "sdss_frames/celeste/photoObj-003900-6-0269.fits"
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


def measurements(universe_dir: Path) -> pd.DataFrame:
    """The mock MCXC and PSZ2 masses as (id, ra, dec, z, log10_m500, log10_m500_err, source) rows."""
    d = Path(universe_dir)
    x = pd.read_csv(d / FILES["mcxc"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnitsWarning)  # the PSZ2 unit strings, as in the real file
        p = Table.read(d / FILES["psz2"], hdu="PSZ2_UNION").to_pandas()
    p = p[(p.REDSHIFT > 0) & (p.MSZ > 0)]
    xr = pd.DataFrame({"ra": x.RAdeg, "dec": x.DEdeg, "z": x.z, "log10_m500": np.log10(x.M500 * 1e14),
                       "log10_m500_err": 0.1, "source": "mcxc"})
    pr = pd.DataFrame({"ra": p.RA, "dec": p.DEC, "z": p.REDSHIFT.astype(float),
                       "log10_m500": np.log10(p.MSZ.astype(float) * 1e14),
                       "log10_m500_err": (p.MSZ_ERR_UP / p.MSZ / np.log(10)).astype(float), "source": "psz2"})
    out = pd.concat([xr, pr], ignore_index=True)
    out.insert(0, "id", np.arange(1, len(out) + 1))
    return out


def labelled(universe_dir: Path) -> pd.DataFrame:
    """Mock clusters with a label, matched like `cmcat crossmatch` (2', |dz| < 0.05(1+z), MCXC first)."""
    from clustermass.catalogs.crossmatch import match

    rm = pd.read_csv(Path(universe_dir) / FILES["redmapper_csv"])
    clusters = pd.DataFrame({"id": rm.ID, "ra": rm.RA, "dec": rm.dec, "z": rm.redshift, "richness": rm["lambda"]})
    labels = match(clusters, measurements(universe_dir), radius_arcsec=120.0, dz=0.05, priority=("mcxc", "psz2"))
    return labels.merge(clusters, left_on="cluster_id", right_on="id")


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
    mock = field_sources(seed, ra0, dec0, half)
    m_box = (np.abs(mock.dec - dec0) < half) & (np.abs((mock.ra - ra0 + 180) % 360 - 180) * np.cos(np.radians(dec0)) < half)
    m_area = (2 * half) ** 2
    mm = mock.mag[m_box]
    star_m = mock.r_e[m_box] == 0
    out = {}
    for name, sel_real, mag_real, sel_mock in (("galaxies", kind == 3, mag, ~star_m), ("stars", kind == 6, mag, star_m)):
        rr = sel_real & (mag_real[:, 2] > 18) & (mag_real[:, 2] < 21.5)
        mk = sel_mock & (mm[:, 2] > 18) & (mm[:, 2] < 21.5)
        out[name] = {
            "real_per_deg2": float(rr.sum() / area), "mock_per_deg2": float(mk.sum() / m_area),
            "real_gr": float(np.median(mag_real[rr, 1] - mag_real[rr, 2])), "mock_gr": float(np.median(mm[mk, 1] - mm[mk, 2])),
            "real_ri": float(np.median(mag_real[rr, 2] - mag_real[rr, 3])), "mock_ri": float(np.median(mm[mk, 2] - mm[mk, 3])),
        }
    out["psf_fwhm"] = {"real": np.median(np.asarray(p["PSF_FWHM"], float), axis=0).tolist(), "mock": PSF_FWHM.tolist()}
    return out


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
    }
    numbers = {
        "ks": data["ks"],
        "baseline": {k: base[k] for k in ("clusters", "labelled", "fraction", "xray", "sz", "mae", "coef")},
        "bcg_offsets": bcg_offsets(universe_dir, real_dir).round(3).to_dict(orient="records"),
        "field": data["field"],
    }
    return data, numbers
