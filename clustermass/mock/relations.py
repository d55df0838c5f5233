"""Scaling relations of the mock universe: one function per relation, plain numpy, h = 0.7.

References are in docs/mock.md; every constant that was tuned against the real data says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from clustermass.cosmology import COSMO

# Richness: red members brighter than 0.2 L* inside R_lambda. P(ln lambda | M) is lognormal with Murata et al.'s
# (2018, ApJ 854, 120) form, <ln lambda> = A + B ln(M500c / 2e14 Msun) and sigma(ln lambda) = sigma0 + q ln(M500c /
# 2e14 Msun), the total scatter of the observed richness. Murata's own fit to the abundance and stacked lensing of
# the whole lambda >= 20 catalogue (A 3.04, B 1.00, sigma0 0.485, q -0.171 here; tests/test_mock_relations.py
# converts it) puts X-ray and SZ detected clusters 0.2-0.3 dex too heavy at fixed lambda (mock v6: intercept 14.57
# against the real labels' 14.35): it gives massive haloes few members and reaches the abundance through the scatter
# of light ones, which Murata attribute to projection at 20 <= lambda < 30 and find much reduced at lambda >= 30.
# Calibrations on X-ray and SZ selected clusters find more members at fixed mass and less scatter (e.g. Saro+2015,
# approximate: lambda ~ 36 at 2e14 Msun, sigma ~ 0.2). Mock v7 takes A, B, sigma0 and q between the two, fitted to
# four things at once (docs/mock.md): the weak-lensing mean mass at lambda 40 (Simet+2017), the abundance, the lambda
# distribution (KS) and the labels' mass at fixed lambda.
LAMBDA_PIVOT_M = 2e14  # Msun (M500c)
LAMBDA_LN_MEAN, LAMBDA_SLOPE = 3.30, 1.035  # <ln lambda> = LAMBDA_LN_MEAN + LAMBDA_SLOPE ln(M500c / LAMBDA_PIVOT_M)
LAMBDA_SIGMA0, LAMBDA_SIGMA_SLOPE = 0.42, -0.135  # total scatter of the observed lambda, the same pivot
# The scatter is that of the observed richness; the mock draws the intrinsic part and measures the rest on the
# rendered members (Poisson, projection, background, miscentring: LAMBDA_MEASUREMENT_SCATTER in ln, measured on the
# mock at 1e14-8e14 Msun), keeping at least LAMBDA_MIN_INTRINSIC.
LAMBDA_MEASUREMENT_SCATTER = 0.3
LAMBDA_MIN_INTRINSIC = 0.15
# Mean M500c at fixed observed richness (Simet et al. 2017, MNRAS 466, 3103: weak lensing of SDSS redMaPPer,
# log10 M200m = 14.344 h^-1 Msun at lambda = 40, slope 1.33; converted to M500c at z = 0.25, h = 0.68, with
# Diemer & Joyce (2019) concentrations, which tests/test_mock_relations.py re-derives with colossus):
# what the catalogue-driven renderer gives a cluster of a given richness. The universes reproduce it (docs/mock.md).
MASS_AT_LAMBDA40, MASS_LAMBDA_SLOPE = 10**14.24, 1.30
LAMBDA_PIVOT = 40.0
LAMBDA_MIN = 20.0
Z_MIN, Z_MAX = 0.08, 0.55  # the redMaPPer v5.10 catalogue's z_lambda range

# Schechter luminosity function of red members (Hansen+2009): alpha and M*_r(z=0), passive fading Q.
SCHECHTER_ALPHA = -0.8
MSTAR_R0 = -21.2  # rest-frame r, h = 0.7 (Blanton+2003: -20.44 + 5 log10 h)
EVOLUTION_Q = 1.0  # mag per unit redshift brighter in the past
L_CUT_LAMBDA = 0.2  # lambda counts members above 0.2 L*
L_CUT_FAINT = 0.05  # faint members rendered down to 0.05 L*

# Blue members: share among members above 0.2 L* = (Z0 + DZ z) (lambda/40)^slope (Butcher & Oemler 1984: ~0.03
# at z ~ 0 to ~0.2 at z ~ 0.4 in rich clusters; lower in richer clusters, e.g. Hansen+2009; approximate).
BLUE_FRACTION_Z0, BLUE_FRACTION_DZ, BLUE_FRACTION_LAMBDA_SLOPE = 0.05, 0.45, -0.2

# BCG: L_BCG ~ M^0.3 (Lin & Mohr 2004) with 0.25 mag scatter; zero point tuned to the SPIDERS BCGs.
BCG_MR_PIVOT = -24.0
BCG_MASS_SLOPE = 0.3
BCG_MAG_SCATTER = 0.25

# The smooth field's red-sequence-coloured galaxies inside R_lambda (expected number a lambda + b): redMaPPer
# subtracts them statistically; their Poisson noise stays in lambda (the structures along the line of sight
# are explicit haloes, projection.py).
FIELD_BACKGROUND = (0.1, 2.0)

# Miscentring (Zhang+2019, MNRAS 487, 2578): a share of haloes is catalogued on a bright satellite,
# offset by x R_lambda with x ~ Gamma(2, tau) (mean 2 tau); the richness is then counted about that centre.
MISCENTRED_FRACTION = 0.29  # intrinsic; the selected catalogue's share comes out ~0.25 (lambda is biased low)
MISCENTRING_TAU = 0.18

# Assembly history: one latent a ~ N(0, 1) per halo (a > 0: formed early). It sets the members'
# concentration c500 = C500_MEDIAN exp(C500_LN_SCATTER a) (sigma_ln c ~ 0.3: Bullock+2001, Neto+2007),
# takes a share ASSEMBLY_LAMBDA_CORR of the richness scatter (early-formed haloes have fewer satellites:
# Zentner+2005, Wechsler+2006), brightens the BCG by BCG_ASSEMBLY_MAG a and widens the magnitude gap
# between the BCG and the brightest satellite: ln gap12 = ln GAP_MEDIAN + GAP_LN_SCATTER (rho a + ...).
# GAP_ASSEMBLY_CORR is tuned so adding the gap to the relation of mass on the cluster's own member count
# lowers the mass scatter by ~17% (Hearin+2013: 15-20%, measured on halo-based mock groups); see docs/mock.md.
C500_MEDIAN, C500_LN_SCATTER = 3.0, 0.3
ASSEMBLY_LAMBDA_CORR = -0.95
BCG_ASSEMBLY_MAG = 0.15
GAP_MEDIAN, GAP_LN_SCATTER, GAP_ASSEMBLY_CORR = 0.8, 0.5, 0.78

# Hydrostatic mass bias (1 - b): the X-ray and SZ scaling relations below, and so the MCXC and PSZ2 masses, are
# calibrated on hydrostatic X-ray masses, which lie below lensing (true) masses: 1 - b = 0.7, inside the published
# range (Planck 2015 XXIV: 0.8 as its baseline, 0.58 +- 0.04 to agree with the CMB; weak lensing of the same
# clusters 0.69-0.78, von der Linden+2014, Hoekstra+2015); with 0.8 (mock v6) the labels stayed 0.06 dex heavier
# at fixed lambda than the real ones. The observables are drawn from the relations at HSE_MASS_BIAS x M500 (true),
# so the catalogues' masses are ~0.15 dex below the truth (before their selection's Eddington bias).
HSE_MASS_BIAS = 0.7

# X-ray: L500 (0.1-2.4 keV) - M500 (Pratt+2009 / Arnaud+2010 form); ln-scatter 0.6 (Pratt+2009, total L). The
# normalisation is MCXC's own: the real MCXC's M500 is m500_of_lx(L500) within 0.001 dex (all but a few rows)
# (tests/test_mock_calibration.py), so the mock MCXC converts L500 to mass as the real one does.
LX_NORM = 0.963e44  # erg/s at M500 = 2e14 Msun, z = 0
LX_SLOPE = 1.64
LX_LN_SCATTER = 0.60
# SZ: Y500 - M500 (Planck 2013 XX): Y500 D_A^2 E(z)^(-2/3) = Y* (M/6e14)^1.79, ln-scatter 0.17.
YSZ_NORM = 10**-0.19 * 1e-4  # Mpc^2
YSZ_SLOPE = 1.79
YSZ_LN_SCATTER = 0.17
# The real catalogues disagree by more than their selections explain: for the 92 redMaPPer clusters with both an
# MCXC and a PSZ2 mass, log MSZ - log M_MCXC = +0.073 dex (mean; median +0.088), while the same relations without an
# offset give -0.07 on the mock (the X-ray masses' larger Eddington bias). The cause is not modelled (Planck's Y-M
# calibration, its size-flux prior); the mock PSZ2 writes MSZ this much above the mass its Y500 implies, which
# reproduces the pair offset (calibrate.catalogue_offset; docs/mock.md).
PSZ2_MASS_OFFSET_DEX = 0.12
# The PSZ2 mass's own scatter (mock v8). Planck's blind matched filter finds a cluster at the filter scale of highest
# S/N, where Y5R500 and theta500 are degenerate; MSZ is read where that Y-theta curve crosses the Y-M-theta scaling
# prior (Planck 2013 XX; Planck 2015 XXVII, the PSZ2 paper), so it depends on how the cluster's real pressure profile
# (its extent and concentration) departs from the universal profile the filter assumes, beyond Y500 itself: the
# SZ flux-mass scatter follows the halo's structure, concentration first (Yang, Bhattacharya & Ricker 2010), and the
# scatters of the ICM properties at fixed mass are positively correlated (Sereno et al. 2019, XXL XXXVIII). The mock
# PSZ2 multiplies MSZ by exp(PSZ2_SHAPE_LN_SCATTER x (rho u + sqrt(1 - rho^2) v)), u the halo's L500 scatter draw in
# sigmas, rho = PSZ2_SHAPE_LX_CORR, v its own normal draw; the detection (S/N on Y500) is untouched, so the labelled
# counts do not move. Both values are tuned, not measured: on the real catalogues the PSZ2 labels scatter 0.128 dex
# about the richness relation at every S/N (0.140 / 0.104 / 0.148 at S/N 4.5-5.5 / 5.5-7 / 7-10) while mock v7's
# fell with S/N (0.114 to 0.04: its only PSZ2 scatter was the Y noise and 0.17 in ln Y), and the PSZ2 - MCXC spread of
# the clusters in both catalogues (0.112 dex over 92) asks for that scatter to be shared with the X-ray masses.
PSZ2_SHAPE_LN_SCATTER = 0.30
PSZ2_SHAPE_LX_CORR = 0.7


_Z_TAB = np.linspace(0.001, 1.5, 1500)


@lru_cache(maxsize=1)
def _cosmo_table() -> dict[str, np.ndarray]:
    """Distance modulus, degrees per physical Mpc and rho_crit (Msun/Mpc^3) on a fine z grid (fast lookups)."""
    return {
        "distmod": COSMO.distmod(_Z_TAB).value,
        "deg_per_mpc": COSMO.arcsec_per_kpc_proper(_Z_TAB).value * 1000.0 / 3600.0,
        "rho_c": COSMO.critical_density(_Z_TAB).to_value("Msun / Mpc3"),
    }


def distmod(z: np.ndarray | float) -> np.ndarray:
    """Distance modulus (mag) at z (tabulated)."""
    return np.interp(z, _Z_TAB, _cosmo_table()["distmod"])


def deg_per_mpc(z: np.ndarray | float) -> np.ndarray:
    """Angle (deg) of one physical Mpc at z (tabulated)."""
    return np.interp(z, _Z_TAB, _cosmo_table()["deg_per_mpc"])


def efunc(z: np.ndarray) -> np.ndarray:
    """E(z) = H(z)/H0."""
    return np.asarray(COSMO.efunc(np.asarray(z, dtype=np.float64)))


def r500_mpc(m500: np.ndarray, z: np.ndarray) -> np.ndarray:
    """R500c in physical Mpc of M500c (Msun) at z."""
    rho_c = np.interp(z, _Z_TAB, _cosmo_table()["rho_c"])
    return np.cbrt(3.0 * np.asarray(m500) / (4.0 * np.pi * 500.0 * rho_c))


def lambda_mean(m500: np.ndarray) -> np.ndarray:
    """Median (exp of the mean ln) intrinsic red-member count above 0.2 L* of a halo of M500c (Msun)."""
    return np.exp(LAMBDA_LN_MEAN + LAMBDA_SLOPE * np.log(np.asarray(m500) / LAMBDA_PIVOT_M))


def lambda_total_scatter(m500: np.ndarray) -> np.ndarray:
    """Murata's ln-scatter of the observed richness at fixed M500c (Msun)."""
    return LAMBDA_SIGMA0 + LAMBDA_SIGMA_SLOPE * np.log(np.asarray(m500) / LAMBDA_PIVOT_M)


def lambda_ln_scatter(m500: np.ndarray) -> np.ndarray:
    """Intrinsic ln-scatter of the member count at fixed M500c (Msun): Murata's total less the measured part."""
    total = lambda_total_scatter(m500)
    return np.sqrt(np.maximum(total**2 - LAMBDA_MEASUREMENT_SCATTER**2, LAMBDA_MIN_INTRINSIC**2))


def m500_of_lambda(lam: np.ndarray) -> np.ndarray:
    """Mean M500c (Msun) of clusters of observed richness lambda (Simet+2017, see MASS_AT_LAMBDA40)."""
    return MASS_AT_LAMBDA40 * (np.asarray(lam) / LAMBDA_PIVOT) ** MASS_LAMBDA_SLOPE


def r_lambda_mpc(lam: np.ndarray) -> np.ndarray:
    """redMaPPer aperture R_lambda = 1.0 (lambda/100)^0.2 Mpc/h, in physical Mpc (h = 0.7)."""
    return (np.asarray(lam) / 100.0) ** 0.2 / 0.7


def mstar_r(z: np.ndarray) -> np.ndarray:
    """Characteristic absolute magnitude M*_r(z) of red members (passive evolution)."""
    return MSTAR_R0 - EVOLUTION_Q * np.asarray(z)


def bcg_mr_mean(m500: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Mean rest-frame r absolute magnitude of the BCG."""
    return BCG_MR_PIVOT - 2.5 * BCG_MASS_SLOPE * (np.log10(m500) - 14.5) - EVOLUTION_Q * np.asarray(z)


@dataclass(frozen=True)
class Physics:
    """The knobs a universe variant sets: richness scatter at fixed mass, the assembly latent's share of
    it and how tightly the magnitude gap follows the latent."""

    lambda_ln_scatter: float | None = None  # None: lambda_ln_scatter(M); a number: that, at every mass
    lambda_assembly_corr: float = ASSEMBLY_LAMBDA_CORR
    gap_assembly_corr: float = GAP_ASSEMBLY_CORR
    bcg_assembly_mag: float = BCG_ASSEMBLY_MAG


#: `cmcat mock universe --variant`: the calibrated default, and a positive control whose richness scatter
#: (0.5 in ln) is all assembly history, which the gap and the BCG (0.5 mag per sigma of it) show in the images.
VARIANTS = {"default": Physics(), "control": Physics(lambda_ln_scatter=0.5, lambda_assembly_corr=-1.0,
                                                     gap_assembly_corr=1.0, bcg_assembly_mag=0.5)}


def assembly_observables(a: np.ndarray, e_bcg: np.ndarray, e_gap: np.ndarray, m500: np.ndarray, z: np.ndarray,
                         gap_corr: float = GAP_ASSEMBLY_CORR,
                         bcg_mag: float = BCG_ASSEMBLY_MAG) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(BCG rest-frame M_r, magnitude gap gap12, member concentration c500) of haloes of assembly latent a,
    given unit-normal draws e_bcg and e_gap (the parts a does not set); gap_corr and bcg_mag: how much a
    sets the gap and the BCG (mag per sigma), the BCG keeping at least 0.2 mag of its own scatter."""
    bcg_extra = np.sqrt(max(BCG_MAG_SCATTER**2 - bcg_mag**2, 0.04))
    bcg = bcg_mr_mean(m500, z) - bcg_mag * a + bcg_extra * e_bcg
    rg = gap_corr
    gap = GAP_MEDIAN * np.exp(GAP_LN_SCATTER * (rg * a + np.sqrt(1 - rg**2) * e_gap))
    return bcg, gap, C500_MEDIAN * np.exp(C500_LN_SCATTER * np.asarray(a))


def lx500(m500: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Mean X-ray luminosity L500 (erg/s, 0.1-2.4 keV) of M500c at z."""
    return LX_NORM * efunc(z) ** (7.0 / 3.0) * (np.asarray(m500) / 2e14) ** LX_SLOPE


def m500_of_lx(lx: np.ndarray, z: np.ndarray) -> np.ndarray:
    """The mass an X-ray catalogue infers from L500 (inverse of lx500)."""
    return 2e14 * (np.asarray(lx) / (LX_NORM * efunc(z) ** (7.0 / 3.0))) ** (1.0 / LX_SLOPE)


def ysz500(m500: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Mean SZ Y500 in arcmin^2 of M500c at z."""
    da = COSMO.angular_diameter_distance(np.asarray(z)).to_value("Mpc")
    y_mpc2 = YSZ_NORM * efunc(z) ** (2.0 / 3.0) * (np.asarray(m500) / 6e14) ** YSZ_SLOPE
    return y_mpc2 / da**2 * (180.0 * 60.0 / np.pi) ** 2


def m500_of_ysz(y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """The mass an SZ catalogue infers from Y500 (inverse of ysz500)."""
    return 6e14 * (np.asarray(y) / ysz500(6e14, z)) ** (1.0 / YSZ_SLOPE)


def faint_member_ratio() -> float:
    """Number of members between 0.05 and 0.2 L* per member above 0.2 L* (Schechter alpha)."""
    from scipy.special import gammaincc, gamma

    a = SCHECHTER_ALPHA + 1.0
    upper = lambda x: gammaincc(a, x) * gamma(a)  # noqa: E731  (integral from x to inf, a > 0)
    return float((upper(L_CUT_FAINT) - upper(L_CUT_LAMBDA)) / upper(L_CUT_LAMBDA))
