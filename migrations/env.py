"""Alembic environment: the only way cmcat's schema is made or changed."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from clustermass.db.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from clustermass.config import load_settings
    from clustermass.db.engine import get_engine

    url = config.get_main_option("sqlalchemy.url")
    settings = load_settings(overrides={"database_url": url} if url else None)
    with get_engine(settings).connect() as conn:
        _run(conn)


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
