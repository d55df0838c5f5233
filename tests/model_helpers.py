"""Small mock data sets for the model tests (MockSource renders; labels from the synthetic haloes)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Engine, insert

from clustermass.db.models import Catalog, Cluster, Label, MassMeasurement
from clustermass.images.base import CutoutGrid
from clustermass.mock.source import MockSource, synthetic_halo
from clustermass.model.trainconfig import TrainConfig
from clustermass.sky import hpx29

TINY_TOML = """
name = "tiny"
[grid]
size = 32
[stage1]
n_clusters = 1000
holdout_frac = 0.2
width = 4
blocks = [1, 1]
epochs = 2
batch_size = 64
[stage2]
hidden = 8
max_epochs = 150
patience = 30
"""


def tiny_config(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_TOML)
    return path


def tiny_train_config() -> TrainConfig:
    """TINY_TOML as a typed config (over the quick values), without a file."""
    return TrainConfig.from_dict(tomllib.loads(TINY_TOML), "TINY_TOML")


def mock_clusters(n: int, seed: int = 0) -> pd.DataFrame:
    """n clusters in a 10x10 deg patch with redMaPPer-like richness and z, and their true log10 M500."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "id": np.arange(1, n + 1),
        "ra": rng.uniform(170.0, 180.0, n),
        "dec": rng.uniform(20.0, 30.0, n),
        "z": rng.uniform(0.1, 0.45, n),
        "richness": 20.0 * (1.0 + rng.pareto(1.5, n)),
    })
    df["log10_m500"] = [synthetic_halo(0, r.ra, r.dec, r.z, r.richness)["log10_m500"] for r in df.itertuples()]
    return df


def mock_images(clusters: pd.DataFrame, size: int = 32, aperture_mpc: float | None = None) -> np.ndarray:
    """(N, 5, size, size) nanomaggies from the mock renderer (seed 0, no universe), on the default aperture or
    `aperture_mpc`."""
    grid = CutoutGrid(size=size) if aperture_mpc is None else CutoutGrid(size=size, aperture_mpc=aperture_mpc)
    return np.stack([c.data for c in MockSource(None, seed=0).cutouts(clusters, grid)])


def load_into_db(engine: Engine, clusters: pd.DataFrame, label_noise: float = 0.1, seed: int = 0) -> None:
    """Insert the clusters as a redMaPPer-like catalogue, each labelled with a noisy 'mcxc'/'psz2' mass."""
    rng = np.random.default_rng(seed)
    hpx = hpx29(clusters["ra"].to_numpy(), clusters["dec"].to_numpy())
    with engine.begin() as conn:
        cat = conn.execute(insert(Catalog).values(name="rm", kind="redmapper", path="-", sha256="x", n_rows=len(clusters)).returning(Catalog.id)).scalar_one()
        mcat = conn.execute(insert(Catalog).values(name="mx", kind="mcxc", path="-", sha256="y", n_rows=len(clusters)).returning(Catalog.id)).scalar_one()
        for i, r in enumerate(clusters.itertuples()):
            conn.execute(insert(Cluster).values(id=int(r.id), catalog_id=cat, source_id=str(r.id), ra=r.ra, dec=r.dec,
                                                hpx29=int(hpx[i]), z=r.z, richness=r.richness))
            y = float(r.log10_m500 + rng.normal(0, label_noise))
            mid = conn.execute(insert(MassMeasurement).values(catalog_id=mcat, source_id=str(r.id), ra=r.ra, dec=r.dec,
                                                              hpx29=int(hpx[i]), z=r.z, log10_m500=y, method="xray")
                               .returning(MassMeasurement.id)).scalar_one()
            conn.execute(insert(Label).values(cluster_id=int(r.id), measurement_id=mid, source="mcxc" if i % 3 else "psz2",
                                              separation_arcsec=0.0, dz=0.0, log10_m500=y))
