"""Engine and session creation for the embedded or an external PostgreSQL."""

from __future__ import annotations

import functools
from contextlib import contextmanager
from typing import Iterator

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from clustermass.config import Settings
from clustermass.db.urls import mask_url, normalise_url, scrub
from clustermass.errors import DatabaseError

CONNECT_TIMEOUT_S = 5


def resolve_url(settings: Settings) -> str:
    """The database URL to use: the external one if configured, else the embedded server's."""
    if settings.database_url:
        return normalise_url(settings.database_url)
    from clustermass.db.embedded import ensure_database

    return ensure_database(settings.embedded_dir)


@functools.lru_cache(maxsize=8)
def engine_for_url(url: str) -> Engine:
    """A pooled engine for `url` (cached per process, so Dask workers reuse connections)."""
    return create_engine(
        url,
        pool_pre_ping=True,
        connect_args={"connect_timeout": CONNECT_TIMEOUT_S, "application_name": "cmcat"},
    )


def get_engine(settings: Settings, check: bool = True) -> Engine:
    """Engine for the configured database; with `check`, fail fast with a clear message."""
    url = resolve_url(settings)
    engine = engine_for_url(url)
    if check:
        check_connection(engine, url)
    return engine


def check_connection(engine: Engine, url: str) -> None:
    """Raise DatabaseError naming the (masked) URL when the server cannot be reached."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except DBAPIError as exc:  # connection refused, bad credentials, an option libpq does not know
        reason = scrub(str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc), url)
        raise DatabaseError(
            f"cannot reach PostgreSQL at {mask_url(url)}: {reason}. "
            "Check that the server runs and the URL (CMCAT_DATABASE_URL or --database-url) is right, "
            "or unset it to use the embedded server."
        ) from None


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One transaction: commit on success, roll back on any error."""
    session = sessionmaker(engine)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
