"""The mock cluster population: haloes from a mass function, observed richness, selections.

`build_universe(n, seed, area_deg2, variant)` draws haloes (M500c, z) from the Tinker et al.
(2008) mass function (colossus, flat LCDM H0=70, Om0=0.3) times the comoving volume, gives each
an assembly history, member counts, miscentring, line-of-sight neighbours (projection.py) and a
photometric redshift, measures the richness on the members the images draw, keeps the first `n`
that pass the redMaPPer-like selection (lambda >= 20 scaleval(z), 0.08 <= z_lambda <= 0.55, lambda inflated
beyond z_lambda = 0.3: `depth_boost`), places them in the SDSS footprint (or a patch of `area_deg2`) and applies the X-ray and SZ
selections. The population comes from one numpy Generator seeded with `seed`; members from one
Generator per halo (galaxies.cluster_sources), keyed by (batch, index) so the images redraw them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import erf

from clustermass.cosmology import COSMO
from clustermass.mock import relations as rel
from clustermass.mock.galaxies import deproject
from clustermass.mock.massfunction import density_grid, sample_grid
from clustermass.mock.projection import KEY_HALO, draw_interlopers, group_background, measure_lambda

#: SDSS DR8 imaging footprint as RA/Dec boxes (deg): the northern cap and the southern stripes.
FOOTPRINT = ((110.0, 265.0, -4.0, 69.0), (315.0, 405.0, -11.0, 16.0))
#: Centre of the patch used when an area is given.
PATCH_CENTRE = (180.0, 25.0)
_LOGM_MIN, _LOGM_MAX, _LOGM_BINS = 13.4, 15.8, 96

# X-ray flux limit (erg/s/cm^2, 0.1-2.4 keV) with a soft edge, and SZ noise (arcmin^2) at theta500 = 5'.
XRAY_FLUX_LIMIT = 3.7e-12  # REFLEX 3e-12, BCS 4.4e-12; with it ~1.7% of the catalogue is labelled (real 1.75%)
XRAY_SOFTNESS = 0.3
#: MCXC also holds serendipitous (160SD, 400SD, WARPS...) clusters: a fraction of the sky is deeper. They are 35%
#: of the real MCXC labels of redMaPPer (115 of 330; median z 0.30 against 0.17) and 0.21 dex lighter at fixed
#: lambda; XRAY_DEEP_FRACTION is tuned to that share (calibrate.serendipitous_share).
XRAY_DEEP_FRACTION = 0.016
XRAY_DEEP_LIMIT = 2.1e-13
#: The MCXC `Cat` a mock detection is written with: one serendipitous and one RASS survey name.
XRAY_CAT_DEEP, XRAY_CAT_RASS = "400SD", "NORAS/REFLEX"
#: ln error of a measured X-ray flux: RASS detections near the limit hold a few tens of photons (15-30% Poisson
#: errors, Boehringer+2000), and the L500 extrapolation adds its own; the MCXC masses inherit it at 1/1.64.
XRAY_FLUX_ERROR = 0.2
SZ_NOISE_5ARCMIN = 1.42e-4
SZ_NOISE_SLOPE = 0.8
SZ_SNR_MIN = 4.5


def sample_haloes(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n haloes (z, log10 M500c/Msun) distributed as the mass function times the volume."""
    return sample_grid(rng, n, _LOGM_MIN, _LOGM_MAX, _LOGM_BINS)


def halo_density_deg2() -> float:
    """Haloes per deg^2 that sample_haloes draws from: the sky area a universe's drawn haloes fill."""
    return float(density_grid(_LOGM_MIN, _LOGM_MAX, _LOGM_BINS)[2].sum()) * (np.pi / 180.0) ** 2


#: redMaPPer's depth correction: beyond z ~ 0.35 the catalogue keeps lambda >= 20 * scaleval(z)
#: (the i-band limit reaches 0.2 L*), read off the real v5.10 lower lambda envelope.
SCALEVAL_Z = np.array([0.0, 0.35, 0.375, 0.4, 0.425, 0.45, 0.475, 0.5, 0.525, 0.55, 0.7])
SCALEVAL = np.array([1.0, 1.0, 1.09, 1.24, 1.39, 1.58, 1.84, 2.14, 2.5, 2.9, 5.0])


def lambda_min(z_phot: np.ndarray) -> np.ndarray:
    """Richness threshold of the catalogue at photometric redshift z_phot."""
    return rel.LAMBDA_MIN * np.interp(z_phot, SCALEVAL_Z, SCALEVAL)


#: Beyond SDSS's volume limit (z ~ 0.3; Rykoff et al. 2014) redMaPPer extrapolates the members below the i-band
#: limit, and the real catalogue holds 1.5-10 times more clusters above a given lambda at z 0.35-0.55 than at z < 0.3
#: relative to a mass function (docs/mock.md): the catalogue's lambda is inflated there. The mock multiplies the
#: measured richness by exp(DEPTH_BOOST (z_lambda - Z_VOLUME_LIMIT)) beyond it; DEPTH_BOOST is tuned to the real n(z)
#: and to the real labels' bend in z (the x^2 coefficient of the richness relation: -24 real; 3.0 gave -40 in mock v4).
Z_VOLUME_LIMIT = 0.3
DEPTH_BOOST = 2.5


def depth_boost(z_phot: np.ndarray) -> np.ndarray:
    """Factor by which redMaPPer-like richness is inflated beyond the volume limit (1 below it)."""
    return np.exp(DEPTH_BOOST * np.maximum(np.asarray(z_phot) - Z_VOLUME_LIMIT, 0.0))


def z_lambda_err(z: np.ndarray) -> np.ndarray:
    """Photometric redshift error of redMaPPer-like z_lambda (grows with z)."""
    return 0.005 + 0.03 * np.asarray(z) ** 2


def observe_haloes(rng: np.random.Generator, z: np.ndarray, logm: np.ndarray,
                   physics: rel.Physics = rel.VARIANTS["default"]) -> pd.DataFrame:
    """Member counts, photo-z, BCG magnitude, assembly history and X-ray/SZ observables of haloes."""
    n = z.size
    m500 = 10**logm
    a = rng.standard_normal(n)  # assembly history (formation time), see relations.py
    rho = physics.lambda_assembly_corr
    sigma = rel.lambda_ln_scatter(m500) if physics.lambda_ln_scatter is None else physics.lambda_ln_scatter
    lam_true = rel.lambda_mean(m500) * np.exp(sigma * (rho * a + np.sqrt(1 - rho**2) * rng.standard_normal(n)))
    n_red = rng.poisson(lam_true)
    faint_ratio = rel.faint_member_ratio()
    n_faint = rng.poisson(lam_true * faint_ratio)
    background = rel.FIELD_BACKGROUND[0] * lam_true + rel.FIELD_BACKGROUND[1]  # smooth field inside R_lambda
    miscentred = rng.random(n) < rel.MISCENTRED_FRACTION
    offset = np.where(miscentred, rng.gamma(2.0, rel.MISCENTRING_TAU, n), 0.0)  # in R_lambda
    phi = rng.uniform(0.0, 2 * np.pi, n)
    off_mpc = offset * rel.r_lambda_mpc(lam_true)
    bg_noise = rng.normal(0.0, np.sqrt(background))
    zerr = z_lambda_err(z)
    z_phot = z + rng.normal(0.0, 1.0, n) * zerr
    bcg_mr, gap12, c500 = rel.assembly_observables(a, rng.standard_normal(n), rng.standard_normal(n), m500, z,
                                                   physics.gap_assembly_corr, physics.bcg_assembly_mag)
    m_hse = rel.HSE_MASS_BIAS * m500  # the X-ray and SZ relations are calibrated on hydrostatic masses
    lx = rel.lx500(m_hse, z) * np.exp(rng.normal(0.0, rel.LX_LN_SCATTER, n))
    ysz = rel.ysz500(m_hse, z) * np.exp(rng.normal(0.0, rel.YSZ_LN_SCATTER, n))
    return pd.DataFrame(
        {
            "z": z,
            "log10_m500": logm,
            "r500_mpc": rel.r500_mpc(m500, z),
            "lambda_true": lam_true,
            "n_red": n_red,
            "miscentred": miscentred,
            "offset_rlambda": offset,
            "off_x_mpc": off_mpc * np.cos(phi),
            "off_y_mpc": off_mpc * np.sin(phi),
            "n_faint": n_faint,
            "background": background,
            "background_noise": bg_noise,
            "z_phot": z_phot,
            "z_phot_err": zerr,
            "bcg_mr": bcg_mr,
            "assembly": a,
            "c500": c500,
            "gap12": gap12,
            "lx500": lx,
            "y500": ysz,
        }
    )


def measured_richness(seed: int, obs: pd.DataFrame, inter: pd.DataFrame) -> pd.DataFrame:
    """obs with lambda_members, lambda_proj, lambda_obs and lambda_err measured on the rendered members
    (projection.measure_lambda; the line-of-sight groups' mean red-sequence density inside R_lambda,
    `group_background`, is subtracted from lambda_proj as redMaPPer subtracts its background) for the haloes
    that can enter the catalogue; NaN for the others (their count plus every neighbour member cannot reach
    the threshold, or their z_lambda lies outside the catalogue's range)."""
    z_phot = obs.z_phot.to_numpy()
    reach = obs.n_red.to_numpy() + np.bincount(inter.host, weights=inter.n_red, minlength=len(obs))
    boost = depth_boost(z_phot)
    candidate = (((reach + obs.background_noise.to_numpy()) * boost >= lambda_min(z_phot))
                 & (z_phot >= rel.Z_MIN) & (z_phot <= rel.Z_MAX))
    own, proj, radius = (np.full(len(obs), np.nan) for _ in range(3))
    rows = obs.to_dict("records")
    by_host = {h: g.to_dict("records") for h, g in inter[np.isin(inter.host, np.flatnonzero(candidate))].groupby("host")}
    for i in np.flatnonzero(candidate):
        own[i], proj[i], radius[i] = measure_lambda(seed, rows[i], by_host.get(i, []))
    group_bg = group_background(obs.z.to_numpy()) * np.pi * radius**2  # subtracted like the smooth field
    lam_obs = (own + proj - group_bg + obs.background_noise.to_numpy()) * boost
    return obs.assign(lambda_members=own, lambda_proj=proj - group_bg, group_background=group_bg, lambda_obs=lam_obs,
                      lambda_err=np.sqrt(np.maximum(lam_obs, 1.0) + obs.background.to_numpy()))


def sky_positions(rng: np.random.Generator, n: int, area_deg2: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Uniform positions in the SDSS footprint, or in a patch of `area_deg2` around PATCH_CENTRE."""
    if area_deg2 is not None:
        ra0, dec0 = PATCH_CENTRE
        side = np.sqrt(area_deg2)
        boxes = ((ra0 - side / 2 / np.cos(np.radians(dec0)), ra0 + side / 2 / np.cos(np.radians(dec0)),
                  dec0 - side / 2, dec0 + side / 2),)
    else:
        boxes = FOOTPRINT
    sin_lo = np.array([np.sin(np.radians(b[2])) for b in boxes])
    sin_hi = np.array([np.sin(np.radians(b[3])) for b in boxes])
    areas = np.array([np.radians(b[1] - b[0]) for b in boxes]) * (sin_hi - sin_lo)
    k = rng.choice(len(boxes), size=n, p=areas / areas.sum())
    ra_lo = np.array([b[0] for b in boxes])[k]
    ra_hi = np.array([b[1] for b in boxes])[k]
    ra = np.mod(ra_lo + rng.random(n) * (ra_hi - ra_lo), 360.0)
    dec = np.degrees(np.arcsin(sin_lo[k] + rng.random(n) * (sin_hi[k] - sin_lo[k])))
    return ra, dec


def catalogue_centres(h: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(ra, dec) the optical catalogue lists: the halo centre, or the miscentred clusters' offset centre."""
    deg = rel.deg_per_mpc(h.z.to_numpy())
    ra0, dec0, m = h.halo_ra.to_numpy(), h.halo_dec.to_numpy(), h.miscentred.to_numpy()
    ra, dec = deproject(h.off_x_mpc.to_numpy() * deg, h.off_y_mpc.to_numpy() * deg, ra0, dec0)
    return np.where(m, ra, ra0), np.where(m, dec, dec0)


@dataclass
class Universe:
    """All haloes that enter a catalogue, with their truth and observables (one row per halo).

    `ra, dec` are the optical catalogue's centre, `halo_ra, halo_dec` the halo's (the members'
    centre, where the X-ray and SZ catalogues point); they differ for the `miscentred` ones.

    `rm_id` is the redMaPPer MEM_MATCH_ID (0 when not in the optical catalogue); `in_mcxc` and
    `in_psz2` flag the X-ray and SZ detections, `xray_deep` the X-ray ones of the serendipitous surveys;
    `psz2_has_z` whether PSZ2 lists its redshift.
    `area_deg2`: the patch's area, or (footprint-wide) the sky area the drawn haloes fill at the mass
    function's density, so that len(redmapper) / area_deg2 is the mock's cluster density.
    """

    haloes: pd.DataFrame
    seed: int
    area_deg2: float

    @property
    def redmapper(self) -> pd.DataFrame:
        return self.haloes[self.haloes.rm_id > 0].sort_values("rm_id")


def build_universe(n: int, seed: int, area_deg2: float | None = None, variant: str = "default") -> Universe:
    """Draw haloes until `n` pass the redMaPPer-like selection; see the module docstring.

    variant: a key of relations.VARIANTS (`control`: the positive control, see docs/mock.md)."""
    if n < 1:
        raise ValueError("a universe needs at least one cluster (n >= 1)")
    if variant not in rel.VARIANTS:
        raise ValueError(f"unknown universe variant {variant!r}; use one of {', '.join(rel.VARIANTS)}")
    rng = np.random.default_rng(seed)
    batches, neighbours, selected, done = [], [], 0, 0
    for batch in range(10**6):
        if selected >= n:
            break
        z, logm = sample_haloes(rng, max(8 * (n - selected), 2000))
        obs = observe_haloes(rng, z, logm, rel.VARIANTS[variant])
        obs["halo_ra"], obs["halo_dec"] = sky_positions(rng, len(obs), area_deg2)
        obs["ra"], obs["dec"] = catalogue_centres(obs)  # before the richness: line-of-sight groups depend on it
        obs["key_kind"], obs["key_id"] = KEY_HALO, batch * 10**8 + np.arange(len(obs), dtype=np.int64)
        inter = draw_interlopers(rng, z, obs.lambda_true.to_numpy(), obs.key_id.to_numpy())
        obs = measured_richness(seed, obs, inter)
        obs["rm"] = (obs.lambda_obs >= lambda_min(obs.z_phot.to_numpy())).to_numpy()  # NaN: not a candidate
        cum = selected + np.cumsum(obs.rm.to_numpy())
        if cum[-1] >= n:
            obs = obs.iloc[: int(np.searchsorted(cum, n)) + 1]
            inter = inter[inter.host < len(obs)]
        batches.append(obs)
        neighbours.append(inter.assign(host=inter.host + done))
        done += len(obs)
        selected = min(cum[-1], n)
    haloes = pd.concat(batches, ignore_index=True)
    xray, xray_deep, sz, sz_has_z, lx_obs, y_obs = _label_selection(rng, haloes)
    # the universe is the haloes that enter at least one catalogue, and their line-of-sight neighbours
    keep = haloes.rm.to_numpy() | xray | sz
    inter = pd.concat(neighbours, ignore_index=True)
    inter = inter[keep[inter.host.to_numpy()]]
    haloes = haloes.assign(in_mcxc=xray, xray_deep=xray & xray_deep, in_psz2=sz, psz2_has_z=sz_has_z,
                           lx500_obs=lx_obs, y500_obs=y_obs, host_id=0)[keep].reset_index(drop=True)
    order = np.lexsort((np.arange(len(haloes)), -haloes.lambda_obs.to_numpy()))
    rm_rank = np.empty(len(haloes), dtype=np.int64)
    rm_rows = order[haloes.rm.to_numpy()[order]]
    rm_rank[:] = 0
    rm_rank[rm_rows] = np.arange(1, rm_rows.size + 1)
    haloes["rm_id"] = rm_rank
    haloes["halo_id"] = np.arange(1, len(haloes) + 1)
    haloes = pd.concat([haloes, _neighbour_rows(inter, haloes, np.flatnonzero(keep))], ignore_index=True)
    haloes["halo_id"] = np.arange(1, len(haloes) + 1)
    haloes = haloes.drop(columns=["rm", "background_noise"])
    area = float(area_deg2) if area_deg2 is not None else done / halo_density_deg2()
    return Universe(haloes=haloes, seed=seed, area_deg2=area)


def _neighbour_rows(inter: pd.DataFrame, hosts: pd.DataFrame, kept_rows: np.ndarray) -> pd.DataFrame:
    """Truth rows of the kept haloes' line-of-sight neighbours: positioned about their host's halo centre,
    in no catalogue (`host_id` names the host)."""
    pos = np.searchsorted(kept_rows, inter.host.to_numpy())  # host row in `hosts`
    h = hosts.iloc[pos]
    deg = rel.deg_per_mpc(h.z.to_numpy())
    ra, dec = deproject(inter.dx_mpc.to_numpy() * deg, inter.dy_mpc.to_numpy() * deg, h.halo_ra.to_numpy(),
                        h.halo_dec.to_numpy())
    m500 = 10**inter.log10_m500.to_numpy()
    z = inter.z.to_numpy()
    return inter.drop(columns=["host", "dx_mpc", "dy_mpc"]).assign(
        host_id=h.halo_id.to_numpy(), halo_ra=ra, halo_dec=dec, ra=ra, dec=dec, r500_mpc=rel.r500_mpc(m500, z),
        miscentred=False, offset_rlambda=0.0, off_x_mpc=0.0, off_y_mpc=0.0, rm_id=0,
        in_mcxc=False, xray_deep=False, in_psz2=False, psz2_has_z=False, lx500_obs=np.nan, y500_obs=np.nan,
    ).reset_index(drop=True)


def sz_noise(r500_mpc: np.ndarray, z: np.ndarray) -> np.ndarray:
    """1-sigma noise of a measured Y500 (arcmin^2): SZ_NOISE_5ARCMIN (theta500 / 5')^SZ_NOISE_SLOPE, the larger
    the cluster's angular size the noisier (the selection's S/N and the published SNR both divide by it)."""
    theta_arcmin = np.degrees(np.asarray(r500_mpc) / COSMO.angular_diameter_distance(z).to_value("Mpc")) * 60.0
    return SZ_NOISE_5ARCMIN * (theta_arcmin / 5.0) ** SZ_NOISE_SLOPE


def _label_selection(rng: np.random.Generator, h: pd.DataFrame) -> tuple[np.ndarray, ...]:
    """X-ray flux-limited detections, whether each halo lies on the deep (serendipitous) sky, SZ S/N-limited
    detections, whether the SZ entry has a redshift, and the measured L500 (erg/s) and Y500 (arcmin^2): the
    catalogues select on what they measure, and publish it (so their masses carry the Eddington bias)."""
    dl_cm = COSMO.luminosity_distance(h.z.to_numpy()).to_value("cm")
    lx_obs = h.lx500.to_numpy() * np.exp(rng.normal(0.0, XRAY_FLUX_ERROR, len(h)))
    flux = lx_obs / (4 * np.pi * dl_cm**2)
    deep = rng.random(len(h)) < XRAY_DEEP_FRACTION
    limit = np.where(deep, XRAY_DEEP_LIMIT, XRAY_FLUX_LIMIT)
    p_x = 0.5 * (1 + erf((np.log(flux) - np.log(limit)) / (np.sqrt(2) * XRAY_SOFTNESS)))
    xray = rng.random(len(h)) < p_x
    noise = sz_noise(h.r500_mpc.to_numpy(), h.z.to_numpy())
    y_obs = h.y500.to_numpy() + rng.normal(0.0, 1.0, len(h)) * noise
    snr = y_obs / noise
    sz = snr >= SZ_SNR_MIN
    has_z = rng.random(len(h)) < np.where(snr < 6.0, 0.65, 0.95)
    return xray, deep, sz, has_z & sz, lx_obs, y_obs
