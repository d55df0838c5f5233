"""Benchmark of the direct mock renderer: ugriz cutouts per second on one core.

Renders cutouts (5 bands, default 64 px / 1.5 Mpc grid) of clusters drawn from a mock universe
with the real catalogue's lambda and z distributions, single-threaded, and prints clusters/s,
its ratio to the 100 clusters/s target and the implied time for 26,350 clusters on 2 cores.

    .venv/bin/python scripts/bench_mock.py [--n 400] [--seed 0]
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one core: before numpy loads BLAS
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from clustermass.images.base import CutoutGrid  # noqa: E402
from clustermass.mock.source import MockSource  # noqa: E402
from clustermass.mock.population import build_universe  # noqa: E402
from clustermass.mock.writers import write_universe  # noqa: E402

TARGET = 100.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=400, help="clusters to render")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        u = build_universe(args.n, args.seed)
        write_universe(u, Path(tmp), {"n": args.n, "seed": args.seed, "area_deg2": None})
        rm = u.redmapper
        rows = pd.DataFrame({"id": rm.rm_id, "ra": rm.ra, "dec": rm.dec, "z": rm.z_phot, "richness": rm.lambda_obs})
        src = MockSource(Path(tmp))
        grid = CutoutGrid()
        src.cutouts(rows.iloc[:5], grid)  # warm up (SED tables, caches)
        t0 = time.process_time()
        w0 = time.perf_counter()
        cuts = src.cutouts(rows, grid)
        cpu, wall = time.process_time() - t0, time.perf_counter() - w0
    rate_cpu, rate_wall = len(cuts) / cpu, len(cuts) / wall
    print(f"direct mock render, {len(cuts)} clusters x 5 bands x {grid.size}x{grid.size} px "
          f"(median z {np.median(rows.z):.2f}), one thread")
    print(f"  {rate_cpu:8.1f} clusters/s per CPU-second   ratio to target {rate_cpu / TARGET:.2f}x (target {TARGET:.0f}/s)")
    print(f"  {rate_wall:8.1f} clusters/s wall clock     (machine load: {os.getloadavg()[0]:.1f})")
    print(f"  26,350 clusters on 2 cores: ~{26350 / (2 * rate_cpu) / 60:.1f} min of CPU")


if __name__ == "__main__":
    main()
