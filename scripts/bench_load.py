"""Load benchmark: `cmcat predict` over N synthetic catalogue rows (default 1,000,000).

Inserts N random clusters (COPY), registers a 'richness' model (no images: the run measures
tile planning, DB reads and writes), runs `cmcat predict --tiles ORDER` as a subprocess on a
Dask LocalCluster started here, then prints: rows, tiles, seconds, clusters/s, the peak RSS
of each worker process and of the `cmcat` client (MiB), and checks one prediction per row.

    .venv/bin/python scripts/bench_load.py [--n 1000000] [--order 3] [--workers 2]

Runs on a throwaway embedded PostgreSQL under /tmp (deleted at exit). Prints figures, not
pass/fail.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import insert, text


def _peak_rss_mib() -> float:
    """Peak RSS of the calling (worker) process, MiB."""
    import resource as r

    return r.getrusage(r.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--order", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--max-per-tile", type=int, default=2000)
    args = ap.parse_args()

    from distributed import Client, LocalCluster

    from clustermass import sky
    from clustermass.config import load_settings
    from clustermass.db import migrate
    from clustermass.db.bulk import copy_upsert
    from clustermass.db.engine import engine_for_url
    from clustermass.db.models import Catalog
    from clustermass.model.registry import save_model

    from clustermass.db.embedded import ensure_database

    root = Path(tempfile.mkdtemp(prefix="cmload", dir="/tmp"))  # short: the server's socket lives here
    url = ensure_database(root / "pg", "cmcat_load", cleanup_mode="delete")
    engine = engine_for_url(url)
    migrate.upgrade(engine)

    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    ra = rng.uniform(0, 360, args.n)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, args.n)))
    with engine.begin() as conn:
        cat = conn.execute(insert(Catalog).values(name="load", kind="table", path="-", sha256="load", n_rows=args.n)
                           .returning(Catalog.id)).scalar_one()
        copy_upsert(conn, "clusters", pd.DataFrame({
            "catalog_id": cat, "source_id": np.arange(args.n).astype(str), "ra": ra, "dec": dec,
            "hpx29": sky.hpx29(ra, dec), "z": rng.uniform(0.08, 0.6, args.n), "richness": rng.uniform(20, 200, args.n),
        }))
    t_insert = time.perf_counter() - t0
    settings = load_settings(overrides={"database_url": url, "data_dir": root / "data"}, environ={})
    save_model(engine, settings, name="rich", kind="richness", config={"coef": [14.3, 1.1, -0.3]},
               metrics={"cv_scatter": 0.16}, training={})

    env = {**os.environ, "CMCAT_DATABASE_URL": url, "CMCAT_DATA_DIR": str(root / "data")}
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        t1 = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-m", "clustermass", "predict", "--tiles", str(args.order), "--model", "rich",
             "--scheduler", cluster.scheduler_address, "--max-per-tile", str(args.max_per_tile), "--json"],
            env=env, capture_output=True, text=True,
        )
        t_predict = time.perf_counter() - t1
        client_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the cmcat process
        worker_rss = client.run(_peak_rss_mib)
    if out.returncode != 0:
        sys.exit(f"cmcat predict failed ({out.returncode}):\n{out.stderr[-3000:]}")
    summary = json.loads(out.stdout)
    with engine.connect() as conn:
        n_pred, n_distinct = conn.execute(text("SELECT count(*), count(DISTINCT cluster_id) FROM predictions")).one()
    print(f"rows                 {args.n:,}")
    print(f"insert (COPY)        {t_insert:.1f} s")
    print(f"tiles                {summary['n_tiles']} (order {args.order}, max {args.max_per_tile} per tile)")
    print(f"predict              {t_predict:.1f} s wall, {summary['clusters_per_s']:.0f} clusters/s in the run")
    print(f"predictions          {n_pred:,} rows, {n_distinct:,} distinct clusters, lost {args.n - n_distinct:,}")
    for addr, rss in sorted(worker_rss.items()):
        print(f"peak RSS worker      {rss:.0f} MiB  ({addr})")
    print(f"peak RSS cmcat client {client_rss:.0f} MiB")
    engine.dispose()


if __name__ == "__main__":
    main()
