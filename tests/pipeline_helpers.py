"""Test helpers for the pipeline tests: a small cluster catalogue in the DB, a fake model row,
a trivial tile task and a tiny MassPredictor (importable by Dask worker processes)."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from sqlalchemy import Engine, insert, select

from clustermass import sky
from clustermass.db.bulk import copy_upsert
from clustermass.db.models import Catalog, Model, RunTile
from clustermass.db.queries import clusters_in_tile
from clustermass.images.base import CutoutGrid
from clustermass.pipeline.runs import tile_transaction


def add_clusters(engine: Engine, n: int, seed: int = 0, ra=(150.0, 200.0), dec=(0.0, 40.0), name: str = "test") -> pd.DataFrame:
    """Insert a catalogue of `n` random clusters in a sky box; return them (with ids)."""
    rng = np.random.default_rng(seed)
    ra_v = rng.uniform(*ra, n)
    dec_v = np.degrees(np.arcsin(rng.uniform(np.sin(np.radians(dec[0])), np.sin(np.radians(dec[1])), n)))
    with engine.begin() as conn:
        cat_id = conn.execute(
            insert(Catalog).values(name=name, kind="table", path="/dev/null", sha256=name, n_rows=n).returning(Catalog.id)
        ).scalar_one()
        df = pd.DataFrame(
            {
                "catalog_id": cat_id,
                "source_id": [f"{name}-{i}" for i in range(n)],
                "name": [f"C{i:05d}" for i in range(n)],
                "ra": ra_v,
                "dec": dec_v,
                "hpx29": sky.hpx29(ra_v, dec_v),
                "z": rng.uniform(0.1, 0.5, n),
                "richness": rng.uniform(20, 120, n),
            }
        )
        copy_upsert(conn, "clusters", df)
    with engine.connect() as conn:
        out = pd.read_sql("SELECT id, ra, dec, hpx29, z, richness FROM clusters WHERE catalog_id = %(c)s ORDER BY id", conn, params={"c": cat_id})
    return out


def add_model(engine: Engine, name: str = "fake", kind: str = "fake") -> int:
    with engine.begin() as conn:
        return conn.execute(insert(Model).values(name=name, kind=kind).returning(Model.id)).scalar_one()


def fake_mass(richness: np.ndarray) -> np.ndarray:
    return 14.0 + 0.01 * np.asarray(richness, dtype=float)


def fake_task(db_url, run_id, norder, npix, model_id, fail_pix=None, sleep=0.0, catalog_id=None):
    """Write a fake mass for every cluster of the tile (fails on tile `fail_pix`)."""
    with tile_transaction(db_url, run_id, norder, npix) as tx:
        if tx.skipped:
            return tx.result
        df = clusters_in_tile(tx.conn, norder, npix, catalog_id)
        if fail_pix is not None and npix == fail_pix:
            raise ValueError(f"boom in tile {npix}")
        time.sleep(sleep)
        out = pd.DataFrame(
            {"cluster_id": df["id"], "model_id": model_id, "run_id": run_id, "log10_m500": fake_mass(df["richness"]), "log10_m500_err": 0.1}
        )
        copy_upsert(tx.conn, "predictions", out, conflict=["cluster_id", "model_id"], update=["run_id", "log10_m500", "log10_m500_err"])
        return tx.done(n_clusters=len(df), n_done=len(df))


class TinyPredictor:
    """A MassPredictor that uses the images: mean r-band flux and richness (deterministic)."""

    needs_images = True
    population = None  # scores are published as they are

    def __init__(self, model_id: int, name: str = "tiny", grid: CutoutGrid | None = None,
                 fine_grid: CutoutGrid | None = None) -> None:
        self.model_id = model_id
        self.name = name
        self.grid = grid or CutoutGrid(size=16)
        self.fine_grid = fine_grid

    def predict(self, images, clusters, fine=None):
        if self.fine_grid is not None:
            assert fine is not None and fine.shape == (len(images), 5, self.fine_grid.size, self.fine_grid.size)
        flux = np.nanmean(images[:, 2], axis=(1, 2)) if images is not None else 0.0
        m = fake_mass(clusters["richness"].to_numpy()) + 0.0 * flux
        return m, np.full(len(m), 0.1)

    def folds(self, cluster_ids):
        return np.full(len(cluster_ids), -1)


def tiny_loader(engine, settings, ref, device):
    """Loader with the signature of clustermass.model.registry.load_predictor, for tests."""
    return TinyPredictor(int(ref))


def run_tiles_status(engine: Engine, run_id: int) -> pd.DataFrame:
    """The run_tiles rows of a run, as a DataFrame."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                RunTile.norder, RunTile.npix, RunTile.status, RunTile.n_clusters, RunTile.n_done,
                RunTile.n_failed, RunTile.error, RunTile.worker, RunTile.seconds,
            ).where(RunTile.run_id == run_id).order_by(RunTile.norder, RunTile.npix)
        ).all()
    return pd.DataFrame(rows, columns=["norder", "npix", "status", "n_clusters", "n_done", "n_failed", "error", "worker", "seconds"])
