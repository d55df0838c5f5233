"""Benchmark: `cmcat ingest` of a 1,000,000-row redMaPPer FITS vs a bare COPY, and cross-match speed.

Prints measured rows/s and ratios (targets: ingest >= 100k rows/s and >= 0.5 of bare COPY;
cross-match of 1M clusters vs 10k measurements < 10 s). Runs on a throwaway embedded
PostgreSQL under /tmp, deleted at the end. Not a test: it asserts nothing.

    .venv/bin/python scripts/bench_ingest.py [--rows 1000000] [--measurements 10000]
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from astropy.table import Table
from sqlalchemy import text


def redmapper_table(n: int, seed: int = 0) -> Table:
    """A synthetic full-format redMaPPer catalogue over the SDSS-like sky."""
    rng = np.random.default_rng(seed)
    return Table({
        "MEM_MATCH_ID": np.arange(1, n + 1, dtype=np.int64),
        "RA": rng.uniform(100.0, 270.0, n),
        "DEC": np.degrees(np.arcsin(rng.uniform(np.sin(np.radians(-10)), np.sin(np.radians(70)), n))),
        "Z_LAMBDA": rng.uniform(0.08, 0.6, n).astype(np.float32),
        "Z_LAMBDA_ERR": rng.uniform(0.005, 0.03, n).astype(np.float32),
        "LAMBDA_CHISQ": (20 * rng.pareto(2.5, n) + 20).astype(np.float32),
        "LAMBDA_CHISQ_E": rng.uniform(1, 10, n).astype(np.float32),
    })


def mcxc_frame(clusters: Table, n: int, seed: int = 1) -> pd.DataFrame:
    """n MCXC-format measurements: most near a cluster (within ~1 arcmin), the rest random."""
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(clusters), n, replace=False)
    near = rng.uniform(size=n) < 0.8
    ra = np.where(near, clusters["RA"][pick] + rng.normal(0, 0.01, n), rng.uniform(100, 270, n))
    dec = np.where(near, clusters["DEC"][pick] + rng.normal(0, 0.01, n), rng.uniform(-10, 70, n))
    return pd.DataFrame({"MCXC": [f"J{i:06d}" for i in range(n)], "RAdeg": np.mod(ra, 360), "DEdeg": np.clip(dec, -90, 90),
                         "z": np.asarray(clusters["Z_LAMBDA"][pick], dtype=float), "M500": rng.lognormal(1, 0.5, n)})


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--measurements", type=int, default=10_000)
    args = ap.parse_args()

    from clustermass.catalogs.crossmatch import crossmatch, load_inputs, match
    from clustermass.catalogs.ingest import TARGET_COLUMNS, ingest_file, target_frame
    from clustermass.catalogs.readers import KINDS, MCXC, read_catalog
    from clustermass.db import migrate
    from clustermass.db.embedded import ensure_database
    from clustermass.db.engine import engine_for_url

    root = Path(tempfile.mkdtemp(prefix="cmb", dir="/tmp"))
    try:
        url = ensure_database(root / "pg", "bench", cleanup_mode="delete")
        engine = engine_for_url(url)
        migrate.upgrade(engine)
        cat = redmapper_table(args.rows)
        fits_path = root / "redmapper_1M.fits"
        cat.write(fits_path)
        print(f"synthetic redMaPPer FITS: {args.rows:,} rows, {fits_path.stat().st_size / 1e6:.0f} MB")

        # 1. cmcat ingest as a user runs it (process start + read + validate + hpx + COPY/INSERT + commit)
        env = dict(os.environ, CMCAT_DATABASE_URL=url, CMCAT_DATA_DIR=str(root / "data"))
        cmcat = Path(sys.executable).with_name("cmcat")
        _, t_cli = timed(lambda: subprocess.run([str(cmcat), "ingest", "redmapper", str(fits_path)], env=env,
                                                check=True, capture_output=True))
        # 2. the library call alone, on an empty table again
        with engine.begin() as conn:
            conn.execute(text("TRUNCATE catalogs RESTART IDENTITY CASCADE"))
        res, t_lib = timed(lambda: ingest_file(engine, fits_path, "redmapper", KINDS["redmapper"]))
        assert res.n_rows == args.rows

        # 3. bare COPY of the same final rows (already formatted as CSV) into the same empty table
        _, canon = read_catalog(fits_path, KINDS["redmapper"])
        frame = target_frame(canon, "clusters", res.catalog_id)
        buf = io.StringIO()
        frame.to_csv(buf, index=False, header=False, float_format="%.17g")
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM clusters"))
        raw = engine.raw_connection()
        try:
            with raw.cursor() as cur:
                buf.seek(0)
                cols = ", ".join(TARGET_COLUMNS["clusters"])
                t0 = time.perf_counter()
                cur.copy_expert(f"COPY clusters ({cols}) FROM STDIN WITH (FORMAT csv)", buf)
                raw.commit()
                t_copy = time.perf_counter() - t0
        finally:
            raw.close()

        n = args.rows
        print(f"cmcat ingest (CLI process, end to end): {t_cli:6.2f} s  {n / t_cli:10,.0f} rows/s")
        print(f"ingest_file (library call):             {t_lib:6.2f} s  {n / t_lib:10,.0f} rows/s")
        print(f"bare COPY of the prepared rows:         {t_copy:6.2f} s  {n / t_copy:10,.0f} rows/s")
        print(f"ratio ingest/COPY throughput: CLI {t_copy / t_cli:.2f}, library {t_copy / t_lib:.2f} "
              "(target >= 0.5; >= 100k rows/s)")

        # 4. cross-match: 1M clusters vs 10k measurements
        meas_path = root / "mcxc_10k.csv"
        mcxc_frame(cat, args.measurements).to_csv(meas_path, index=False)
        ingest_file(engine, meas_path, "mcxc", MCXC)
        with engine.connect() as conn:
            clusters, meas = load_inputs(conn)
        labels, t_match = timed(lambda: match(clusters, meas))
        summary, t_db = timed(lambda: crossmatch(engine))
        print(f"cross-match {len(clusters):,} clusters x {len(meas):,} measurements: match() {t_match:.2f} s "
              f"({len(labels):,} labels); with DB read + label write {t_db:.2f} s (target < 10 s)")
        assert summary.n_labels == len(labels)
    finally:
        from clustermass.db import embedded

        embedded.stop(root / "pg")  # never leave the throwaway server running
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
