"""Schema management through Alembic: upgrade to head and report the current state."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text

from clustermass.db.models import TABLES
from clustermass.errors import DatabaseError

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def alembic_config() -> Config:
    if not (MIGRATIONS_DIR / "env.py").exists():
        raise DatabaseError(
            f"Alembic migrations not found in {MIGRATIONS_DIR}; install cmcat from its source tree (pip install -e .)"
        )
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Upgrade the schema (idempotent); return (revision before, revision after).

    A transaction-level advisory lock serialises concurrent upgrades from several processes.
    """
    cfg = alembic_config()
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('cmcat-migrations'))"))
        before = MigrationContext.configure(conn).get_current_revision()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
        after = MigrationContext.configure(conn).get_current_revision()
    return before, after


def row_counts(conn: Connection, tables: Sequence[str]) -> dict[str, int | None]:
    """Rows of each of cmcat's `tables` (None for a table the schema does not have yet)."""
    existing = set(inspect(conn).get_table_names())
    # Table names come from our own models, never from user input.
    return {table: int(conn.execute(text(f'SELECT count(*) FROM "{table}"')).scalar_one()) if table in existing else None
            for table in tables}


def status(engine: Engine) -> dict[str, Any]:
    """Current and head revision, server version and the row count of every cmcat table."""
    with engine.connect() as conn:
        version = conn.execute(text("SHOW server_version")).scalar_one()
        current = MigrationContext.configure(conn).get_current_revision()
        counts = row_counts(conn, TABLES)
    head = head_revision()
    return {
        "server_version": version,
        "current_revision": current,
        "head_revision": head,
        "up_to_date": current == head,
        "tables": counts,
    }
