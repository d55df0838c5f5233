"""Benchmark of `cmcat predict` (prints measured numbers and ratios; not a pass/fail test).

In one run, on the same clusters and the same stored cutouts:
  1. warm-up: a predict run that renders the cutouts with the mock renderer into the store
     (end-to-end throughput *including rendering*);
  2. bare model: batched forward passes over the in-memory cutouts (clusters/s), with 1 and
     with `--workers` torch threads;
  3. end to end: `run_tiles(predict_tile)` with --rerun (DB read, cutouts from the store,
     inference, DB write) on a pre-started LocalCluster of 1 and of `--workers` processes
     (1 torch thread each), twice: cold (workers import torch and load the model on their
     first tile) and warm (model cached per worker); the ratio to the bare throughput
     (target >= 0.8).
The model is the newest 'cnn'/'hybrid' in --database-url if given, else an UNTRAINED network
of the quick config's architecture registered for the purpose (throughput does not depend on
the weights). Positions come from the real redMaPPer file when present (first --n rows), else
random. Uses a throwaway embedded PostgreSQL in /tmp unless --database-url is given.

    python scripts/bench_predict.py --n 2000 [--workers 2] [--device cpu] [--batch-size 256]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "clusterdb" / "sdss_redmapper.csv.gz"


def make_db(args):
    from clustermass.config import load_settings
    from clustermass.db import migrate
    from clustermass.db.embedded import ensure_database
    from clustermass.db.engine import engine_for_url
    from clustermass.db.urls import normalise_url

    root = Path(tempfile.mkdtemp(prefix="cmb", dir="/tmp"))
    url = normalise_url(args.database_url) if args.database_url else ensure_database(root / "pg", "bench", cleanup_mode="delete")
    engine = engine_for_url(url)
    migrate.upgrade(engine)
    settings = load_settings(overrides={"database_url": url, "data_dir": root / "data"}, environ={})
    return root, url, engine, settings


def load_clusters(engine, n: int, seed: int) -> None:
    from sqlalchemy import insert

    from clustermass import sky
    from clustermass.db.bulk import copy_upsert
    from clustermass.db.models import Catalog

    if REAL.exists():
        # n neighbours on the sky (contiguous in hpx29 from the catalogue's median), so tiles are
        # as dense as in the full survey rather than a few clusters scattered over 200 tiles
        raw = pd.read_csv(REAL)
        raw = raw.iloc[np.argsort(sky.hpx29(raw["RA"], raw["dec"]), kind="stable")]
        start = max(0, len(raw) // 2 - n // 2)
        raw = raw.iloc[start : start + n]
        df = pd.DataFrame({"source_id": raw["ID"].astype(str), "name": raw["name"], "ra": raw["RA"], "dec": raw["dec"],
                           "z": raw["redshift"], "richness": raw["lambda"]})
        origin = f"{len(df)} neighbouring clusters (hpx29 order) of {REAL.name}"
    else:
        rng = np.random.default_rng(seed)
        df = pd.DataFrame({"source_id": [str(i) for i in range(n)], "name": None, "ra": rng.uniform(120, 250, n),
                           "dec": rng.uniform(-5, 65, n), "z": rng.uniform(0.1, 0.5, n), "richness": rng.uniform(20, 150, n)})
        origin = "random positions"
    with engine.begin() as conn:
        cat = conn.execute(insert(Catalog).values(name=f"bench-{len(df)}", kind="redmapper", path=str(REAL), sha256="bench",
                                                  n_rows=len(df)).returning(Catalog.id)).scalar_one()
        copy_upsert(conn, "clusters", df.assign(catalog_id=cat, hpx29=sky.hpx29(df["ra"], df["dec"])))
    print(f"clusters: {len(df)} ({origin})")


def get_model(engine, settings, use_existing: bool):
    import torch

    from clustermass.model import registry
    from clustermass.model.networks import MassHead, Trunk

    if use_existing:
        for kind in ("hybrid", "cnn"):
            try:
                rec = registry.get_model(engine, kind)
                print(f"model: {rec.name} (id {rec.id}, kind {kind}, trained)")
                return rec
            except Exception:  # noqa: BLE001 - no model of that kind: try the next
                continue
    torch.manual_seed(0)
    trunk = Trunk(width=16, blocks=(1, 1, 1))
    arch = {"width": 16, "blocks": [1, 1, 1], "n_in": 5 * trunk.n_features, "hidden": 32, "dropout": 0.3}
    heads = [MassHead(arch["n_in"], hidden=32, dropout=0.3) for _ in range(5)]
    rec = registry.save_model(
        engine, settings, name=f"bench-untrained-{os.getpid()}", kind="cnn",
        config={"arch": arch, "grid": {"size": 64, "aperture_mpc": 1.5}, "softening": 3.0, "tta": True},
        metrics={"cv_scatter": 0.2}, training={},
        weights={"trunk": trunk.state_dict(), "heads": [h.state_dict() for h in heads]},
    )
    print("model: UNTRAINED quick-config CNN (width 16, blocks 1-1-1, 5 fold heads, 8x TTA), 64x64 cutouts")
    return rec


def run_predict(settings, model_id, args, workers: int, rerun: bool, scheduler: str | None):
    from clustermass import sky
    from clustermass.pipeline.predict import predict_tile
    from clustermass.pipeline.worker import worker_settings
    from clustermass.pipeline.runner import run_tiles

    task_args = {"model_id": model_id, "settings": worker_settings(settings), "device": args.device,
                 "batch_size": args.batch_size, "source": "mock", "source_options": {"universe_dir": None, "seed": 0},
                 "torch_threads": 1}
    return run_tiles(settings, "predict", sky.parse_tiles(args.tiles), predict_tile, task_args,
                     identity={"model_id": model_id, "source": "mock"}, model_id=model_id, scheduler=scheduler,
                     workers=workers, rerun=rerun, max_per_tile=args.max_per_tile)


def stored_cutouts(engine, settings, grid):
    """All clusters and their cutouts from the store (already filled by the warm-up run)."""
    from clustermass.db.queries import clusters_in_tile, tile_counts
    from clustermass.images.store import ensure_cutouts
    from clustermass.pipeline.sources import image_source

    src = image_source("mock", engine.url.render_as_string(hide_password=False), settings, {"seed": 0, "universe_dir": None})
    frames, images = [], []
    with engine.begin() as conn:
        for pix in tile_counts(conn, 3).index:
            df = clusters_in_tile(conn, 3, int(pix))
            res = ensure_cutouts(conn, settings.cutout_dir, df, src, grid, (3, int(pix)))
            ok = np.array([s != "failed" for s in res.status])
            frames.append(df[ok])
            images.append(res.data[ok])
    return pd.concat(frames, ignore_index=True), np.concatenate(images)


def bare(predictor, images, clusters, batch_size: int, threads: int) -> float:
    import torch

    from clustermass.pipeline.predict import predict_in_batches

    torch.set_num_threads(threads)
    predict_in_batches(predictor, images[:batch_size], clusters.iloc[:batch_size], batch_size)  # warm-up
    t0 = time.perf_counter()
    predict_in_batches(predictor, images, clusters, batch_size)
    return len(clusters) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000, help="clusters")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--tiles", default="3")
    ap.add_argument("--max-per-tile", type=int, default=2000)
    ap.add_argument("--database-url", default=None, help="use this database (and its newest trained model) instead")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from distributed import LocalCluster

    from clustermass.pipeline.worker import tune_for_tensors
    from clustermass.model.registry import load_predictor

    tuned = tune_for_tensors()  # as cmcat and its tile tasks do, so both sides run the same allocator

    root, url, engine, settings = make_db(args)
    try:
        if not args.database_url:
            load_clusters(engine, args.n, args.seed)
        rec = get_model(engine, settings, use_existing=bool(args.database_url))
        print(f"machine: {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f}; device {args.device}; "
              f"allocator tuned: {tuned}")

        warm = run_predict(settings, rec.id, args, args.workers, rerun=True, scheduler=None)
        print(f"warm-up (render + store + predict, {args.workers} workers, incl. cluster start): {warm.n_done} clusters in "
              f"{warm.seconds:.1f} s = {warm.clusters_per_s:.1f} clusters/s, {warm.n_tiles} tiles")

        predictor = load_predictor(engine, settings, rec.id, args.device)
        clusters, images = stored_cutouts(engine, settings, predictor.grid)
        bare_rate = {w: bare(predictor, images, clusters, args.batch_size, w) for w in sorted({1, args.workers})}
        for w, r in bare_rate.items():
            print(f"bare model ({w} torch thread(s), batch {args.batch_size}): {r:.1f} clusters/s")

        for w in sorted({1, args.workers}):
            with LocalCluster(n_workers=w, threads_per_worker=1, processes=True, dashboard_address=None) as lc:
                # cold: workers import torch and load the model on their first tile; warm: model cached
                for state in ("cold", "warm"):
                    s = run_predict(settings, rec.id, args, w, rerun=True, scheduler=lc.scheduler_address)
                    ratio = s.clusters_per_s / bare_rate[w]
                    print(f"end to end ({state} workers), {w} worker(s) x 1 thread (store hits, DB read+write): "
                          f"{s.n_done} clusters in {s.seconds:.1f} s = {s.clusters_per_s:.1f} clusters/s; "
                          f"ratio to bare ({w} thread(s)) = {ratio:.2f}")
    finally:
        engine.dispose()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
