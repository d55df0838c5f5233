"""Training configs: TOML files (`configs/quick.toml`, `configs/full.toml` or a user file).

A user file may set any subset of keys; the rest come from the quick config. Unknown keys
are errors (a typo must not silently train something else).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clustermass.config import read_toml
from clustermass.errors import ConfigError

CONFIG_DIR = Path(__file__).parent / "configs"
BUILTIN = ("quick", "full")


def _merge(base: dict[str, Any], over: dict[str, Any], where: str, path: Path) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if key not in base:
            raise ConfigError(f"training config {path}: unknown key {where}{key!r}; known: {', '.join(sorted(base))}")
        if isinstance(base[key], dict) and not isinstance(value, dict):
            raise ConfigError(f"training config {path}: {where}{key} must be a [{where}{key}] table, not {value!r}")
        out[key] = _merge(base[key], value, f"{where}{key}.", path) if isinstance(base[key], dict) else value
    return out


def _read(path: Path) -> dict[str, Any]:
    return read_toml(path, "training config", hint="use 'quick', 'full' or a TOML file")


def load_train_config(ref: str | Path | None = None) -> dict[str, Any]:
    """The training config `ref`: a built-in name ('quick', 'full'), a TOML path, or None (= quick)."""
    base = _read(CONFIG_DIR / "quick.toml")
    if ref is None or str(ref) == "quick":
        return base
    path = CONFIG_DIR / f"{ref}.toml" if str(ref) in BUILTIN else Path(ref)
    cfg = _merge(base, _read(path), "", path)
    if str(ref) not in BUILTIN and "name" not in _read(path):
        cfg["name"] = path.stem
    return cfg
