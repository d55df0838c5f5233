from pathlib import Path

import pytest

from clustermass.config import load_settings
from clustermass.errors import ConfigError


def test_precedence_defaults_toml_env_overrides(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[cmcat]\nworkers = 3\nsdss_timeout = 12.5\nsdss_base_url = "http://toml"\n')
    s = load_settings(cfg, environ={"CMCAT_WORKERS": "5"}, overrides={"sdss_base_url": "http://cli"})
    assert s.workers == 5  # env beats TOML
    assert s.sdss_timeout == 12.5  # TOML beats default
    assert s.sdss_base_url == "http://cli"  # override beats all
    assert load_settings(environ={}).workers == 2


def test_derived_paths_follow_data_dir(tmp_path: Path) -> None:
    s = load_settings(environ={"CMCAT_DATA_DIR": str(tmp_path)})
    assert s.embedded_dir == tmp_path / "pg"
    assert s.cache_dir == tmp_path / "sdss-cache"
    assert s.model_dir == tmp_path / "models"


def test_unknown_key_and_bad_value_are_named(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("wrokers = 3\n")
    with pytest.raises(ConfigError, match="wrokers"):
        load_settings(cfg, environ={})
    with pytest.raises(ConfigError, match="CMCAT_WORKERS"):
        load_settings(environ={"CMCAT_WORKERS": "many"})
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "missing.toml", environ={})
