"""The one cosmology of cmcat: flat LCDM, H0 = 70 km/s/Mpc, Om0 = 0.3 (masses quoted with h = 0.7)."""

from __future__ import annotations

import numpy as np
from astropy.cosmology import FlatLambdaCDM

COSMO = FlatLambdaCDM(H0=70.0, Om0=0.3)


def arcsec_per_mpc(z: np.ndarray | float) -> np.ndarray:
    """Angular size in arcsec of 1 physical (proper) Mpc at redshift z."""
    z = np.asarray(z, dtype=np.float64)
    return COSMO.arcsec_per_kpc_proper(z).value * 1000.0
