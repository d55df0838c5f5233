"""The one cosmology of cmcat: flat LCDM, H0 = 70 km/s/Mpc, Om0 = 0.3 (masses quoted with h = 0.7)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from astropy.cosmology import FlatLambdaCDM

COSMO = FlatLambdaCDM(H0=70.0, Om0=0.3)
#: The power spectrum's parameters beyond COSMO, for the halo mass function.
OB0, SIGMA8, NS = 0.045, 0.8, 0.96


def arcsec_per_mpc(z: np.ndarray | float) -> np.ndarray:
    """Angular size in arcsec of 1 physical (proper) Mpc at redshift z."""
    z = np.asarray(z, dtype=np.float64)
    return COSMO.arcsec_per_kpc_proper(z).value * 1000.0


@lru_cache(maxsize=1)
def _colossus() -> None:
    """Set colossus to this cosmology (once per process)."""
    from colossus.cosmology import cosmology

    cosmology.setCosmology("cmcat", params=dict(flat=True, H0=COSMO.H0.value, Om0=COSMO.Om0, Ob0=OB0, sigma8=SIGMA8,
                                                ns=NS), persistence="")


def halo_mass_function(log10_m500: np.ndarray, z: float) -> np.ndarray:
    """dn/dln M500c of Tinker et al. (2008) at redshift z, per comoving Mpc^3, for log10 M500c/Msun (h = 0.7)."""
    from colossus.lss import mass_function

    _colossus()
    h = COSMO.H0.value / 100.0
    m = 10.0 ** np.asarray(log10_m500, dtype=np.float64) * h
    return mass_function.massFunction(m, z, mdef="500c", model="tinker08", q_out="dndlnM") * h**3
