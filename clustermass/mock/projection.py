"""Projection: group-scale haloes along each cluster's line of sight, and richness measured on members.

Every halo gets Poisson(PROJ_RATE) correlated neighbours (`draw_interlopers`):
M500 from dn/dln M ~ M^-0.9 over 1e13-5e13 Msun, a redshift offset N(0, PROJ_DZ (1 + z)) (structure
within the red-sequence colour window) and a projected offset 1.5 R_lambda U from the halo centre
(surface density ~ 1/r, the clustering of haloes around clusters). They are haloes of the universe:
their members are rendered like the cluster's (scene.halo_sources).

The sky-wide line-of-sight groups (groups.py) lie along every line of sight too; `group_background` is
their mean red-sequence density at a cluster redshift, which redMaPPer's background subtraction removes.

`measure_lambda` is a redMaPPer-like membership count on those rendered members (the cluster's, its
neighbours' and the groups', drawn with the universe's seed exactly as the images draw them): galaxies brighter
than 0.2 L* at the cluster redshift (r band), with g-r and r-i within a chi^2 < RS_CHI2 window of the
red sequence at the cluster redshift (intrinsic scatter and a photometric floor), inside R_lambda of the
catalogue centre (R_lambda from the count, iterated twice). The smooth field's red-sequence-coloured
background is subtracted statistically: its noise is added by the caller (population.py).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

from clustermass.mock import relations as rel
from clustermass.mock.galaxies import RED_SEQUENCE_COLOUR_SCATTER, cluster_sources
from clustermass.mock.groups import group_catalogue, group_members, group_sources
from clustermass.mock.render import gnomonic
from clustermass.mock.sed import kcorr

PROJ_RATE = 0.9
PROJ_AREA_SLOPE = 0.0
PROJ_DZ = 0.03
PROJ_LOGM = (13.0, 13.7)  # up to 5e13 Msun: richer neighbours are clusters of their own (percolation)
PROJ_MASS_SLOPE = -0.9  # dn/dln M ~ M^slope
PROJ_REACH = 1.5  # neighbours out to this many R_lambda (projected)
MAX_INTERLOPERS = 63
#: Line-of-sight groups are counted out to this many R_lambda(lambda_true) (the count's own R_lambda grows
#: with the count as R ~ lambda^0.2: 2x reaches a count 30 times lambda_true).
GROUP_COUNT_REACH = 2.0
#: chi^2 (two colours) of the red-sequence window, and the photometric colour error floor (mag).
RS_CHI2, RS_PHOT_ERR = 6.0, 0.03
#: Member keys: (KEY_HALO, key) for universe haloes, (KEY_INTERLOPER, key) for their neighbours.
KEY_HALO, KEY_INTERLOPER = 0, 2


def draw_interlopers(rng: np.random.Generator, z: np.ndarray, lam_true: np.ndarray, keys: np.ndarray) -> pd.DataFrame:
    """Neighbours of haloes (z, lambda_true, member keys): one row each, with `host` (index into the
    haloes), offsets (Mpc, projected at the host's redshift), z and the member-drawing inputs."""
    r_lam = rel.r_lambda_mpc(np.maximum(lam_true, 1.0))
    n_each = np.minimum(rng.poisson(PROJ_RATE * (r_lam / rel.r_lambda_mpc(40.0)) ** PROJ_AREA_SLOPE), MAX_INTERLOPERS)
    host = np.repeat(np.arange(z.size), n_each)
    k = np.arange(host.size) - np.repeat(np.cumsum(n_each) - n_each, n_each)
    n = host.size
    lo, hi = (10 ** (PROJ_MASS_SLOPE * v) for v in PROJ_LOGM)
    logm = np.log10(lo + rng.random(n) * (hi - lo)) / PROJ_MASS_SLOPE
    m500 = 10**logm
    zi = np.clip(z[host] + rng.normal(0.0, PROJ_DZ, n) * (1 + z[host]), 0.01, 1.1)
    r_p = PROJ_REACH * r_lam[host] * rng.random(n)
    phi = rng.uniform(0.0, 2 * np.pi, n)
    a = rng.standard_normal(n)
    lam = rel.lambda_mean(m500) * np.exp(rel.lambda_ln_scatter(m500) * rng.standard_normal(n))
    bcg, gap, c500 = rel.assembly_observables(a, rng.standard_normal(n), rng.standard_normal(n), m500, zi)

    return pd.DataFrame({
        "host": host, "key_kind": KEY_INTERLOPER, "key_id": keys[host] * (MAX_INTERLOPERS + 1) + k,
        "dx_mpc": r_p * np.cos(phi), "dy_mpc": r_p * np.sin(phi), "z": zi, "log10_m500": logm,
        "lambda_true": lam, "n_red": rng.poisson(lam), "n_faint": rng.poisson(lam * rel.faint_member_ratio()),
        "bcg_mr": bcg, "gap12": gap, "c500": c500, "assembly": a,
    })


def magnitude_limit(z: float) -> float:
    """Apparent r of a 0.2 L* red-sequence galaxy at redshift z (richness counts brighter ones)."""
    k = kcorr("red", np.array([z]))[0]
    return float(rel.mstar_r(z) + 2.5 * np.log10(1 / rel.L_CUT_LAMBDA) + rel.distmod(z) + k[2])


def red_sequence_window(mag: np.ndarray, z: float) -> np.ndarray:
    """(N,) bool: r brighter than 0.2 L* at z and g-r, r-i within the red-sequence window at z."""
    k = kcorr("red", np.array([z]))[0]
    m_lim = magnitude_limit(z)
    sig = np.sqrt(RED_SEQUENCE_COLOUR_SCATTER**2 + RS_PHOT_ERR**2)
    dgr = (mag[:, 1] - mag[:, 2]) - (k[1] - k[2])
    dri = (mag[:, 2] - mag[:, 3]) - (k[2] - k[3])
    return (mag[:, 2] <= m_lim + 1e-6) & ((dgr / sig[0]) ** 2 + (dri / sig[1]) ** 2 < RS_CHI2)


def _halo_dict(row: dict, ra: float, dec: float) -> dict:
    """A halo's member-drawing inputs centred at (ra, dec) deg near the origin (for measurement)."""
    return {**row, "halo_ra": ra, "halo_dec": dec, "off_x_mpc": row.get("off_x_mpc", 0.0),
            "off_y_mpc": row.get("off_y_mpc", 0.0)}


def measure_lambda(seed: int, host: dict, neighbours: list[dict]) -> tuple[int, int, float]:
    """(members of the cluster, members of its neighbours and of line-of-sight groups, R_lambda in Mpc) counted
    by the redMaPPer-like filter.

    host: a halo's truth row (z, lambda_true, halo_ra, halo_dec, off_x_mpc, off_y_mpc, key_kind, key_id, member
    inputs); neighbours: rows of draw_interlopers for it. Positions are worked out about the halo centre.
    """
    z = float(host["z"])
    deg = float(rel.deg_per_mpc(z))
    parts, own = [], []
    for row, kind in [(host, True)] + [(nb, False) for nb in neighbours]:
        cx, cy = (0.0, 0.0) if kind else (row["dx_mpc"] * deg, row["dy_mpc"] * deg)
        src = cluster_sources(seed, (int(row["key_kind"]), int(row["key_id"])), _halo_dict(row, cx % 360.0, cy))
        keep = red_sequence_window(src.mag, z)
        xi, eta = gnomonic(src.ra[keep], src.dec[keep], 0.0, 0.0)
        parts.append(np.hypot(xi / deg - host["off_x_mpc"], eta / deg - host["off_y_mpc"]))
        own.append(np.full(int(keep.sum()), kind))
    reach = (np.hypot(host["off_x_mpc"], host["off_y_mpc"]) + GROUP_COUNT_REACH * float(rel.r_lambda_mpc(
        max(float(host["lambda_true"]), 1.0)))) * deg
    groups = group_members(group_catalogue(seed, float(host["halo_ra"]), float(host["halo_dec"]), reach))
    keep = red_sequence_window(groups.mag, z)
    xi, eta = gnomonic(groups.ra[keep], groups.dec[keep], float(host["halo_ra"]), float(host["halo_dec"]))
    parts.append(np.hypot(xi / deg - host["off_x_mpc"], eta / deg - host["off_y_mpc"]))
    own.append(np.zeros(int(keep.sum()), bool))
    r = np.concatenate(parts)
    is_own = np.concatenate(own)
    radius = float(rel.r_lambda_mpc(max(float(host["lambda_true"]), 1.0)))
    for _ in range(2):  # R_lambda from the count itself
        inside = r <= radius
        radius = float(rel.r_lambda_mpc(max(float(inside.sum()), 1.0)))
    inside = r <= radius
    return int((inside & is_own).sum()), int((inside & ~is_own).sum()), radius


#: Redshifts at which the groups' mean red-sequence density is tabulated, and the sky box (centre, half-size in
#: deg, render seed) it is averaged over.
_BACKGROUND_Z = np.arange(0.05, 0.71, 0.025)
_BACKGROUND_BOX = (180.0, 0.0, 2.5, 12345)


@lru_cache(maxsize=1)
def _group_background_table() -> np.ndarray:
    ra, dec, half, seed = _BACKGROUND_BOX
    src = group_sources(seed, ra, dec, half)
    area_deg2 = (2 * half) ** 2
    return np.array([red_sequence_window(src.mag, float(z)).sum() / area_deg2 / rel.deg_per_mpc(z) ** -2
                     for z in _BACKGROUND_Z])


def group_background(z: np.ndarray | float) -> np.ndarray:
    """Mean number per physical Mpc^2 of line-of-sight groups' members that pass the red-sequence window of a
    cluster at redshift z: the part of redMaPPer's statistical background that the groups make (averaged over
    25 deg^2 of one mock sky)."""
    return np.interp(z, _BACKGROUND_Z, _group_background_table())
