"""Shared fixtures: a real PostgreSQL (throwaway embedded server or CMCAT_TEST_DATABASE_URL),
a clean schema per test, settings pointing at it, a CLI runner, and the real data folder.
Tests marked remote_data reach the real SDSS servers: they run only with --remote-data or
CMCAT_REMOTE_DATA=1 (CI's `-m ''` selects every marker, so the marker alone cannot keep them out)."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import pytest
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from clustermass.config import Settings, load_settings
from clustermass.db import migrate
from clustermass.db.engine import engine_for_url
from clustermass.db.models import TABLES
from clustermass.db.urls import normalise_url

REPO = Path(__file__).resolve().parents[1]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--remote-data", action="store_true",
                     help="run the tests marked remote_data (they download from the real SDSS servers)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--remote-data") or os.environ.get("CMCAT_REMOTE_DATA") == "1":
        return
    skip = pytest.mark.skip(reason="reaches the real SDSS servers: run with --remote-data (or CMCAT_REMOTE_DATA=1)")
    for item in items:
        if "remote_data" in item.keywords:
            item.add_marker(skip)


def real_data_dir() -> Path | None:
    """The real catalogues/frames folder: CMCAT_REAL_DATA_DIR or ../shared/data/real."""
    env = os.environ.get("CMCAT_REAL_DATA_DIR")
    path = Path(env) if env else REPO.parent / "shared" / "data" / "real"
    return path if path.is_dir() else None


@pytest.fixture(scope="session")
def real_data() -> Path:
    path = real_data_dir()
    if path is None:
        pytest.skip("real data folder absent (../shared/data/real or CMCAT_REAL_DATA_DIR)")
    return path


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """URL of a real PostgreSQL for the test session."""
    external = os.environ.get("CMCAT_TEST_DATABASE_URL")
    if external:
        yield normalise_url(external)
        return
    from clustermass.db.embedded import ensure_database, stop

    # Short path: the server's Unix socket lives in its data directory (< ~100 chars).
    root = Path(tempfile.mkdtemp(prefix="cmt", dir="/tmp"))
    try:
        yield ensure_database(root / "pg", "cmcat_test", cleanup_mode="delete")
    finally:
        # stop before deleting: a server whose data folder is gone can no longer be stopped by pg_ctl at exit
        stop(root / "pg")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_engine(pg_url: str) -> Engine:
    engine = engine_for_url(pg_url)
    migrate.upgrade(engine)
    return engine


@pytest.fixture(scope="session")
def reader_url(pg_engine: Engine, pg_url: str) -> str:
    """URL of the cmcat_reader role (migration 0002) on the test server, with a fresh password
    (so that it works on a server with password authentication too)."""
    from sqlalchemy.engine import make_url

    from clustermass.db.reader import READER_ROLE

    password = secrets.token_urlsafe(16)
    with pg_engine.begin() as conn:
        conn.execute(text("ALTER ROLE cmcat_reader PASSWORD :p"), {"p": password})
    return make_url(pg_url).set(username=READER_ROLE, password=password).render_as_string(hide_password=False)


@pytest.fixture
def db(pg_engine: Engine) -> Engine:
    """The test database with every cmcat table emptied (ids restart at 1)."""
    names = ", ".join(f'"{t}"' for t in TABLES)
    with pg_engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    return pg_engine


@pytest.fixture
def settings(pg_url: str, tmp_path: Path) -> Settings:
    return load_settings(overrides={"database_url": pg_url, "data_dir": tmp_path / "data"}, environ={})


@pytest.fixture
def cli(db: Engine, pg_url: str, tmp_path: Path):
    """Run `cmcat ARGS...` in-process against the test database; returns the click Result."""
    from clustermass.cli import app

    env = {"CMCAT_DATABASE_URL": pg_url, "CMCAT_DATA_DIR": str(tmp_path / "data")}

    def run(*args: str, ok: bool = True):
        result = CliRunner().invoke(app, list(args), env=env, catch_exceptions=True)
        if ok and result.exit_code != 0:
            raise AssertionError(f"cmcat {' '.join(args)} failed ({result.exit_code}): {result.output}\n{result.exception!r}")
        return result

    return run


@pytest.fixture(scope="session")
def universe(tmp_path_factory) -> Path:
    """A 4,000-cluster mock universe (seed 21) on disk, built once and only read by the tests."""
    from clustermass.mock.population import build_universe
    from clustermass.mock.writers import write_universe

    out = tmp_path_factory.mktemp("universe")
    write_universe(build_universe(4000, 21), out, {"n": 4000, "seed": 21, "area_deg2": None})
    return out
