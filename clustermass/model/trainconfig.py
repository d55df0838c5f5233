"""Training configs: TOML files (`configs/quick.toml`, `configs/full.toml` or a user file) as frozen dataclasses.

The TOML files hold the values; the dataclasses only name and type them. A user file, or a
registered model's stored `train` dict, may set any subset of keys; the rest come from the quick
config. The exception is an *optional* key, a field with a default: quick.toml leaves it out, it
takes its default where no file sets it, and `as_dict` leaves it out at its default, so adding one
changes no existing config's hash. Unknown keys and values of the wrong type are errors (a typo must not
silently train something else). A new key is one line in the TOML files and one field here, in
the same place as in quick.toml (`as_dict` keeps the field order).

`as_dict()` is the config as plain data, exactly the merged TOML tables (lists as lists, values as
written): what model names hash and the registry stores, so a config gives the same models it
gave as a dict.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any, Mapping, get_args, get_origin, get_type_hints

from clustermass.config import read_toml
from clustermass.errors import ConfigError

CONFIG_DIR = Path(__file__).parent / "configs"
BUILTIN = ("quick", "full", "bcg")


@dataclass(frozen=True)
class GridConfig:
    """[grid]: the cutouts (see quick.toml for units)."""

    size: int
    aperture_mpc: float


@dataclass(frozen=True)
class Stage1Config:
    """[stage1]: the band classifier that trains the trunk."""

    n_clusters: int
    holdout_frac: float
    width: int
    blocks: tuple[int, ...]
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    max_shift: int


@dataclass(frozen=True)
class Stage2Config:
    """[stage2]: the k-fold mass heads on the trunk's features."""

    folds: int
    kinds: tuple[str, ...]
    pooling: tuple[str, ...]
    head: str
    inner_val_frac: float
    hidden: int
    dropout: float
    lr: float
    weight_decay: float
    max_epochs: int
    patience: int
    finetune_epochs: int
    finetune_lr: float
    population_label_error: float
    #: Optional (absent from quick.toml; a config that leaves it out hashes as before): photometric
    #: feature sets of the calibrated cutouts added to the trunk's (model.photometry.PHOTOMETRY).
    photometry: tuple[str, ...] = ()


@dataclass(frozen=True)
class TrainConfig:
    """A whole training config: its name, the normalisation, TTA and the three tables."""

    name: str
    softening: float
    tta: bool
    grid: GridConfig
    stage1: Stage1Config
    stage2: Stage2Config

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "training config") -> TrainConfig:
        """The config `data` (a TOML file's tables or a stored `as_dict()`) over the quick config.

        `source` names where `data` came from in the one-line ConfigError of a bad key or value.
        """
        return _build(cls, _merged(_read(CONFIG_DIR / "quick.toml"), data), "", source)

    def as_dict(self) -> dict[str, Any]:
        """The config as plain data (tuples as lists), in quick.toml's key order; optional keys at
        their default left out."""
        return _plain(self)


def _plain(obj: Any) -> dict[str, Any]:
    """A config dataclass as plain data, without its optional fields at their defaults."""
    out = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        if f.default is not MISSING and value == f.default:
            continue
        out[f.name] = _plain(value) if is_dataclass(value) else list(value) if isinstance(value, tuple) else value
    return out


#: What each scalar field type accepts (an int is a float, as in TOML's and Python's numbers; a
#: bool is not a number) and how errors name it.
_SCALARS: dict[type, tuple[tuple[type, ...], str]] = {
    int: ((int,), "an integer"), float: ((int, float), "a number"), bool: ((bool,), "true or false"),
    str: ((str,), "a string"),
}


def _typed(hint: Any, value: Any, key: str, source: str) -> Any:
    """`value` of the field `key` checked against its type `hint`: a table becomes its dataclass, a
    list a tuple; a scalar is kept as written (an int for a float too, so that hashes stay)."""
    if is_dataclass(hint):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{source}: {key} must be a [{key}] table, not {value!r}")
        return _build(hint, value, f"{key}.", source)
    if get_origin(hint) is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: {key} must be a list, not {value!r}")
        return tuple(_typed(get_args(hint)[0], v, f"{key}[{i}]", source) for i, v in enumerate(value))
    accepted, what = _SCALARS[hint]
    if not isinstance(value, accepted) or (hint is not bool and isinstance(value, bool)):
        raise ConfigError(f"{source}: {key} must be {what}, not {value!r}")
    return value


def _build(cls: type, table: Mapping[str, Any], where: str, source: str) -> Any:
    """The dataclass `cls` from `table` (`where`: the table's key prefix in errors)."""
    hints = get_type_hints(cls)
    for key in table:
        if key not in hints:
            raise ConfigError(f"{source}: unknown key {where}{key!r}; known: {', '.join(sorted(hints))}")
    for f in fields(cls):
        if f.name not in table and f.default is MISSING:
            raise ConfigError(f"{source}: no key {where}{f.name}, and quick.toml must set every non-optional key")
    return cls(**{f.name: _typed(hints[f.name], table[f.name], f"{where}{f.name}", source)
                  for f in fields(cls) if f.name in table})


def _merged(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with the keys of `over` set, tables merged key by key (base's key order first)."""
    out = dict(base)
    for key, value in over.items():
        both = isinstance(out.get(key), Mapping) and isinstance(value, Mapping)
        out[key] = _merged(out[key], value) if both else value
    return out


def _read(path: Path) -> dict[str, Any]:
    return read_toml(path, "training config", hint="use 'quick', 'full', 'bcg' or a TOML file")


def load_train_config(ref: str | Path | None = None) -> TrainConfig:
    """The training config `ref`: a built-in name ('quick', 'full', 'bcg'), a TOML path, or None (= quick).

    A user file without a `name` is named after the file (its stem).
    """
    ref = "quick" if ref is None else ref
    path = CONFIG_DIR / f"{ref}.toml" if str(ref) in BUILTIN else Path(ref)
    data = _read(path)
    if str(ref) not in BUILTIN and "name" not in data:
        data = {**data, "name": path.stem}
    return TrainConfig.from_dict(data, f"training config {path}")
