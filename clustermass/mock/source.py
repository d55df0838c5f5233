"""MockSource: the direct (fast) renderer of the mock sky as an ImageSource.

A row that lies within MATCH_ARCSEC of a cluster of the universe (`universe_dir`, written by
`cmcat mock universe`) shows that cluster's true members (and those of its neighbours); any
other row (e.g. a real redMaPPer position, or every row when universe_dir is None) gets a cluster
synthesised from its richness and redshift, deterministic in (seed, position). Field galaxies
and stars come from the same per-cell sky as `cmcat mock frames` (mock/scene.py), so both
paths draw the same galaxies. Noise is drawn per cutout from (seed, position).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from clustermass.errors import ImageError, InputError
from clustermass.images.base import BANDS, Cutout, CutoutGrid
from clustermass.mock import relations as rel
from clustermass.mock.instrument import cutout_noise
from clustermass.mock.population import faint_member_ratio
from clustermass.mock.render import render_cutout
from clustermass.mock.scene import Scene
from clustermass.model.truth import MATCH_ARCSEC, read_truth
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
    return {
        "halo_id": 0, "key": key, "ra": ra, "dec": dec, "z": z, "log10_m500": logm, "n_red": n_red,
        "n_faint": int(rng.poisson(n_red * faint_member_ratio())),
        "bcg_mr": float(rel.bcg_mr_mean(10**logm, z)) + rng.normal(0.0, rel.BCG_MAG_SCATTER),
        "lambda_true": max(lam, 1.0),
    }


def universe_seed(universe_dir: Path) -> int:
    """The seed a universe folder was made with (universe.json)."""
    path = Path(universe_dir) / "universe.json"
    try:
        return int(json.loads(path.read_text())["seed"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: cannot read the universe's seed ({exc}); remake it with `cmcat mock universe` "
                         "or pass the seed explicitly") from None


class MockSource:
    """ImageSource that renders cutouts directly from the mock sky (nanomaggies per cutout pixel).

    seed: the render seed (field galaxies, members, noise); default the universe's seed, else 0.
    """

    name = "mock"

    def __init__(self, universe_dir: Path | str | None = None, seed: int | None = None, noise: bool = True) -> None:
        haloes = None
        if universe_dir is not None:
            truth = read_truth(Path(universe_dir))
            haloes = truth[truth.rm_id > 0]
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
        img = render_cutout(src.ra, src.dec, src.r_e, src.flux, ra, dec, grid.size, scale, idx)
        if self.noise:
            rng = np.random.default_rng([self.seed, 4, position_key(ra, dec)])
            img += rng.standard_normal(img.shape, dtype=np.float32) * cutout_noise(scale)[idx][:, None, None].astype(np.float32)
        meta = {"source": "mock", "seed": self.seed, "halo_id": None if halo is None else int(halo["halo_id"])}
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
