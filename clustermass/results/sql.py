"""Read-only ad-hoc SQL for `cmcat sql`: one SELECT-like statement, held read-only three ways.

1. PostgreSQL's own parser (pglast, libpg_query) must see exactly one SELECT / WITH ... SELECT /
   VALUES / TABLE / SHOW / EXPLAIN (without ANALYZE) statement, with no SELECT ... INTO, no
   FOR UPDATE/SHARE and no data-modifying statement anywhere inside it.
2. The text goes to the server with the extended query protocol (psycopg 3, `Cursor.stream`):
   the server parses it as one prepared statement, which cannot hold two, so no hidden `;` can
   chain a COMMIT and a write even if step 1 misread the text.
3. It runs in a READ ONLY transaction (the session default too) with a statement timeout, always
   rolled back, as the role `clustermass.db.reader` picks: one that can only read cmcat's tables.

Rows come in chunks and the fetch stops after `max_rows`, so the client's memory stays bounded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

from pglast import ast
from pglast.parser import ParseError, parse_sql, scan
from sqlalchemy.engine import make_url

from clustermass.config import check_sql_timeout
from clustermass.db.urls import mask_url, scrub
from clustermass.errors import DatabaseError, InputError

ALLOWED = "EXPLAIN, SELECT, SHOW, TABLE, VALUES, WITH"
DEFAULT_MAX_ROWS = 10_000
CHUNK_ROWS = 1_000  # rows per round trip while streaming
CONNECT_TIMEOUT_S = 5
#: Roles whose members may read or write the server's files or run programs on it.
PRIVILEGED_ROLES = ("pg_read_server_files", "pg_write_server_files", "pg_execute_server_program")
_WRITES = (ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt, ast.MergeStmt)


def check_read_only(query: str) -> None:
    """Raise InputError unless PostgreSQL's parser sees exactly one read-only statement in `query`."""
    try:
        statements = parse_sql(query)
    except ParseError as exc:
        raise InputError(f"SQL is not valid: {exc}") from None
    if not statements:
        raise InputError("empty SQL query; give one statement, e.g. \"SELECT count(*) FROM clusters\"")
    if len(statements) > 1:
        raise InputError("cmcat sql runs exactly one statement; remove the ';' that chains several")
    stmt = statements[0].stmt
    if isinstance(stmt, ast.ExplainStmt):
        if any(opt.defname == "analyze" for opt in stmt.options or ()):
            raise InputError("EXPLAIN ANALYZE runs the statement: cmcat sql only reads, use plain EXPLAIN")
        if not isinstance(stmt.query, ast.SelectStmt):
            raise InputError(f"cmcat sql explains only SELECT-like statements ({ALLOWED})")
    elif not isinstance(stmt, (ast.SelectStmt, ast.VariableShowStmt)):
        raise InputError(
            f"cmcat sql only reads: {_first_keyword(query)} statements are refused (allowed: {ALLOWED}). "
            "Use psql with `cmcat db url --libpq` to write."
        )
    for node in _walk(stmt):
        if isinstance(node, ast.IntoClause):
            raise InputError("SELECT ... INTO creates a table: cmcat sql only reads (drop the INTO)")
        if isinstance(node, ast.LockingClause):
            raise InputError("SELECT ... FOR UPDATE/SHARE locks rows: cmcat sql only reads (drop the FOR clause)")
        if isinstance(node, _WRITES):
            raise InputError("a WITH holding INSERT/UPDATE/DELETE/MERGE writes: cmcat sql only reads")


def _walk(root: ast.Node) -> Iterator[ast.Node]:
    """Every node of the syntax tree under `root` (iterative: deep nesting cannot overflow)."""
    todo: list[object] = [root]
    while todo:
        item = todo.pop()
        if isinstance(item, tuple):
            todo.extend(item)
        elif isinstance(item, ast.Node):
            yield item
            todo.extend(getattr(item, member) for member in item)


def _first_keyword(query: str) -> str:
    """The statement's first keyword as PostgreSQL's lexer reads it (for messages)."""
    keywords = [t.name for t in scan(query) if t.kind != "NO_KEYWORD"]
    return keywords[0] if keywords else "such"


@dataclass
class SqlResult:
    columns: list[str]
    rows: list[tuple]
    truncated: bool  # more than max_rows rows were available


def run_read_only(
    url: str,
    query: str,
    timeout_s: float,
    max_rows: int = DEFAULT_MAX_ROWS,
    warn: Callable[[str], None] | None = None,
) -> SqlResult:
    """Run one read-only statement on the database at `url` with a statement timeout (seconds).

    `warn` hears (one line) when the session's role may read server files or run programs
    (a superuser, or a member of PRIVILEGED_ROLES): the parser, the protocol and the READ ONLY
    transaction still hold, but no role limits what the statement may call.
    """
    import psycopg

    check_read_only(query)
    try:
        check_sql_timeout(timeout_s)
    except ValueError as exc:
        raise InputError(f"cmcat sql: {exc}") from None
    conn = _connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SET TRANSACTION READ ONLY")
            # the quoting rules the parser above assumes, whatever the server's default
            cur.execute("SET LOCAL standard_conforming_strings = on")
            cur.execute(
                "SELECT set_config('statement_timeout', %s, true), current_user, bool_or(pg_has_role(r, 'USAGE'))"
                " FROM unnest(%s::name[]) AS r",
                (str(round(timeout_s * 1000)), list(PRIVILEGED_ROLES)),
            )
            _, role, privileged = cur.fetchone()
            if privileged and warn is not None:
                warn(
                    f"cmcat sql runs as role {role!r}, which can read server files or run programs; "
                    "set CMCAT_SQL_DATABASE_URL to a read-only role (cmcat_reader, made by `cmcat db upgrade`)"
                )
            columns, rows = _fetch(cur, query, max_rows)
    except psycopg.Error as exc:
        diag = getattr(exc, "diag", None)
        msg = (diag.message_primary if diag and diag.message_primary else str(exc)).strip().splitlines()[0]
        if isinstance(exc, psycopg.errors.QueryCanceled):
            msg += f" (limit {timeout_s:g} s: set CMCAT_SQL_TIMEOUT, sql_timeout in the config or --timeout)"
        raise InputError(f"SQL failed: {scrub(msg, url)}") from None
    finally:
        conn.close()  # never committed: the server rolls the transaction back
    return SqlResult(columns, [tuple(r) for r in rows[:max_rows]], len(rows) > max_rows)


def _fetch(cur, query: str, max_rows: int) -> tuple[list[str], list[tuple]]:
    """Column names and at most max_rows + 1 rows of `query`, streamed in chunks over the extended
    protocol; stopping early cancels the rest on the server."""
    from psycopg import capabilities

    size = min(CHUNK_ROWS, max_rows + 1) if capabilities.has_stream_chunked() else 1
    columns: list[str] | None = None
    rows: list[tuple] = []
    stream = cur.stream(query, size=size)
    try:
        for row in stream:
            if columns is None:
                columns = [d.name for d in cur.description]
            rows.append(row)
            if len(rows) > max_rows:
                break
    finally:
        stream.close()
    if columns is None:  # no rows, so no description from the stream: describe the statement it parsed
        described = cur.connection.pgconn.describe_prepared(b"")  # the unnamed one, kept until the next parse
        encoding = cur.connection.info.encoding
        columns = [described.fname(i).decode(encoding) for i in range(described.nfields)]
    return columns, rows


def _connect(url: str):
    """A fresh psycopg 3 connection whose every transaction is READ ONLY by default."""
    import psycopg

    libpq = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        return psycopg.connect(
            libpq,
            options="-c default_transaction_read_only=on",
            connect_timeout=CONNECT_TIMEOUT_S,
            application_name="cmcat sql",
        )
    except psycopg.Error as exc:
        reason = scrub(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__, url)
        raise DatabaseError(
            f"cmcat sql cannot connect to PostgreSQL at {mask_url(url)}: {reason}. Check CMCAT_SQL_DATABASE_URL "
            "(or CMCAT_DATABASE_URL), or run `cmcat db upgrade` to make the cmcat_reader role."
        ) from None
