"""The embedded PostgreSQL default, from the `pgserver` wheel.

A real PostgreSQL 16 server whose data directory lives under cmcat's data dir. It is started
on first use and left running (cleanup_mode=None) so the next `cmcat` call, a Dask worker or
`psql` reuses the same server and data. Works as root (pgserver runs it as a `pgserver` user).
"""

from __future__ import annotations

from pathlib import Path

from clustermass.errors import DatabaseError

DATABASE = "cmcat"


def _discard_copied_lock_files(pgdata: Path) -> None:
    """Delete pgdata's postmaster.pid and socket lock files if they name another data directory: a copy of a
    data directory taken while its server ran. Left there, they make pgserver and pg_ctl take that other
    server for this one's (and `cmcat` write to the other database, or stop it), and block a start here."""
    pgdata = Path(pgdata)
    for lock in [pgdata / "postmaster.pid", *pgdata.glob(".s.PGSQL.*.lock")]:
        try:
            lines = lock.read_text().splitlines()
        except (FileNotFoundError, UnicodeDecodeError):
            continue
        if len(lines) > 1 and Path(lines[1]).resolve() != pgdata.resolve():
            lock.unlink()


def _server_uri(pgdata: Path, cleanup_mode: str | None = None) -> str:
    import warnings

    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset; pgserver then uses /tmp/runtime-<uid>.
        warnings.simplefilter("ignore")
        import pgserver

    pgdata = Path(pgdata).expanduser()
    _discard_copied_lock_files(pgdata)
    try:
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        server = pgserver.get_server(pgdata, cleanup_mode=cleanup_mode)
    except Exception as exc:  # pgserver raises assorted subprocess/OS errors
        log = pgdata / "log"
        raise DatabaseError(
            f"could not start the embedded PostgreSQL in {pgdata}: {exc}. "
            f"See its log {log}; or set CMCAT_DATABASE_URL to use an external server."
        ) from exc
    return server.get_uri()


def ensure_database(pgdata: Path, database: str = DATABASE, cleanup_mode: str | None = None) -> str:
    """Start (or reuse) the embedded server in `pgdata`, create `database` if needed; return its URL.

    `cleanup_mode` None leaves the server running for later commands; tests pass "delete".
    """
    import psycopg2
    from psycopg2 import sql

    admin_uri = _server_uri(pgdata, cleanup_mode)
    conn = psycopg2.connect(admin_uri)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
            if cur.fetchone() is None:
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    finally:
        conn.close()
    # admin_uri is postgresql://postgres:@/postgres?host=<socket dir>
    head, _, query = admin_uri.partition("?")
    base = head.rsplit("/", 1)[0]
    return f"{base}/{database}?{query}".replace("postgresql://", "postgresql+psycopg2://", 1)


def stop(pgdata: Path) -> bool:
    """Stop the embedded server in `pgdata` if it runs; True if one was stopped."""
    from pgserver._commands import pg_ctl
    from pgserver.utils import PostmasterInfo

    _discard_copied_lock_files(Path(pgdata))
    info = PostmasterInfo.read_from_pgdata(Path(pgdata))
    if info is None or not info.is_running():
        return False
    import os

    user = "pgserver" if os.geteuid() == 0 else None
    pg_ctl(["-w", "stop", "-m", "fast"], pgdata=Path(pgdata), user=user)
    return True
