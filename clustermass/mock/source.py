"""MockSource: the direct (fast) renderer of the mock sky as an ImageSource.

A row that lies within MATCH_ARCSEC of a cluster of the universe (`universe_dir`, written by
`cmcat mock universe`) shows that cluster's true members (and those of its neighbours); any
other row (e.g. a real redMaPPer position, or every row when universe_dir is None) gets a cluster
synthesised from its richness and redshift, deterministic in (seed, position). Field galaxies
and stars come from the same per-cell sky as `cmcat mock frames` (mock/scene.py), so both
paths draw the same galaxies. Seeing and sky noise are those of the mock field whose frame holds
the cutout's centre (mock/instrument.py), as on its frames. Noise is drawn per cutout from (seed,
position).

Its store name is `mock-v{MOCK_VERSION}` (mock/version.py), so cutouts rendered by another mock
version are never mixed with these; a universe of another version is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from clustermass.errors import ImageError
from clustermass.images.base import BANDS, Cutout, CutoutGrid
from clustermass.mock import relations as rel
from clustermass.mock.frames import field_at
from clustermass.mock.galaxies import deproject
from clustermass.mock.instrument import cutout_noise
from clustermass.mock.render import render_cutout
from clustermass.mock.scene import Scene
from clustermass.mock.version import MOCK_VERSION, SOURCE_NAME, MockVersionError, check_universe
from clustermass.mock.writers import read_truth
from clustermass.model.truth import MATCH_ARCSEC
from clustermass.sky import hpx29


def position_key(ra: float, dec: float) -> int:
    """The integer that seeds everything drawn for a position (its order-29 HEALPix index)."""
    return int(hpx29(np.array([ra]), np.array([dec]))[0])


def synthetic_halo(seed: int, ra: float, dec: float, z: float, richness: float) -> dict:
    """A cluster consistent with an observed richness and redshift, deterministic in (seed, position)."""
    key = position_key(ra, dec)
    rng = np.random.default_rng([seed, 3, key])
    lam = float(richness) if np.isfinite(richness) and richness > 0 else 0.0
    n_red = int(max(0, round(lam + rng.normal(0.0, np.sqrt(0.1 * lam + 2.0))))) if lam > 0 else 0
    logm = float(np.log10(rel.m500_of_lambda(max(lam, 5.0)))) + rng.normal(0.0, 0.1)
    # miscentred like the universe's clusters: the halo lies off the catalogue position, a bright satellite on it
    off = rng.gamma(2.0, rel.MISCENTRING_TAU) * float(rel.r_lambda_mpc(max(lam, 1.0)))
    off *= float(rng.random() < rel.MISCENTRED_FRACTION)
    phi = rng.uniform(0.0, 2 * np.pi)
    off_x, off_y = off * np.cos(phi), off * np.sin(phi)
    deg = float(rel.deg_per_mpc(z)) if np.isfinite(z) and z > 0 else 0.0
    halo_ra, halo_dec = deproject(np.array([-off_x * deg]), np.array([-off_y * deg]), ra, dec) if off else ([ra], [dec])
    return {
        "halo_id": 0, "key": key, "ra": ra, "dec": dec, "halo_ra": float(halo_ra[0]), "halo_dec": float(halo_dec[0]),
        "off_x_mpc": off_x if off else 0.0, "off_y_mpc": off_y if off else 0.0, "z": z, "log10_m500": logm, "n_red": n_red,
        "n_faint": int(rng.poisson(n_red * rel.faint_member_ratio())),
        "lambda_true": max(lam, 1.0),
        # assembly history as in the universe (mock/relations.py); its link to richness is not imposed here
        **dict(zip(("bcg_mr", "gap12", "c500"),
                   (float(v) for v in rel.assembly_observables(*rng.standard_normal(3), 10**logm, z)))),
    }


def universe_seed(universe_dir: Path) -> int:
    """The seed a universe folder was made with (universe.json; refused if another mock version made it)."""
    params = check_universe(Path(universe_dir))
    try:
        return int(params["seed"])
    except (KeyError, TypeError, ValueError) as exc:
        raise MockVersionError(f"{Path(universe_dir) / 'universe.json'}: no seed ({exc}); remake it with "
                               "`cmcat mock universe` or pass the seed explicitly") from None


class MockSource:
    """ImageSource that renders cutouts directly from the mock sky (nanomaggies per cutout pixel).

    seed: the render seed (field galaxies, members, noise); default the universe's seed, else 0.
    mock_version: the version a run's stored options name (None: this one); another is refused.
    """

    name = SOURCE_NAME

    def __init__(self, universe_dir: Path | str | None = None, seed: int | None = None, noise: bool = True,
                 mock_version: int | None = None) -> None:
        if mock_version is not None and int(mock_version) != MOCK_VERSION:
            raise MockVersionError(f"these mock options were made for mock v{mock_version}, this cmcat renders mock "
                                   f"v{MOCK_VERSION}; start a new run (without --resume) to render mock v{MOCK_VERSION}")
        haloes = None
        if universe_dir is not None:
            haloes = read_truth(Path(universe_dir))
            if seed is None:
                seed = universe_seed(Path(universe_dir))
        self.seed = int(seed or 0)
        self.noise = noise
        self.scene = Scene(self.seed, haloes)

    def render(self, ra: float, dec: float, z: float, richness: float, grid: CutoutGrid,
               bands: Sequence[str] = BANDS, cluster_id: int | None = None) -> Cutout:
        """One cutout centred on (ra, dec)."""
        try:
            scale = grid.pixel_scale(z)
        except ValueError as exc:
            raise ImageError(f"cluster {cluster_id} at ({ra:.5f}, {dec:.5f}): {exc}") from exc
        halo = self.scene.match(ra, dec, MATCH_ARCSEC)
        extra = []
        if halo is None and np.isfinite(z) and z > 0:
            extra = [synthetic_halo(self.seed, ra, dec, z, richness)]
        idx = [BANDS.index(b) for b in bands]
        half_deg = grid.size * scale / 3600.0 / 2 + 10.0 / 3600.0
        src = self.scene.sources(ra, dec, half_deg, extra)
        cond = field_at(ra, dec).conditions(self.seed)  # the seeing and sky of the frame holding the centre
        img = render_cutout(src.ra, src.dec, src.r_e, src.flux, ra, dec, grid.size, scale, idx, cond.psf_fwhm)
        if self.noise:
            rng = np.random.default_rng([self.seed, 4, position_key(ra, dec)])
            sigma = cutout_noise(scale, cond)[idx][:, None, None].astype(np.float32)
            img += rng.standard_normal(img.shape, dtype=np.float32) * sigma
        meta = {"source": SOURCE_NAME, "mock_version": MOCK_VERSION, "seed": self.seed, "halo_id": None if halo is None else int(halo["halo_id"])}
        return Cutout(cluster_id, float(ra), float(dec), scale, img.astype(np.float32), 1.0, meta)

    def cutouts(self, clusters: pd.DataFrame, grid: CutoutGrid, bands: Sequence[str] = BANDS) -> list[Cutout]:
        """Cutouts of rows with id, ra, dec, z, richness (see the module docstring)."""
        out = []
        for row in clusters.itertuples(index=False):
            z = float(getattr(row, "z", np.nan))
            rich = float(getattr(row, "richness", np.nan))
            cid = getattr(row, "id", None)
            out.append(self.render(float(row.ra), float(row.dec), z, rich, grid, bands,
                                   None if cid is None else int(cid)))
        return out
