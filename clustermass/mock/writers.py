"""Writing a mock universe in the real catalogues' formats, and reading its truth back.

Files in the universe folder:
- `redmapper.fits` (HDU 1, full redMaPPer column names) and `redmapper.csv.gz` (the short
  ID,name,RA,dec,redshift,lambda,r500 form of the real clusterdb file, r500 in degrees);
- `mcxc.csv.gz`: the 31 columns of the real mcxc.csv.gz (M500 in 1e14 Msun, L500 in 1e44 erg/s);
- `psz2.fits`: HDU PSZ2_UNION with the real PSZ2 union columns (REDSHIFT=-1, MSZ=0 when unknown);
- `truth.parquet`: one row per halo (true mass, members, catalogue memberships); evaluation only;
  its Parquet metadata holds the mock version (`cmcat_mock_version`);
- `universe.json`: the parameters (n, seed, area, variant) that made it, `mock_version` and `sky_area_deg2` (the
  area the drawn haloes fill at the mass function's density; the given area for a patch).
The same universe gives byte-identical files (gzip mtime 0, no dates in FITS headers).
"""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
from astropy.io import fits
from astropy.table import Table

from clustermass.cosmology import arcsec_per_mpc
from clustermass.mock import relations as rel
from clustermass.mock.population import XRAY_CAT_DEEP, XRAY_CAT_RASS, Universe
from clustermass.mock.version import MOCK_VERSION, check_universe
from clustermass.model.truth import TRUTH_FILE, TRUTH_META_KEY, read_truth as read_truth_table

#: Y(5 R500) / Y500 of the universal pressure profile (Arnaud+2010).
Y5R500_OVER_Y500 = 1.81

FILES = {
    "redmapper_fits": "redmapper.fits",
    "redmapper_csv": "redmapper.csv.gz",
    "mcxc": "mcxc.csv.gz",
    "psz2": "psz2.fits",
    "truth": TRUTH_FILE,
    "params": "universe.json",
}


def _sexa(value: np.ndarray, hours: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sign, integer units, integer minutes and seconds of degrees (hours if `hours`)."""
    v = np.asarray(value) / (15.0 if hours else 1.0)
    sign = np.where(v < 0, "-", "+")
    a = np.abs(v)
    d = np.floor(a)
    m = np.floor((a - d) * 60)
    s = (a - d - m / 60) * 3600
    return sign, d.astype(int), m.astype(int), s


def rm_names(ra: np.ndarray, dec: np.ndarray) -> list[str]:
    """redMaPPer-style names RMJhhmmss.s+ddmmss.s."""
    _, h, m, s = _sexa(ra, True)
    sg, dd, dm, ds = _sexa(dec, False)
    return [f"RMJ{a:02d}{b:02d}{c:04.1f}{g}{d:02d}{e:02d}{f:04.1f}" for a, b, c, g, d, e, f in zip(h, m, s, sg, dd, dm, ds)]


def mcxc_names(ra: np.ndarray, dec: np.ndarray) -> list[str]:
    """MCXC-style names Jhhmm.m+ddmm."""
    _, h, m, s = _sexa(ra, True)
    sg, dd, dm, _ = _sexa(dec, False)
    return [f"J{a:02d}{b + c / 60:04.1f}{g}{d:02d}{e:02d}" for a, b, c, g, d, e in zip(h, m, s, sg, dd, dm)]


def _galactic(ra: np.ndarray, dec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from astropy.coordinates import SkyCoord

    g = SkyCoord(ra=ra, dec=dec, unit="deg").galactic
    return g.l.deg, g.b.deg


def redmapper_table(u: Universe) -> pd.DataFrame:
    """The optical catalogue: observed richness and photometric redshift, sorted by MEM_MATCH_ID."""
    rm = u.redmapper
    return pd.DataFrame(
        {
            "MEM_MATCH_ID": rm.rm_id.to_numpy(np.int32),
            "NAME": rm_names(rm.ra.to_numpy(), rm.dec.to_numpy()),
            "RA": rm.ra.to_numpy(),
            "DEC": rm.dec.to_numpy(),
            "Z_LAMBDA": rm.z_phot.to_numpy(np.float32),
            "Z_LAMBDA_ERR": rm.z_phot_err.to_numpy(np.float32),
            "LAMBDA_CHISQ": rm.lambda_obs.to_numpy(np.float32),
            "LAMBDA_CHISQ_E": rm.lambda_err.to_numpy(np.float32),
        }
    )


def _short_redmapper(t: pd.DataFrame) -> pd.DataFrame:
    """The clusterdb short form; r500 (deg) from the richness-mass relation."""
    z = t.Z_LAMBDA.to_numpy(np.float64)
    r500 = rel.r500_mpc(rel.m500_of_lambda(t.LAMBDA_CHISQ.to_numpy(np.float64)), z)
    return pd.DataFrame(
        {"ID": t.MEM_MATCH_ID, "name": t.NAME, "RA": t.RA, "dec": t.DEC, "redshift": z,
         "lambda": t.LAMBDA_CHISQ.to_numpy(np.float64), "r500": r500 * arcsec_per_mpc(z) / 3600.0}
    )


def mcxc_table(u: Universe) -> pd.DataFrame:
    """X-ray catalogue in the real MCXC columns; M500 inferred from L500 (1e14 Msun)."""
    h = u.haloes[u.haloes.in_mcxc].sort_values("halo_ra")
    rng = np.random.default_rng([u.seed, 10])
    z = h.z.to_numpy()
    kpc_per_arcsec = 1000.0 / arcsec_per_mpc(z)
    off = rng.normal(0.0, 0.05, (2, len(h))) * 1000.0 / kpc_per_arcsec / 3600.0  # 50 kpc centroid offsets
    dec = h.halo_dec.to_numpy() + off[1]  # X-ray centres: the halo's, not the optical catalogue's
    ra = np.mod(h.halo_ra.to_numpy() + off[0] / np.cos(np.radians(dec)), 360.0)
    lx = h.lx500_obs.to_numpy()  # what the survey measured and selected on
    m500 = rel.m500_of_lx(lx, z)
    r500 = rel.r500_mpc(m500, z)
    names = mcxc_names(ra, dec)
    _, rh, rm_, rs = _sexa(ra, True)
    sg, dd, dm, ds = _sexa(dec, False)
    glon, glat = _galactic(ra, dec)
    nan = np.full(len(h), np.nan)
    return pd.DataFrame(
        {
            "MCXC": names, "Oname": [f"MOCKX {n}" for n in names], "Aname": nan,
            "RAh": rh, "RAm": rm_, "RAs": np.round(rs, 1), "DE.": np.where(sg == "-", "-", None),
            "DEd": dd, "DEm": dm, "DEs": np.round(ds).astype(int),
            "RAdeg": np.round(ra, 3), "DEdeg": np.round(dec, 3), "GLON": np.round(glon, 3), "GLAT": np.round(glat, 3),
            "z": np.round(z, 4), "Cat": np.where(h.xray_deep, XRAY_CAT_DEEP, XRAY_CAT_RASS), "Sub.Cat": "MOCK",
            "Scale": np.round(kpc_per_arcsec, 3),
            "L500": np.round(lx / 1e44, 6), "M500": np.round(m500 / 1e14, 4), "R500": np.round(r500, 4),
            "Notes": nan, "Cat1": nan, "Cat2": nan, "Cat3": nan, "Cat4": nan,
            "L500r1": nan, "L500r2": nan, "L500r3": nan, "L500r4": nan,
            "r500": r500 * arcsec_per_mpc(z) / 3600.0,
        }
    )


def psz2_table(u: Universe) -> tuple[Table, dict[str, str]]:
    """SZ catalogue in the real PSZ2 union columns (REDSHIFT=-1 and MSZ=0 where unknown), and its units."""
    from clustermass.mock.population import sz_noise

    h = u.haloes[u.haloes.in_psz2].sort_values("halo_ra")
    rng = np.random.default_rng([u.seed, 11])
    n = len(h)
    z = h.z.to_numpy()
    off = rng.normal(0.0, 0.7 / 60.0, (2, n))  # Planck positions: ~1 arcmin errors
    dec = np.clip(h.halo_dec.to_numpy() + off[1], -90, 90)
    ra = np.mod(h.halo_ra.to_numpy() + off[0] / np.cos(np.radians(dec)), 360.0)
    y_err = sz_noise(h.r500_mpc.to_numpy(), z)
    y_obs = h.y500_obs.to_numpy()  # what the survey measured and selected on: S/N >= SZ_SNR_MIN, so y_obs > 0
    snr = y_obs / y_err
    msz = rel.m500_of_ysz(y_obs, z) * 10**rel.PSZ2_MASS_OFFSET_DEX / 1e14
    # the size-flux degeneracy read through the prior: a profile-shape scatter on MSZ, partly the L500 scatter's
    # (relations.PSZ2_SHAPE_LN_SCATTER); its own stream, so the other catalogue columns keep their draws
    lx_mean = rel.lx500(rel.HSE_MASS_BIAS * 10**h.log10_m500.to_numpy(), z)
    u_lx = np.log(h.lx500.to_numpy() / lx_mean) / rel.LX_LN_SCATTER  # the halo's L500 scatter draw, in sigmas
    v = np.random.default_rng([u.seed, 14]).standard_normal(n)
    rho = rel.PSZ2_SHAPE_LX_CORR
    msz = msz * np.exp(rel.PSZ2_SHAPE_LN_SCATTER * (rho * u_lx + np.sqrt(1.0 - rho**2) * v))
    frac = 1.0 / (rel.YSZ_SLOPE * snr) + 0.05
    has_z = h.psz2_has_z.to_numpy()
    glon, glat = _galactic(ra, dec)
    names = [f"PSZ2 G{l:06.2f}{b:+06.2f}" for l, b in zip(glon, glat)]
    t = Table()
    t["INDEX"] = np.arange(1, n + 1, dtype=np.int16)
    t["NAME"] = np.array(names, dtype="S18")
    t["GLON"], t["GLAT"], t["RA"], t["DEC"] = glon, glat, ra, dec
    t["POS_ERR"] = np.full(n, 1.0, np.float32)
    t["SNR"] = snr.astype(np.float32)
    t["PIPELINE"] = np.full(n, 3, np.int16)
    t["PIPE_DET"] = np.full(n, 111, np.int16)
    t["PCCS2"] = np.zeros(n, bool)
    t["PSZ"] = np.zeros(n, np.int16)
    t["IR_FLAG"] = np.zeros(n, np.int16)
    t["Q_NEURAL"] = np.full(n, 0.9, np.float32)
    t["Y5R500"] = (y_obs * 1e3 * Y5R500_OVER_Y500).astype(np.float32)  # 10^-3 arcmin^2
    t["Y5R500_ERR"] = (y_err * 1e3 * Y5R500_OVER_Y500).astype(np.float32)
    t["VALIDATION"] = np.where(has_z, 20, -1).astype(np.int16)
    t["REDSHIFT_ID"] = np.array(["MOCK" if k else "" for k in has_z], dtype="S25")
    t["REDSHIFT"] = np.where(has_z, z, -1.0).astype(np.float32)
    t["MSZ"] = np.where(has_z, msz, 0.0).astype(np.float32)
    t["MSZ_ERR_UP"] = np.where(has_z, msz * frac, 0.0).astype(np.float32)
    t["MSZ_ERR_LOW"] = np.where(has_z, msz * frac, 0.0).astype(np.float32)
    for col in ("MCXC", "REDMAPPER", "ACT", "SPT"):
        t[col] = np.array([""] * n, dtype="S25")
    t["WISE_FLAG"] = np.zeros(n, np.int16)
    t["AMI_EVIDENCE"] = np.full(n, -1.0, np.float32)
    t["COSMO"] = np.zeros(n, bool)
    t["COMMENT"] = np.array(["mock"] * n, dtype="S128")
    units = {"GLON": "degrees", "GLAT": "degrees", "RA": "degrees", "DEC": "degrees", "POS_ERR": "arcmin",
             "Y5R500": "10^-3 arcmin^2", "Y5R500_ERR": "10^-3 arcmin^2", "MSZ": "10^14 Msol",
             "MSZ_ERR_UP": "10^14 Msol", "MSZ_ERR_LOW": "10^14 Msol"}
    return t, units


def truth_table(u: Universe) -> pd.DataFrame:
    """One row per halo: truth (mass, z, members) and which catalogues list it."""
    h = u.haloes.copy()
    h["m500"] = 10**h.log10_m500
    return h


def _write_csv_gz(df: pd.DataFrame, path: Path) -> None:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, filename="") as gz:
        gz.write(df.to_csv(index=False).encode())
    path.write_bytes(buf.getvalue())


def write_universe(u: Universe, out: Path, params: dict) -> dict[str, Path]:
    """Write every catalogue and the truth table of `u` under `out`; returns name -> path."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {k: out / v for k, v in FILES.items()}
    rm = redmapper_table(u)
    hdu = fits.BinTableHDU(Table.from_pandas(rm), name="REDMAPPER")
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(paths["redmapper_fits"], overwrite=True)
    _write_csv_gz(_short_redmapper(rm), paths["redmapper_csv"])
    _write_csv_gz(mcxc_table(u), paths["mcxc"])
    psz2, units = psz2_table(u)
    hdu = fits.BinTableHDU(psz2, name="PSZ2_UNION")
    for i, name in enumerate(psz2.colnames, start=1):  # the real file's (non-FITS-standard) unit strings
        hdu.header[f"TUNIT{i}"] = units.get(name, "None")
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(paths["psz2"], overwrite=True)
    _write_truth(truth_table(u), paths["truth"])
    params = {**params, "mock_version": MOCK_VERSION, "sky_area_deg2": round(u.area_deg2, 3)}
    paths["params"].write_text(json.dumps(params, indent=2, sort_keys=True) + "\n")
    return paths


def _write_truth(df: pd.DataFrame, path: Path) -> None:
    """The truth table as Parquet, the mock version in its schema metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(df, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), TRUTH_META_KEY: str(MOCK_VERSION).encode()})
    pq.write_table(table, path)


def read_truth(universe_dir: Path) -> pd.DataFrame:
    """The truth table of a universe folder written by write_universe (refused if another mock version made it)."""
    check_universe(universe_dir)
    return read_truth_table(universe_dir, MOCK_VERSION)
