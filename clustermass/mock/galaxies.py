"""The galaxies and stars of the mock sky, as plain arrays (`Sources`).

- Cluster members (`cluster_sources`): a BCG near the halo centre plus `n_red` red-sequence members
  brighter than 0.2 L* and `n_faint` between 0.05 and 0.2 L*, on a projected NFW profile (the
  halo's c500) truncated at R_lambda, luminosities from a Schechter function with the brightest
  satellite at the halo's magnitude gap, colours of the passive SED at the cluster redshift. One
  Generator per cluster: seeded with (seed, halo key).
- Field galaxies and stars (`field_sources`): drawn per sky cell of CELL_DEG with one
  Generator per (seed, cell), so any region of sky, whether a cutout or a frame, sees exactly
  the same objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Mapping

import numpy as np

from clustermass.mock import relations as rel
from clustermass.mock.sed import kcorr, star_colours
from clustermass.profiles import GAUSS_RE_TO_SIGMA, sersic_mixture

CELL_DEG = 0.05
#: Field galaxies per deg^2 with 14 < r < 23.5 and count slope dlogN/dm (slope of the Yasuda+2001 counts;
#: normalisation tuned to the real photoObj field, 4,560 +- 300 deg^-2 at 18 < r < 21.5).
GAL_DENSITY, GAL_SLOPE, GAL_MAG_RANGE = 23500.0, 0.36, (14.0, 23.5)
#: Share of passive (red-SED) field galaxies, tuned so the 18 < r < 21.5 medians of g-r and r-i match
#: the real photoObj field (median redshift at r: 0.04 + 0.055 (r - 15)).
GAL_RED_FRACTION = 0.42
#: Stars per deg^2 with 14 < r < 22.8 and their count slope (tuned to the real photoObj field).
STAR_DENSITY, STAR_SLOPE, STAR_MAG_RANGE = 4200.0, 0.12, (14.0, 22.8)
#: Faint high-latitude stars on the stellar locus (sed.star_colours): a share of halo turn-off stars
#: (r-i ~ N(0.12, 0.06)), the rest disk K and M dwarfs spread evenly over 0.25 < r-i < 1.65 (the real
#: photoObj field at 18 < r < 21.5: r-i percentiles 10/25/50/75/90 = 0.14/0.36/0.74/1.11/1.41);
#: colours scatter by STAR_COLOUR_SCATTER mag about the locus.
STAR_TURNOFF_FRACTION, STAR_TURNOFF_RI, STAR_DWARF_RI = 0.22, (0.12, 0.06), (0.25, 1.65)
STAR_COLOUR_SCATTER = 0.04
#: Intrinsic red-sequence scatter in g-r (mag; Hao+2009 ~0.05) and how it spreads over ugriz.
RED_SEQUENCE_SCATTER = 0.04
_COLOUR_SCATTER_SHAPE = np.array([2.0, 1.0, 0.0, -0.3, -0.5])
#: Intrinsic red-sequence scatter of g-r and r-i (mag).
RED_SEQUENCE_COLOUR_SCATTER = RED_SEQUENCE_SCATTER * np.abs(np.diff(_COLOUR_SCATTER_SHAPE)[1:3])
#: Independent colour scatter per band about r (r itself exact).
_COLOUR_NOISE_SHAPE = np.array([1.0, 1.0, 0.0, 1.0, 1.0])


@dataclass
class Sources:
    """Galaxies/stars: positions (deg), ugriz magnitudes (AB), half-light radii (arcsec) and Sersic index
    (0: a Gaussian of that half-light radius, e.g. stars and field galaxies; see `expand_profiles`)."""

    ra: np.ndarray
    dec: np.ndarray
    mag: np.ndarray  # (N, 5)
    r_e: np.ndarray
    sersic: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.sersic is None:
            self.sersic = np.zeros(self.ra.size)

    def __len__(self) -> int:
        return int(self.ra.size)

    @property
    def flux(self) -> np.ndarray:
        """(N, 5) fluxes in nanomaggies."""
        return 10.0 ** (-0.4 * (self.mag - 22.5))

    @staticmethod
    def concat(parts: list["Sources"]) -> "Sources":
        if not parts:
            return Sources(np.zeros(0), np.zeros(0), np.zeros((0, 5)), np.zeros(0))
        return Sources(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("ra", "dec", "mag", "r_e", "sersic")))


#: Galaxies with a Sersic index and a half-light radius above this (arcsec) are drawn as a mixture of
#: Gaussians (resolved on frames; a BCG's envelope on cutouts); smaller ones stay one Gaussian.
MOG_MIN_RE = 1.0


def expand_profiles(src: Sources) -> Sources:
    """Sources with every resolved Sersic galaxy replaced by its Gaussian components (same centre, flux split)."""
    big = (src.sersic > 0) & (src.r_e > MOG_MIN_RE)
    if not big.any():
        return src
    parts = [Sources(src.ra[~big], src.dec[~big], src.mag[~big], src.r_e[~big])]
    for n in np.unique(src.sersic[big]).astype(int):
        sel = np.flatnonzero(big & (src.sersic == n))
        w, ratio = sersic_mixture(int(n))
        k = w.size
        parts.append(Sources(np.repeat(src.ra[sel], k), np.repeat(src.dec[sel], k),
                             (src.mag[sel][:, None, :] - 2.5 * np.log10(w)[None, :, None]).reshape(-1, 5),
                             (src.r_e[sel][:, None] * ratio[None, :] / GAUSS_RE_TO_SIGMA).reshape(-1)))
    return Sources.concat(parts)


def deproject(xi: np.ndarray, eta: np.ndarray, ra0, dec0) -> tuple[np.ndarray, np.ndarray]:
    """Inverse gnomonic projection: standard coordinates (deg, xi east) about (ra0, dec0) -> ra, dec (deg);
    ra0, dec0 are one centre or one per position."""
    x, y = np.radians(xi), np.radians(eta)
    d0 = np.radians(dec0)
    rho = np.hypot(x, y)
    c = np.arctan(rho)
    sin_c, cos_c = np.sin(c), np.cos(c)
    with np.errstate(invalid="ignore", divide="ignore"):
        dec = np.arcsin(cos_c * np.sin(d0) + np.where(rho > 0, y * sin_c * np.cos(d0) / rho, 0.0))
    ra = ra0 + np.degrees(np.arctan2(x * sin_c, rho * np.cos(d0) * cos_c - y * np.sin(d0) * sin_c))
    return np.mod(ra, 360.0), np.degrees(dec)


@lru_cache(maxsize=1)
def _schechter_icdf() -> tuple[np.ndarray, np.ndarray, float]:
    """Cumulative number of Schechter members above x = L/L* on a log grid (for inverse sampling)."""
    x = np.logspace(np.log10(rel.L_CUT_FAINT), np.log10(30.0), 2000)
    pdf = x ** (rel.SCHECHTER_ALPHA + 1) * np.exp(-x)  # per d ln x
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (pdf[1:] + pdf[:-1]) * np.diff(np.log(x)))])
    return x, cdf, float(np.interp(rel.L_CUT_LAMBDA, x, cdf))


def schechter_draw(rng: np.random.Generator, n: int, bright: bool) -> np.ndarray:
    """L/L* of n members above 0.2 L* (bright) or between 0.05 and 0.2 L*."""
    return schechter_quantile(rng.random(n), bright)


def schechter_quantile(u: np.ndarray, bright: np.ndarray | bool) -> np.ndarray:
    """L/L* at quantiles u in [0, 1) of the Schechter members above 0.2 L* (bright) or between 0.05 and 0.2 L*."""
    x, cdf, c_cut = _schechter_icdf()
    lo, hi = np.where(bright, c_cut, 0.0), np.where(bright, cdf[-1], c_cut)
    return np.interp(lo + u * (hi - lo), cdf, x)


@lru_cache(maxsize=1)
def _nfw_icdf() -> tuple[np.ndarray, np.ndarray]:
    s = np.linspace(0.0, 20.0, 4000)
    m = np.log1p(s) - s / (1 + s)
    return s, m


def nfw_radii(rng: np.random.Generator, n: int, rs: float, r_max: float) -> np.ndarray:
    """3-D radii (same unit as rs) of an NFW profile truncated at r_max."""
    return nfw_quantile(rng.random(n), rs, r_max)


def nfw_quantile(u: np.ndarray, rs: np.ndarray | float, r_max: np.ndarray | float) -> np.ndarray:
    """3-D radii at quantiles u of NFW profiles of scale radius rs truncated at r_max (one or one per u)."""
    s, m = _nfw_icdf()
    m_max = np.interp(np.asarray(r_max) / rs, s, m)
    return rs * np.interp(u * m_max, m, s)


#: The satellite that sets the magnitude gap is the brightest within this projected radius (Mpc) of the halo
#: centre when there is one (gaps are measured within ~0.5 R200: Hearin+2013, Golden-Marx & Miller 2018).
GAP_RADIUS_MPC = 0.5


def cluster_sources(seed: int, key: tuple[int, ...], h: Mapping[str, Any]) -> Sources:
    """The BCG (first) and red members of one halo, deterministic in seed and the non-negative ints of key.

    h: the halo's truth (scene.HALO_COLUMNS): members about (halo_ra, halo_dec) on an NFW profile of
    concentration c500 truncated at R_lambda; the brightest satellite (within GAP_RADIUS_MPC) is gap12 mag
    fainter than the BCG (brighter satellites are dimmed to just below it); a miscentred halo (off_x_mpc, off_y_mpc != 0: the
    catalogue centre's offset east and north, Mpc) has that satellite at the catalogue centre.
    """
    rng = np.random.default_rng([seed, 1, *(int(k) for k in key)])
    z, bcg_mr = float(h["z"]), float(h["bcg_mr"])
    r500 = float(rel.r500_mpc(10 ** float(h["log10_m500"]), z))
    r_max = float(rel.r_lambda_mpc(max(float(h["lambda_true"]), 1.0)))
    x = np.concatenate([schechter_draw(rng, int(h["n_red"]), True), schechter_draw(rng, int(h["n_faint"]), False)])
    n = x.size
    r3 = nfw_radii(rng, n, r500 / float(h["c500"]), r_max)
    cos_t = rng.uniform(-1.0, 1.0, n)
    phi = rng.uniform(0.0, 2 * np.pi, n)
    rp = r3 * np.sqrt(1.0 - cos_t**2)
    bcg_off = rng.normal(0.0, 0.01, 2)  # Mpc; the BCG comes first
    deg_per_mpc = float(rel.deg_per_mpc(z))
    xi = np.concatenate([bcg_off[:1], rp * np.cos(phi)]) * deg_per_mpc
    eta = np.concatenate([bcg_off[1:], rp * np.sin(phi)]) * deg_per_mpc
    sat_r = rel.mstar_r(z) - 2.5 * np.log10(x)
    if n:
        inner = rp < GAP_RADIUS_MPC
        j = int(np.argmax(np.where(inner, x, -1.0)) if inner.any() else np.argmax(x))  # it sets the magnitude gap
        sat_r = np.maximum(sat_r, bcg_mr + float(h["gap12"]) + 0.1)
        sat_r[j] = bcg_mr + float(h["gap12"])
        if h["off_x_mpc"] or h["off_y_mpc"]:  # the catalogue centred on it
            xi[j + 1], eta[j + 1] = float(h["off_x_mpc"]) * deg_per_mpc, float(h["off_y_mpc"]) * deg_per_mpc
    ra_s, dec_s = deproject(xi, eta, float(h["halo_ra"]), float(h["halo_dec"]))
    abs_r = np.concatenate([[bcg_mr], sat_r])
    dm = float(rel.distmod(z))
    mag = abs_r[:, None] + dm + kcorr("red", np.full(n + 1, z))
    mag += rng.normal(0.0, RED_SEQUENCE_SCATTER, n + 1)[:, None] * _COLOUR_SCATTER_SHAPE
    r_e = red_sizes_arcsec(np.concatenate([[np.nan], x]), bcg_mr, rng.normal(0.0, 1.0, n + 1), deg_per_mpc)
    red = Sources(ra_s, dec_s, mag, r_e, np.full(n + 1, 4.0))
    return Sources.concat([red, _blue_members(rng, h, r500, r_max)])  # drawn last: the red draws stay as they were


def red_sizes_arcsec(x: np.ndarray, bcg_mr: np.ndarray | float, e: np.ndarray, deg_per_mpc) -> np.ndarray:
    """Half-light radii (arcsec) of red members of L/L* x (4 kpc (L/L*)^0.6; Shen+2003) and of BCGs where x is
    NaN (12 kpc at M_r = -24, ~L^0.6), with 0.2 ln-scatter (e unit normal); deg_per_mpc at their redshift."""
    kpc = np.where(np.isnan(x), 12.0 * 10 ** (0.24 * (rel.BCG_MR_PIVOT - np.asarray(bcg_mr))), 4.0 * np.nan_to_num(x) ** 0.6)
    return kpc * np.exp(0.2 * e) * deg_per_mpc * 3.6  # arcsec (deg/Mpc * 3600 / 1000)


def blue_sizes_arcsec(x: np.ndarray, e: np.ndarray, deg_per_mpc) -> np.ndarray:
    """Half-light radii (arcsec) of blue members of L/L* x: 5 kpc (L/L*)^0.5 with 0.25 ln-scatter (e unit normal)."""
    return 5.0 * x**0.5 * np.exp(0.25 * e) * deg_per_mpc * 3.6


def blue_fraction(z: np.ndarray, lambda_true: np.ndarray) -> np.ndarray:
    """Share of blue (star-forming) members among those brighter than 0.2 L*: rising with z (Butcher & Oemler
    1984), lower in rich clusters (Hansen+2009)."""
    f = (rel.BLUE_FRACTION_Z0 + rel.BLUE_FRACTION_DZ * np.asarray(z)) * (np.maximum(lambda_true, 1.0) / 40.0) ** rel.BLUE_FRACTION_LAMBDA_SLOPE
    return np.clip(f, 0.0, 0.6)


def _blue_members(rng: np.random.Generator, h: Mapping[str, Any], r500: float, r_max: float) -> Sources:
    """Blue members of a halo (blue SED, exponential discs, half the concentration of the red ones)."""
    z = float(h["z"])
    f = float(blue_fraction(z, float(h["lambda_true"])))
    ratio = f / (1.0 - f)
    x = np.concatenate([schechter_draw(rng, int(rng.poisson(ratio * int(h["n_red"]))), True),
                        schechter_draw(rng, int(rng.poisson(ratio * int(h["n_faint"]))), False)])
    n = x.size
    r3 = nfw_radii(rng, n, 2.0 * r500 / float(h["c500"]), r_max)
    rp = r3 * np.sqrt(1.0 - rng.uniform(-1.0, 1.0, n) ** 2)
    phi = rng.uniform(0.0, 2 * np.pi, n)
    deg_per_mpc = float(rel.deg_per_mpc(z))
    ra, dec = deproject(rp * np.cos(phi) * deg_per_mpc, rp * np.sin(phi) * deg_per_mpc, float(h["halo_ra"]),
                        float(h["halo_dec"]))
    k_blue, k_red = kcorr("blue", np.full(n, z)), kcorr("red", np.array([z]))
    floor = float(h["bcg_mr"]) + float(h["gap12"]) + 0.1 + k_red[0, 2] - (k_blue[0, 2] if n else 0.0)  # keep the r gap
    abs_r = np.maximum(rel.mstar_r(z) - 2.5 * np.log10(x), floor)
    mag = abs_r[:, None] + float(rel.distmod(z)) + k_blue
    r_e = blue_sizes_arcsec(x, rng.normal(0.0, 1.0, n), deg_per_mpc)
    return Sources(ra, dec, mag, r_e, np.ones(n))


def _power_law_mags(rng: np.random.Generator, n: int, slope: float, lo: float, hi: float) -> np.ndarray:
    """n magnitudes with dN/dm ~ 10^(slope m) on [lo, hi]."""
    span = 10 ** (slope * (hi - lo)) - 1.0
    return lo + np.log10(1.0 + rng.random(n) * span) / slope


def cells_in_box(ra_lo: float, ra_hi: float, dec_lo: float, dec_hi: float,
                 cell_deg: float = CELL_DEG) -> list[tuple[int, int, int]]:
    """(idec, ira, n_ra) of the sky cells (of side cell_deg) overlapping an RA/Dec box (RA may wrap: ra_lo > ra_hi)."""
    out = []
    for idec in range(int(np.floor((dec_lo + 90.0) / cell_deg)), int(np.floor((dec_hi + 90.0) / cell_deg)) + 1):
        dec_c = -90.0 + (idec + 0.5) * cell_deg
        n_ra = max(1, int(360.0 * np.cos(np.radians(dec_c)) / cell_deg))
        width = 360.0 / n_ra
        i_lo, i_hi = int(np.floor(ra_lo / width)), int(np.floor(ra_hi / width))
        if ra_hi < ra_lo:
            i_hi += n_ra
        for i in range(i_lo, min(i_hi, i_lo + n_ra - 1) + 1):
            out.append((idec, i % n_ra, n_ra))
    return out


def cell_geometry(idec, ira, n_ra, cell_deg: float = CELL_DEG) -> tuple:
    """(ra_lo, width in RA (deg), sin dec_lo, sin dec_hi, area (deg^2)) of sky cells of cells_in_box (one or arrays)."""
    dec_lo = -90.0 + np.asarray(idec) * cell_deg
    dec_hi = np.minimum(dec_lo + cell_deg, 90.0)
    ra_lo, width = ira * 360.0 / n_ra, 360.0 / n_ra
    s_lo, s_hi = np.sin(np.radians(dec_lo)), np.sin(np.radians(dec_hi))
    return ra_lo, width, s_lo, s_hi, np.radians(width) * (s_hi - s_lo) * (180.0 / np.pi) ** 2


def _cell_draws(seed: int, idec: int, ira: int, n_ra: int) -> dict[str, np.ndarray]:
    """The random draws of one sky cell (one Generator per (seed, cell)): positions, r mags, kinds."""
    rng = np.random.default_rng([seed, 2, idec, ira])
    ra_lo, width, s_lo, s_hi, area = cell_geometry(idec, ira, n_ra)
    n_gal, n_star = rng.poisson(GAL_DENSITY * area), rng.poisson(STAR_DENSITY * area)
    n = n_gal + n_star
    m_gal = _power_law_mags(rng, n_gal, GAL_SLOPE, *GAL_MAG_RANGE)
    return {
        "ra": ra_lo + rng.random(n) * width,
        "dec": np.degrees(np.arcsin(s_lo + rng.random(n) * (s_hi - s_lo))),
        "m_r": np.concatenate([m_gal, _power_law_mags(rng, n_star, STAR_SLOPE, *STAR_MAG_RANGE)]),
        "z": np.concatenate([np.clip((0.04 + 0.055 * (m_gal - 15.0)) * np.exp(rng.normal(0.0, 0.35, n_gal)),
                                     0.02, 1.2), np.zeros(n_star)]),
        "kind": np.concatenate([np.where(rng.random(n_gal) < GAL_RED_FRACTION, 1, 2), np.zeros(n_star, int)]),
        "ln_size": np.concatenate([rng.normal(0.0, 0.25, n_gal), np.zeros(n_star)]),
        "ri": np.concatenate([np.zeros(n_gal), _star_ri(rng, n_star)]),
        "colour_noise": rng.normal(0.0, STAR_COLOUR_SCATTER, (n, 5)),
    }


def _star_ri(rng: np.random.Generator, n: int) -> np.ndarray:
    """r-i of n faint high-latitude stars: halo turn-off stars and disk K/M dwarfs (see STAR_* above)."""
    turnoff = rng.random(n) < STAR_TURNOFF_FRACTION
    return np.where(turnoff, rng.normal(*STAR_TURNOFF_RI, n), rng.uniform(*STAR_DWARF_RI, n))


def _colourise(d: dict[str, np.ndarray]) -> Sources:
    """Sources from cell draws: colours from the red/blue SEDs (galaxies) or the stellar locus (stars)."""
    k_red, k_blue = kcorr("red", d["z"]), kcorr("blue", d["z"])
    k = np.where((d["kind"] == 1)[:, None], k_red - k_red[:, 2:3], k_blue - k_blue[:, 2:3])
    star = d["kind"] == 0
    k[star] = star_colours(d["ri"][star]) + d["colour_noise"][star] * _COLOUR_NOISE_SHAPE
    r_e = np.where(star, 0.0, 1.5 * 10 ** (-0.12 * (d["m_r"] - 18.0)) * np.exp(d["ln_size"]))
    return Sources(d["ra"], d["dec"], d["m_r"][:, None] + k, r_e)


def cells_around(ra: float, dec: float, radius_deg: float, cell_deg: float = CELL_DEG) -> list[tuple[int, int, int]]:
    """cells_in_box of the box of half-size radius_deg (deg on the sky) around (ra, dec)."""
    dra = radius_deg / max(np.cos(np.radians(min(abs(dec) + radius_deg, 89.9))), 1e-3)
    ra_lo, ra_hi = np.mod(ra - dra, 360.0), np.mod(ra + dra, 360.0)
    return cells_in_box(ra_lo, ra_hi, dec - radius_deg, dec + radius_deg, cell_deg)


def field_sources(seed: int, ra: float, dec: float, radius_deg: float) -> Sources:
    """All field galaxies and stars of the cells within a box of half-size radius_deg around (ra, dec)."""
    draws = [_cell_draws(seed, *c) for c in cells_around(ra, dec, radius_deg)]
    if not draws:
        return Sources.concat([])
    return _colourise({k: np.concatenate([d[k] for d in draws]) for k in draws[0]})
