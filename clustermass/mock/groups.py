"""Line-of-sight groups: a sky-wide population of group haloes (1e13-1e14 Msun), uncorrelated with the clusters.

Their number is the Tinker et al. (2008) mass function times the comoving volume over the mock's redshift
range (massfunction.py), ~154 per deg^2, drawn per sky cell of GROUP_CELL_DEG: a Poisson number per cell, and
each group's position, z, M500, richness (<lambda|M> with 0.3 ln-scatter), member counts and BCG. Members are
drawn like any halo's (galaxies.cluster_sources): a BCG, red members above 0.05 L* (Schechter) on an NFW
profile of the group's c500 truncated at R_lambda, blue members (galaxies.blue_fraction) on half that
concentration, colours of the red and blue SEDs at the group's redshift; without the magnitude-gap and
miscentring details, and as single Gaussians of their half-light radius (unresolved at SDSS seeing beyond
z ~ 0.05). All random numbers are counter-based (a splitmix64 hash of seed, cell, group and member), so any
region of sky (a cutout, a frame, the richness measurement) sees the same groups and members, and the
members of the groups a region touches are drawn at once, vectorised (a Generator per group or per cell
cost more than the rest of a cutout).
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln, ndtri

from clustermass.mock import relations as rel
from clustermass.mock.galaxies import (RED_SEQUENCE_SCATTER, Sources, _COLOUR_SCATTER_SHAPE, blue_fraction,
                                       blue_sizes_arcsec, cell_geometry, cells_around, deproject, nfw_quantile,
                                       red_sizes_arcsec, schechter_quantile)
from clustermass.mock.massfunction import density_grid, grid_quantile
from clustermass.mock.sed import kcorr

GROUP_LOGM = (13.0, 14.0)  # M500c (Msun); richer haloes are the universe's clusters
GROUP_CELL_DEG = 0.5
#: Members lie within this angle (deg) of their group's centre (R_lambda, capped: only groups below
#: z ~ 0.04 reach it), so a region needs the groups of the cells within it.
GROUP_REACH_DEG = 0.4
_MAX_MEMBERS = 2**12  # member keys: group key * _MAX_MEMBERS + member index
_MAX_SIGMA = 4.0  # richness scatter drawn within +-4 sigma (bounds each group's reach)


def groups_per_deg2() -> float:
    """Expected groups per deg^2 (mass-function integral over GROUP_LOGM and the mock's redshifts)."""
    return float(density_grid(*GROUP_LOGM, 20)[2].sum() * (np.pi / 180.0) ** 2)


def group_cells(seed: int, cells: list[tuple[int, int, int]]) -> dict[str, np.ndarray]:
    """The groups whose centres lie in sky cells (idec, ira, n_ra) of GROUP_CELL_DEG: position, z, log10 M500
    and hash key (a Poisson number per cell, and everything else, from counter-based uniforms)."""
    idec, ira, n_ra = (np.array([c[i] for c in cells], dtype=np.int64) for i in range(3))
    ra_lo, width, s_lo, s_hi, area = cell_geometry(idec, ira, n_ra, GROUP_CELL_DEG)
    cell = _mix(_mix(np.array([seed], np.uint64)) ^ ((idec.astype(np.uint64) << np.uint64(40))
                                                      + (ira.astype(np.uint64) << np.uint64(20))))
    n = _poisson_quantile(_uniforms(cell, 1)[:, 0], groups_per_deg2() * area)
    c = np.repeat(np.arange(n.size), n)
    key = cell[c] + (np.arange(c.size) - np.repeat(np.cumsum(n) - n, n)).astype(np.uint64) + np.uint64(1)
    u = _uniforms(key, 5)
    z, logm = grid_quantile(u[:, 0], u[:, 1], u[:, 2], *GROUP_LOGM, 20)
    return {"ra": ra_lo[c] + u[:, 3] * width[c], "dec": np.degrees(np.arcsin(s_lo[c] + u[:, 4] * (s_hi[c] - s_lo[c]))),
            "z": z, "log10_m500": logm, "key": key}


def group_properties(cat: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """cat (rows of group_cell) with each group's richness, BCG, c500, member counts and reach."""
    u = _uniforms(cat["key"] ^ np.uint64(0xA5A5A5A5A5A5A5A5), 8)
    z, m500 = cat["z"], 10 ** cat["log10_m500"]
    lam = rel.lambda_mean(m500) * np.exp(rel.lambda_ln_scatter(m500) * np.clip(ndtri(u[:, 0]), -_MAX_SIGMA, _MAX_SIGMA))
    bcg, _, c500 = rel.assembly_observables(ndtri(u[:, 1]), ndtri(u[:, 2]), np.zeros(z.size), m500, z)
    f = blue_fraction(z, lam)
    mean = np.stack([np.ones(z.size), lam, lam * rel.faint_member_ratio(), np.zeros(z.size), np.zeros(z.size)], axis=1)
    mean[:, 3:] = mean[:, 1:3] * (f / (1 - f))[:, None]
    counts = _poisson_quantile(u[:, 3:8], mean)
    counts[:, 0] = 1  # the BCG
    return cat | {"lambda_true": lam, "bcg_mr": bcg, "c500": c500, "deg_per_mpc": rel.deg_per_mpc(z),
                  "counts": counts, "r_max_mpc": _r_max_mpc(z, lam)}


def _r_max_mpc(z: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """Radius (Mpc) out to which a group's members lie: R_lambda, at most GROUP_REACH_DEG."""
    return np.minimum(rel.r_lambda_mpc(np.maximum(lam, 1.0)), GROUP_REACH_DEG / rel.deg_per_mpc(z))


def _poisson_quantile(u: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Poisson counts at quantiles u of the given means (arrays of one shape; means below ~300)."""
    k = np.arange(int(np.ceil(mean.max(initial=0.0) + 8 * np.sqrt(mean.max(initial=0.0)) + 10)))
    m = np.maximum(mean, 1e-300)[..., None]
    cdf = np.cumsum(np.exp(k * np.log(m) - m - gammaln(k + 1)), axis=-1)
    return (cdf < u[..., None]).sum(axis=-1)


def group_catalogue(seed: int, ra: float, dec: float, radius_deg: float) -> dict[str, np.ndarray]:
    """The groups (group_properties) whose members may fall within radius_deg (on the sky) of (ra, dec)."""
    reach = radius_deg + GROUP_REACH_DEG
    cat = group_cells(seed, cells_around(ra, dec, reach, GROUP_CELL_DEG))
    near = np.abs(cat["dec"] - dec) <= reach  # a box first (cheap), then the angular separation
    near &= np.abs((cat["ra"] - ra + 180.0) % 360.0 - 180.0) * np.cos(np.radians(min(abs(dec) + reach, 89.9))) <= reach
    cat = {k: v[near] for k, v in cat.items()}
    a, d, a0, d0 = (np.radians(v) for v in (cat["ra"], cat["dec"], ra, dec))
    sep = np.degrees(np.arccos(np.clip(np.sin(d) * np.sin(d0) + np.cos(d) * np.cos(d0) * np.cos(a - a0), -1.0, 1.0)))
    m500 = 10 ** cat["log10_m500"]
    lam_hi = rel.lambda_mean(m500) * np.exp(rel.lambda_ln_scatter(m500) * _MAX_SIGMA)
    may = sep <= radius_deg + _r_max_mpc(cat["z"], lam_hi) * rel.deg_per_mpc(cat["z"])  # the largest reach
    cat = group_properties({k: v[may] for k, v in cat.items()})
    near = sep[may] <= radius_deg + cat["r_max_mpc"] * cat["deg_per_mpc"]
    return {k: v[near] for k, v in cat.items()}


def group_sources(seed: int, ra: float, dec: float, radius_deg: float) -> Sources:
    """Members of the line-of-sight groups within a box of half-size radius_deg around (ra, dec)."""
    return group_members(group_catalogue(seed, ra, dec, radius_deg * np.sqrt(2)), (ra, dec, radius_deg))


def group_members(cat: dict[str, np.ndarray], box: tuple[float, float, float] | None = None) -> Sources:
    """The BCG (first of each group), red and blue members of groups (rows of group_catalogue), as Gaussians;
    only those inside box = (ra, dec, half-size) in deg when given."""
    counts = cat["counts"]
    tot = counts.sum(axis=1)
    g = np.repeat(np.arange(tot.size), tot)
    j = np.arange(g.size) - np.repeat(np.cumsum(tot) - tot, tot)
    kind = (j[:, None] >= np.cumsum(counts, axis=1)[g]).sum(axis=1)  # 0 BCG, 1/2 red bright/faint, 3/4 blue
    u = _uniforms(cat["key"][g] * np.uint64(_MAX_MEMBERS) + j.astype(np.uint64), 6)
    z, deg = cat["z"], cat["deg_per_mpc"]
    rs = rel.r500_mpc(10 ** cat["log10_m500"], z) / cat["c500"]
    blue, bcg = kind >= 3, kind == 0
    r3 = nfw_quantile(u[:, 0], np.where(blue, 2.0, 1.0) * rs[g], cat["r_max_mpc"][g])
    rp = np.where(bcg, 0.01 * np.abs(ndtri(u[:, 1])), r3 * np.sqrt(1.0 - (2 * u[:, 1] - 1) ** 2)) * deg[g]
    phi = 2 * np.pi * u[:, 2]
    ra, dec = deproject(rp * np.cos(phi), rp * np.sin(phi), cat["ra"][g], cat["dec"][g])
    if box is not None:
        dra = np.abs((ra - box[0] + 180.0) % 360.0 - 180.0) * np.cos(np.radians(dec))
        keep = np.flatnonzero((dra <= box[2]) & (np.abs(dec - box[1]) <= box[2]))
        ra, dec, g, kind, u, blue, bcg = ra[keep], dec[keep], g[keep], kind[keep], u[keep], blue[keep], bcg[keep]
    x = schechter_quantile(u[:, 3], (kind == 1) | (kind == 3))
    x[bcg] = np.nan
    abs_r = np.where(bcg, cat["bcg_mr"][g], rel.mstar_r(z[g]) - 2.5 * np.log10(np.where(bcg, 1.0, x)))
    mag = np.where(blue[:, None], kcorr("blue", z)[g], kcorr("red", z)[g]) + (abs_r + rel.distmod(z)[g])[:, None]
    mag += np.where(blue, 0.0, RED_SEQUENCE_SCATTER * ndtri(u[:, 4]))[:, None] * _COLOUR_SCATTER_SHAPE
    e = ndtri(u[:, 5])
    r_e = np.where(blue, blue_sizes_arcsec(np.where(bcg, 1.0, x), e, deg[g]), red_sizes_arcsec(x, cat["bcg_mr"][g], e, deg[g]))
    return Sources(ra, dec, mag, r_e)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on uint64 arrays (a bijective hash)."""
    x = np.asarray(x, dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _uniforms(keys: np.ndarray, n: int) -> np.ndarray:
    """(len(keys), n) uniforms in (0, 1), a hash of each key and column: the same key gives the same numbers."""
    h = _mix(_mix(keys)[:, None] ^ np.arange(n, dtype=np.uint64)[None, :])
    return ((h >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0**53
