"""How much mass information the mock universe allows: oracle estimators on the labelled clusters.

On a database holding a mock universe (ingested, cross-matched), fits least-squares relations
of the *labels* (noisy X-ray/SZ-like masses) on quantities an image-based model could at best
recover, taken noise-free from the mock's truth table, and scores them with the same 5 folds as
`cmcat baseline` / `cmcat train` (fold_of(cluster_id, 5, seed)). It prints MAE against the
labels and against the true masses, and the ratio to the richness baseline: the floor that the
CNN / hybrid targets (<= 1.0x / <= 0.9x) should be read against.

    python scripts/mock_information.py --data-dir DIR --universe MOCK_DIR [--seed 0]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, required=True, help="cmcat data dir with the mock ingested")
    ap.add_argument("--universe", type=Path, required=True, help="mock universe folder (truth.parquet)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from scipy.spatial import cKDTree

    from clustermass.config import load_settings
    from clustermass.db.engine import get_engine
    from clustermass.model.data import labelled_clusters
    from clustermass.model.folds import fold_of

    engine = get_engine(load_settings(overrides={"data_dir": args.data_dir}))
    clusters = labelled_clusters(engine)
    truth = pd.read_parquet(args.universe / "truth.parquet")

    def unit(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
        a, d = np.radians(ra), np.radians(dec)
        return np.stack([np.cos(d) * np.cos(a), np.cos(d) * np.sin(a), np.sin(d)], axis=-1)

    _, idx = cKDTree(unit(truth["ra"].to_numpy(), truth["dec"].to_numpy())).query(
        unit(clusters["ra"].to_numpy(), clusters["dec"].to_numpy()))
    t = truth.iloc[idx].reset_index(drop=True)
    y, y_true = clusters["log10_m500"].to_numpy(float), t["log10_m500"].to_numpy(float)
    fold = fold_of(clusters["id"].to_numpy(), 5, args.seed)

    def cv_mae(*columns: np.ndarray) -> tuple[float, float]:
        x = np.column_stack([*columns, np.ones(len(y))])
        oof = np.empty(len(y))
        for k in range(5):
            w = np.linalg.lstsq(x[fold != k], y[fold != k], rcond=None)[0]
            oof[fold == k] = x[fold == k] @ w
        return float(np.mean(np.abs(oof - y))), float(np.mean(np.abs(oof - y_true)))

    lam, z = np.log10(clusters["richness"].to_numpy(float)), np.log10(1 + clusters["z"].to_numpy(float))
    n_red, bcg = np.log10(t["n_red"].to_numpy(float) + 1), t["bcg_mr"].to_numpy(float)
    n_all = np.log10(t["n_red"].to_numpy(float) + t["n_faint"].to_numpy(float) + 1)
    rows = {
        "richness baseline (observed lambda, z)": (lam, z),
        "true lambda (members are Poisson draws of it), z": (np.log10(t["lambda_true"].to_numpy(float)), z),
        "noise-free red-sequence count, z": (n_red, z),
        "noise-free red count + BCG magnitude, z": (n_red, bcg, z),
        "all members (red + faint counts) + BCG, z": (n_red, n_all, bcg, z),
        "observed lambda + BCG magnitude, z": (lam, bcg, z),
        "observed lambda + all member counts + BCG, z": (lam, n_red, n_all, bcg, z),
        "the true mass itself (label-noise floor)": (y_true,),
    }
    ref = cv_mae(lam, z)[0]
    print(f"{len(y)} labelled clusters, 5 folds (seed {args.seed}); MAE in dex")
    print(f"{'estimator':48s} {'vs label':>9s} {'ratio':>7s} {'vs truth':>9s}")
    for name, cols in rows.items():
        a, b = cv_mae(*cols)
        print(f"{name:48s} {a:9.4f} {a / ref:6.3f}x {b:9.4f}")


if __name__ == "__main__":
    main()
