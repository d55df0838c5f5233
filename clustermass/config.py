"""Settings: the one place that reads the environment and the optional TOML config file.

Precedence, lowest to highest: built-in defaults < TOML file (``--config`` or ``CMCAT_CONFIG``)
< ``CMCAT_*`` environment variables < explicit overrides (command-line options).
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from clustermass.errors import ConfigError

ENV_PREFIX = "CMCAT_"
#: Bounds of a `cmcat sql` statement timeout, seconds (PostgreSQL reads 0 as "no timeout"; its
#: limit is 2**31 - 1 ms).
SQL_TIMEOUT_RANGE_S = (0.1, 2_147_483.0)


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "cmcat"


@dataclass(frozen=True)
class Settings:
    """All tunable paths, URLs and limits of cmcat."""

    #: SQLAlchemy URL of an external PostgreSQL; None means the embedded server under data_dir.
    database_url: str | None = None
    #: Root of everything cmcat writes: embedded server data, cutouts, models, caches, plots.
    data_dir: Path = field(default_factory=_default_data_dir)
    #: Base URL of the SDSS Science Archive Server (frames live under {base}/dr12/boss/photoObj/...).
    sdss_base_url: str = "https://data.sdss.org/sas"
    #: Path of SDSS's field index (window_flist.fits, ~0.5 GB) under the SAS base URL
    #: (DR9 serves it as dr9/env/PHOTO_RESOLVE/window_flist.fits); `cmcat ingest fields --sas` fetches it.
    sdss_window_flist_path: str = "dr12/boss/resolve/2010-05-23/window_flist.fits"
    #: Local cache of downloaded SDSS frames; default data_dir/sdss-cache.
    sdss_cache_dir: Path | None = None
    #: Seconds before an SDSS HTTP request times out.
    sdss_timeout: float = 30.0
    #: Retries per SDSS request on timeouts, 5xx and 429.
    sdss_retries: int = 5
    #: Base seconds of the exponential backoff between SDSS retries (doubled per retry, jittered).
    sdss_backoff: float = 1.0
    #: Maximum SDSS requests per second per process (0 = unlimited).
    sdss_rate_limit: float = 5.0
    #: Parallel SDSS downloads per worker.
    sdss_concurrency: int = 4
    #: Dask worker processes for a local cluster.
    workers: int = 2
    #: Folder of the real catalogues and frames (tests and demo use it when present).
    real_data_dir: Path | None = None
    #: Seconds a `cmcat sql` statement may run (0.1 to 2147483; never off).
    sql_timeout: float = 30.0
    #: SQLAlchemy URL `cmcat sql` connects with, for a role that can only read cmcat's tables;
    #: None: the embedded server's cmcat_reader role, or database_url on an external server.
    sql_database_url: str | None = None

    def __post_init__(self) -> None:
        try:
            check_sql_timeout(self.sql_timeout)
        except ValueError as exc:
            raise ConfigError(f"setting 'sql_timeout' (CMCAT_SQL_TIMEOUT or the config file): {exc}") from None

    @property
    def cache_dir(self) -> Path:
        return self.sdss_cache_dir or self.data_dir / "sdss-cache"

    @property
    def embedded_dir(self) -> Path:
        """Data directory of the embedded PostgreSQL (its Unix socket lives here: keep it short)."""
        return self.data_dir / "pg"

    @property
    def cutout_dir(self) -> Path:
        return self.data_dir / "cutouts"

    @property
    def model_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def output_dir(self) -> Path:
        """Default folder for plots and reports."""
        return self.data_dir / "output"


_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}

#: Lower bound of each numeric setting and whether the bound itself is allowed.
_LOWER: dict[str, tuple[float, bool]] = {
    "sdss_timeout": (0, False),
    "sdss_retries": (0, True),
    "sdss_backoff": (0, True),
    "sdss_rate_limit": (0, True),
    "sdss_concurrency": (1, True),
    "workers": (1, True),
    "sql_timeout": (0, False),
}


def read_toml(path: Path, what: str, hint: str = "") -> dict[str, Any]:
    """The parsed TOML file `path` (`what` names it in errors, `hint` says what to give instead).

    A missing file, a folder, an unreadable file or invalid TOML is a one-line ConfigError.
    """
    tail = f"; {hint}" if hint else ""
    try:
        return tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist{tail}") from None
    except IsADirectoryError:
        raise ConfigError(f"{what} {path} is a folder, not a TOML file{tail}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} {path} is not valid TOML: not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise ConfigError(f"{what} {path} cannot be read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what} {path} is not valid TOML: {exc}") from None


def _coerce(name: str, value: Any, source: str) -> Any:
    """Turn a TOML or environment value into the type of the Settings field `name`."""
    if value is None or value == "":
        return None
    typ = str(_FIELDS[name].type)
    try:
        if "Path" in typ:
            return Path(os.path.expanduser(str(value)))
        if typ.startswith("int"):
            number: float = int(value)
        elif typ.startswith("float"):
            number = float(value)
        else:
            return str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: setting {name!r} = {value!r} is not a valid {typ}") from exc
    bound, inclusive = _LOWER[name]
    if not (number >= bound if inclusive else number > bound):  # NaN fails both
        raise ConfigError(f"{source}: setting {name!r} = {value!r} must be {'>=' if inclusive else '>'} {bound}")
    return number


def load_settings(
    config_file: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build Settings from defaults, a TOML file, CMCAT_* variables and explicit overrides."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    config_file = config_file or (Path(env["CMCAT_CONFIG"]) if env.get("CMCAT_CONFIG") else None)
    if config_file is not None:
        raw = read_toml(config_file, "config file")
        table = raw.get("cmcat", raw)
        if not isinstance(table, dict):
            raise ConfigError(
                f"config file {config_file}: 'cmcat' must be a [cmcat] table of settings (key = value lines), not {table!r}"
            )
        for key, value in table.items():
            if key not in _FIELDS:
                raise ConfigError(
                    f"config file {config_file}: unknown setting {key!r}; known: {', '.join(sorted(_FIELDS))}"
                )
            values[key] = _coerce(key, value, str(config_file))
    for name in _FIELDS:
        var = ENV_PREFIX + name.upper()
        if var in env:
            values[name] = _coerce(name, env[var], f"environment variable {var}")
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = _coerce(key, value, f"option --{key.replace('_', '-')}")
    values = {k: v for k, v in values.items() if v is not None}
    return Settings(**values)


def check_sql_timeout(seconds: float) -> float:
    """`seconds` if it is a usable statement timeout, else ValueError saying what is allowed."""
    low, high = SQL_TIMEOUT_RANGE_S
    if not (math.isfinite(seconds) and low <= seconds <= high):
        raise ValueError(f"a statement timeout is {low:g} to {high:.0f} seconds (it cannot be switched off), not {seconds!r}")
    return seconds
