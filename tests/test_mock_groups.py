"""Line-of-sight groups (mock/groups.py): a property of the sky, as many as the mass function says, in the
images and in the measured richness."""

from __future__ import annotations

import numpy as np
import pytest

from clustermass.mock import relations as rel
from clustermass.mock.groups import GROUP_LOGM, group_catalogue, group_sources, groups_per_deg2
from clustermass.mock.massfunction import density_grid


def _key(s):
    return {k: i for i, k in enumerate(zip(np.round(s.ra, 9), np.round(s.dec, 9)))}


def test_groups_are_the_same_whichever_region_asks_and_are_in_the_scene():
    from clustermass.mock.galaxies import field_sources
    from clustermass.mock.scene import Scene

    a, b = group_sources(5, 0.05, 1.0, 0.3), group_sources(5, 359.9, 1.1, 0.3)  # overlapping, across RA = 0
    ka, kb = _key(a), _key(b)
    both = ka.keys() & kb.keys()
    assert len(both) > 20 and np.any(a.ra > 359) and np.any(a.ra < 1)
    for k in both:
        assert np.array_equal(a.mag[ka[k]], b.mag[kb[k]]) and a.r_e[ka[k]] == b.r_e[kb[k]]
    assert not _key(group_sources(6, 0.05, 1.0, 0.3)).keys() & ka.keys()  # another seed, another sky
    scene = Scene(5).sources(0.05, 1.0, 0.3, expand=False)
    assert len(scene) == len(field_sources(5, 0.05, 1.0, 0.3)) + len(a)
    assert _key(a).keys() <= _key(scene).keys()


def test_group_density_follows_the_mass_function():
    """Groups per deg^2 and their mass and redshift spread: the Tinker+2008 integral (Poisson within 4 sigma)."""
    radius = 4.0
    cat = group_catalogue(0, 200.0, 30.0, radius)
    sep = np.degrees(np.arccos(np.clip(np.sin(np.radians(cat["dec"])) * np.sin(np.radians(30.0)) + np.cos(np.radians(
        cat["dec"])) * np.cos(np.radians(30.0)) * np.cos(np.radians(cat["ra"] - 200.0)), -1, 1)))
    inside = sep <= radius
    area = 2 * np.pi * (1 - np.cos(np.radians(radius))) * (180 / np.pi) ** 2
    expect = groups_per_deg2() * area
    assert 100 < groups_per_deg2() < 250
    assert abs(inside.sum() - expect) < 4 * np.sqrt(expect)
    z_edges, lm_edges, cells = density_grid(*GROUP_LOGM, 20)
    low_mass = cells[:, lm_edges[1:] <= 13.5].sum() / cells.sum()
    assert np.mean(cat["log10_m500"][inside] < 13.5) == pytest.approx(low_mass, abs=0.03)
    assert np.all((cat["log10_m500"] >= 13.0) & (cat["log10_m500"] <= 14.0))
    assert np.median(cat["z"][inside]) == pytest.approx(np.interp(0.5, np.cumsum(cells.sum(1)) / cells.sum(),
                                                                  z_edges[1:]), abs=0.02)


def test_measured_lambda_counts_the_groups_red_sequence_galaxies_at_the_cluster_redshift():
    """A cluster with no correlated neighbours: lambda_proj is the line-of-sight groups' members that pass the
    red-sequence window of the cluster's redshift inside R_lambda (mostly groups at that redshift)."""
    from clustermass.mock.projection import measure_lambda, red_sequence_window
    from clustermass.mock.render import gnomonic

    proj_total, near_z = 0, 0
    for i in range(40):
        host = {"z": 0.25, "lambda_true": 30.0, "halo_ra": 150.0 + 2.0 * i, "halo_dec": 20.0, "off_x_mpc": 0.0,
                "off_y_mpc": 0.0, "key_kind": 0, "key_id": i, "log10_m500": 14.2, "n_red": 0, "n_faint": 0,
                "bcg_mr": -23.0, "gap12": 1.0, "c500": 3.0}
        own, proj, _ = measure_lambda(3, host, [])
        assert own == 1  # the BCG
        deg = float(rel.deg_per_mpc(0.25))
        g = group_sources(3, host["halo_ra"], host["halo_dec"], 0.5)
        keep = red_sequence_window(g.mag, 0.25)
        xi, eta = gnomonic(g.ra[keep], g.dec[keep], host["halo_ra"], host["halo_dec"])
        r = np.hypot(xi, eta) / deg
        radius = rel.r_lambda_mpc(30.0)
        for _ in range(2):
            radius = rel.r_lambda_mpc(max(1.0 + (r <= radius).sum(), 1.0))
        assert proj == (r <= radius).sum()
        proj_total += proj
        cat = group_catalogue(3, host["halo_ra"], host["halo_dec"], radius * deg)
        near_z += int(np.any(np.abs(cat["z"] - 0.25) < 0.05))
    assert proj_total > 0 and near_z > 0
