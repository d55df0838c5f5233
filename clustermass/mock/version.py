"""Which mock code made a universe, a truth table or a cutout: the mock version and its checks.

MOCK_VERSION is bumped whenever the mock's output changes (tests/test_mock_golden.py fails
until it is). It is written into universe.json (`mock_version`), the truth table's Parquet
metadata (`clustermass.model.truth.TRUTH_META_KEY`), the source name of stored mock cutouts (`mock-v{N}`) and the
`training` record of models trained on mock cutouts. Files without a version are mock v1 (the
code before versions were recorded). Everything that reads mock output refuses another version
with a one-line error that says what to regenerate.
"""

from __future__ import annotations

import json
from pathlib import Path

from clustermass.errors import InputError

MOCK_VERSION = 8
#: The store's source name of cutouts rendered by this mock (a cutouts row's `source`).
SOURCE_NAME = f"mock-v{MOCK_VERSION}"


class MockVersionError(InputError):
    """A universe, truth table or stored cutout made by another mock version."""


def universe_params(universe_dir: Path) -> dict:
    """The parameters universe.json records (n, seed, area_deg2, variant, mock_version)."""
    path = Path(universe_dir) / "universe.json"
    try:
        params = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read the universe's parameters ({exc}); "
                         "remake it with `cmcat mock universe`") from None
    if not isinstance(params, dict):
        raise InputError(f"{path}: not a universe parameter file; remake it with `cmcat mock universe`")
    return params


def regenerate_hint(params: dict, out: Path | str) -> str:
    """The `cmcat mock universe` command line that remakes a universe of these parameters."""
    cmd = f"cmcat mock universe --n {params.get('n', 26350)} --seed {params.get('seed', 0)}"
    if params.get("area_deg2") is not None:
        cmd += f" --area {params['area_deg2']}"
    if params.get("variant", "default") != "default":
        cmd += f" --variant {params['variant']}"
    return f"{cmd} --out {out}"


def check_universe(universe_dir: Path) -> dict:
    """universe.json's parameters, or MockVersionError if another mock version made the universe."""
    params = universe_params(universe_dir)
    found = int(params.get("mock_version", 1))
    if found != MOCK_VERSION:
        raise MockVersionError(
            f"{Path(universe_dir) / 'universe.json'}: made by mock v{found}, this cmcat renders mock v{MOCK_VERSION}; "
            f"regenerate it with `{regenerate_hint(params, universe_dir)}` (and ingest it again)")
    return params


def provenance(universe_dir: Path | str | None, seed: int) -> dict:
    """What a model trained on mock cutouts records: mock version, render seed, the universe's parameters."""
    params = None if universe_dir is None else check_universe(Path(universe_dir))
    return {"mock_version": MOCK_VERSION, "render_seed": int(seed), "universe": params,
            "universe_dir": None if universe_dir is None else str(universe_dir)}
