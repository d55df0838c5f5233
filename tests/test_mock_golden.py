"""Golden digest of the mock's output: a change of its numbers needs a MOCK_VERSION bump.

A small reference universe and a few cutouts (noise-free and noisy) are rendered and summarised
(column sums and moments, per-band cutout sums and moments: numbers, not bytes, so BLAS rounding
does not matter), with the catalogues written for a larger one (its X-ray and SZ labels); the
summary must equal tests/mock_golden.json within 1e-6. When the mock's
output changes on purpose, bump clustermass.mock.version.MOCK_VERSION and rewrite the file with

    PYTHONPATH=. python tests/test_mock_golden.py
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

GOLDEN = Path(__file__).with_name("mock_golden.json")


def mock_digest(folder: Path) -> dict:
    """Summary numbers of the reference universe (seed 5, 12 clusters on 3 deg^2) and its cutouts."""
    from clustermass.images.base import CutoutGrid
    from clustermass.mock.source import MockSource
    from clustermass.mock.population import build_universe
    from clustermass.mock.writers import read_truth, write_universe

    write_universe(build_universe(12, seed=5, area_deg2=3.0), folder, {"n": 12, "seed": 5, "area_deg2": 3.0})
    truth = read_truth(folder)
    numeric = truth.select_dtypes(include=["number", "bool"]).astype(float)
    out = {"n_haloes": len(truth), "columns": {c: [float(numeric[c].sum()), float((numeric[c] ** 2).sum())]
                                              for c in sorted(numeric.columns)}}
    rm = truth[truth.rm_id > 0].sort_values("rm_id").head(4)
    rows = pd.DataFrame({"id": rm.rm_id, "ra": rm.ra, "dec": rm.dec, "z": rm.z_phot, "richness": rm.lambda_obs})
    rows.loc[len(rows)] = [99, 181.0, 24.0, 0.3, 45.0]  # a catalogue-driven (synthesised) cluster
    grid = CutoutGrid(size=32)
    for noise in (False, True):
        cuts = MockSource(folder, noise=noise).cutouts(rows, grid)
        d = np.stack([c.data.astype(np.float64) for c in cuts])  # (n, 5, 32, 32)
        out[f"cutouts_noise_{noise}"] = {"sum": d.sum(axis=(2, 3)).tolist(), "abs": np.abs(d).sum(axis=(2, 3)).tolist(),
                                         "sq": (d**2).sum(axis=(2, 3)).tolist()}
    out["catalogues"] = _catalogue_digest(folder / "catalogues")
    return out


def _catalogue_digest(folder: Path) -> dict:
    """Column sums and sums of squares of the catalogues of a 1,500-cluster universe (seed 5): ~40 MCXC and
    ~20 PSZ2 rows, so that a change of the labels' physics shows."""
    from astropy.table import Table

    from clustermass.mock.population import build_universe
    from clustermass.mock.writers import write_universe

    write_universe(build_universe(1500, seed=5), folder, {"n": 1500, "seed": 5, "area_deg2": None})
    tables = {"redmapper": pd.read_csv(folder / "redmapper.csv.gz"), "mcxc": pd.read_csv(folder / "mcxc.csv.gz"),
              "psz2": Table.read(folder / "psz2.fits").to_pandas()}
    out = {}
    for name, t in tables.items():
        numeric = t.select_dtypes(include=["number", "bool"]).astype(float)
        out[name] = {c: [float(numeric[c].sum()), float((numeric[c] ** 2).sum())] for c in sorted(numeric.columns)}
    return out


def _flat(x) -> list[float]:
    if isinstance(x, dict):
        return [v for k in sorted(x) for v in _flat(x[k])]
    if isinstance(x, (list, tuple)):
        return [v for item in x for v in _flat(item)]
    return [float(x)]


def test_mock_output_matches_the_golden_digest_of_its_version(tmp_path):
    from clustermass.mock.version import MOCK_VERSION

    golden = json.loads(GOLDEN.read_text())
    assert golden["mock_version"] == MOCK_VERSION, (
        f"MOCK_VERSION is {MOCK_VERSION} but {GOLDEN.name} records v{golden['mock_version']}: rewrite it "
        "(PYTHONPATH=. python tests/test_mock_golden.py)")
    now = mock_digest(tmp_path)
    assert now.keys() == golden["digest"].keys()
    a, b = np.array(_flat(now)), np.array(_flat(golden["digest"]))
    assert a.shape == b.shape and np.allclose(a, b, rtol=1e-6, atol=1e-9), (
        f"the mock's output changed ({int((~np.isclose(a, b, rtol=1e-6, atol=1e-9)).sum())} numbers differ) but "
        f"MOCK_VERSION is still {MOCK_VERSION}: bump it in clustermass/mock/version.py and rewrite {GOLDEN.name}")


if __name__ == "__main__":
    from clustermass.mock.version import MOCK_VERSION

    with tempfile.TemporaryDirectory() as tmp:
        GOLDEN.write_text(json.dumps({"mock_version": MOCK_VERSION, "digest": mock_digest(Path(tmp))}, indent=1) + "\n")
    print(f"wrote {GOLDEN} (mock v{MOCK_VERSION})", file=sys.stderr)
