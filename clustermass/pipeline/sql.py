"""Read-only ad-hoc SQL for `cmcat sql`: one SELECT-like statement, READ ONLY, with a timeout.

Defence in depth: the session is opened with `default_transaction_read_only=on`; the text
must be a single statement starting with SELECT, WITH, VALUES, TABLE, SHOW or EXPLAIN (checked outside quotes and comments), and it runs inside a READ ONLY
transaction with `statement_timeout`, so data-modifying CTEs, SELECT INTO, nextval() and the
like are refused by PostgreSQL itself. The transaction is always rolled back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.pool import NullPool

from clustermass.errors import InputError

ALLOWED_FIRST = {"select", "with", "values", "table", "show", "explain"}
_DOLLAR = re.compile(r"\$[A-Za-z_0-9]*\$")


def strip_sql(query: str) -> str:
    """The query with comments removed and string/identifier literals blanked, for checking only.

    Handles '...' (with '' escapes), E'...' backslash escapes, "..." identifiers, $tag$...$tag$
    bodies, -- line comments and nested /* */ comments. Raises InputError on an unclosed one.
    """
    out: list[str] = []
    i, n = 0, len(query)
    while i < n:
        c = query[i]
        nxt = query[i + 1] if i + 1 < n else ""
        if c == "-" and nxt == "-":
            j = query.find("\n", i)
            i = n if j < 0 else j
            out.append(" ")
        elif c == "/" and nxt == "*":
            depth, i = 1, i + 2
            while i < n and depth:
                if query.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif query.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
            if depth:
                raise InputError("SQL has an unclosed /* comment")
            out.append(" ")
        elif c in "'\"":
            backslash = c == "'" and i > 0 and query[i - 1] in "eE" and not _in_word(query, i - 1)
            j = i + 1
            while True:
                if j >= n:
                    raise InputError(f"SQL has an unclosed {c} quote")
                if backslash and query[j] == "\\":
                    j += 2
                    continue
                if query[j] == c:
                    if j + 1 < n and query[j + 1] == c:
                        j += 2
                        continue
                    break
                j += 1
            out.append(c + c)
            i = j + 1
        elif c == "$" and not _in_word(query, i) and (m := _DOLLAR.match(query, i)):
            tag = m.group(0)
            end = query.find(tag, m.end())
            if end < 0:
                raise InputError(f"SQL has an unclosed {tag} quote")
            out.append("''")
            i = end + len(tag)
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _in_word(query: str, i: int) -> bool:
    """Whether query[i] continues an identifier or number, as PostgreSQL's lexer sees it: then
    an E before a quote is not an escape-string prefix and a '$' does not open a dollar quote
    (`name'\\'` and `a$b$` are a type-cast literal and an identifier, not quotes)."""
    if i == 0:
        return False
    prev = query[i - 1]
    return prev.isalnum() or prev in "_$" or ord(prev) > 127


def check_read_only(query: str) -> str:
    """Return the single statement (trailing ';' removed) or raise InputError explaining why not."""
    bare = strip_sql(query).strip()
    while bare.endswith(";"):
        bare = bare[:-1].rstrip()
    if not bare:
        raise InputError("empty SQL query; give one statement, e.g. \"SELECT count(*) FROM clusters\"")
    if ";" in bare:
        raise InputError("cmcat sql runs exactly one statement; remove the ';' that chains several")
    first = bare.split(None, 1)[0].lower().lstrip("(")
    if first not in ALLOWED_FIRST:
        raise InputError(
            f"cmcat sql only reads: {first.upper()} statements are refused (allowed: "
            f"{', '.join(sorted(a.upper() for a in ALLOWED_FIRST))}). Use psql with `cmcat db url --libpq` to write."
        )
    statement = query.strip()
    while statement.endswith(";"):
        statement = statement[:-1].rstrip()
    return statement


@dataclass
class SqlResult:
    columns: list[str]
    rows: list[tuple]
    truncated: bool  # more than max_rows rows were available


def run_read_only(engine: Engine, query: str, timeout_s: float, max_rows: int | None = None) -> SqlResult:
    """Run one read-only statement in a READ ONLY transaction with a statement timeout (seconds)."""
    import psycopg2

    statement = check_read_only(query)
    # A fresh, unpooled session whose every transaction is READ ONLY by default: even a statement
    # that slipped past the check and ended the transaction could not write in the next one.
    session_ro = create_engine(
        engine.url,
        poolclass=NullPool,
        connect_args={"options": "-c default_transaction_read_only=on", "connect_timeout": 5},
    )
    with session_ro.connect() as conn:
        trans = conn.begin()
        try:
            conn.execute(text("SET TRANSACTION READ ONLY"))
            # the quoting rules strip_sql assumes, whatever the server's default
            conn.execute(text("SET LOCAL standard_conforming_strings = on"))
            conn.execute(text("SELECT set_config('statement_timeout', :ms, true)"), {"ms": str(int(timeout_s * 1000))})
            # the DBAPI cursor without parameters: no '%' or ':' interpretation of the user's text
            with conn.connection.driver_connection.cursor() as cur:
                cur.execute(statement)
                if cur.description is None:
                    return SqlResult([], [], False)
                columns = [d.name for d in cur.description]
                rows = cur.fetchmany(max_rows + 1) if max_rows is not None else cur.fetchall()
        except psycopg2.Error as exc:
            msg = (exc.pgerror or str(exc)).strip().splitlines()[0]
            if isinstance(exc, psycopg2.errors.QueryCanceled):
                msg += f" (limit {timeout_s:g} s: set CMCAT_SQL_TIMEOUT or sql_timeout in the config)"
            raise InputError(f"SQL failed: {msg}") from None
        finally:
            trans.rollback()
    session_ro.dispose()
    truncated = max_rows is not None and len(rows) > max_rows
    kept = rows[:max_rows] if max_rows is not None else rows
    return SqlResult(columns, [tuple(r) for r in kept], truncated)
