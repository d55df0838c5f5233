"""`cmcat sql`: one read-only statement, refused writes, timeouts, output formats."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from clustermass.config import load_settings
from clustermass.errors import ConfigError, DatabaseError, InputError
from clustermass.results import sql as sql_module
from clustermass.results.sql import check_read_only, run_read_only

from pipeline_helpers import add_clusters

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "query",
    [
        "INSERT INTO catalogs (name) VALUES ('x')",
        "DROP TABLE clusters",
        "SELECT 1; DROP TABLE clusters",
        "select 1 ;drop table clusters;",
        "  delete from clusters",
        "UPDATE clusters SET z = 0",
        "TRUNCATE predictions",
        "CREATE TABLE t (a int)",
        "COPY clusters TO PROGRAM 'true'",
        "SET TRANSACTION READ WRITE",
        "BEGIN",
        "/* comment */ ALTER TABLE clusters ADD COLUMN x int",
        "",
        "  ;  ",
        # read-like statements that write or lock: refused by the parser, not only by the server
        "SELECT * INTO stolen FROM clusters",
        "SELECT * FROM clusters FOR UPDATE",
        "SELECT * FROM (SELECT id FROM clusters FOR SHARE) s",
        "WITH d AS (DELETE FROM clusters RETURNING id) SELECT count(*) FROM d",
        "WITH a AS (SELECT 1), b AS (INSERT INTO catalogs (name) VALUES ('x') RETURNING 1) TABLE a",
        "EXPLAIN ANALYZE SELECT 1",
        "EXPLAIN (ANALYZE false, VERBOSE) SELECT 1",
        "EXPLAIN DELETE FROM clusters",
        "CREATE TABLE t AS SELECT 1",
        "RESET ROLE",
        "SET ROLE postgres",
        "SET SESSION AUTHORIZATION postgres",
        "DECLARE c CURSOR FOR SELECT 1",
        # the hidden semicolons: PostgreSQL ends a -- comment at \r, and $é$ is a quote
        "SELECT 1 --\r; COMMIT; BEGIN READ WRITE; CREATE TABLE pwn(i int); COMMIT",
        "SELECT $é$'$é$; COMMIT; BEGIN READ WRITE; CREATE TABLE pwn2(i int); COMMIT; SELECT $é$'$é$",
        "SELECT 'abc",
    ],
)
def test_writes_ddl_and_chains_are_refused(query):
    with pytest.raises(InputError):
        check_read_only(query)


@pytest.mark.parametrize(
    "query",
    [
        "SELECT ';' AS semi, 'it''s; fine' AS q",
        "SELECT $$a;b$$ AS d, $tag$x;y$tag$ AS e;",
        'SELECT 1 AS "weird;name" -- trailing; comment',
        "with x as (select 1 as a) select a from x",
        "(SELECT 1)",
        "EXPLAIN SELECT * FROM clusters",
        "EXPLAIN (VERBOSE, COSTS false) SELECT 1",
        "SELECT E'a\\';b' AS esc",
        "SHOW search_path",
        "TABLE clusters;",
        "VALUES (1, 'a;b')",
        "SELECT $é$;x$é$ AS d -- c;\r\n",
    ],
)
def test_single_read_statements_pass_the_check(query):
    check_read_only(query)


def test_refusals_say_why_in_one_line():
    for query, why in [("SELECT 1 --\r; COMMIT", "exactly one statement"), ("SELECT 'abc", "not valid"),
                       ("SELECT 1 INTO t", "INTO"), ("SELECT 1 FOR UPDATE", "FOR UPDATE"),
                       ("/* x */ COPY clusters TO STDOUT", "COPY statements are refused"),
                       ("EXPLAIN ANALYZE SELECT 1", "EXPLAIN ANALYZE")]:
        with pytest.raises(InputError, match=why) as info:
            check_read_only(query)
        assert "\n" not in str(info.value)


def test_run_read_only_on_postgres(db, reader_url, pg_url):
    add_clusters(db, 20)
    res = run_read_only(reader_url, "SELECT id, z FROM clusters WHERE z > 0 ORDER BY id", 5.0, max_rows=5)
    assert res.columns == ["id", "z"] and len(res.rows) == 5 and res.truncated
    res = run_read_only(reader_url, "SELECT 7 % 3 AS m, ':x' AS colon;", 5.0)
    assert res.rows == [(1, ":x")]
    res = run_read_only(reader_url, "SELECT id, name FROM clusters WHERE false", 5.0)
    assert res.columns == ["id", "name"] and res.rows == [] and not res.truncated
    # writes hidden in a SELECT-like statement: refused by the parser, else by the role or the
    # READ ONLY transaction (a superuser too)
    for url in (reader_url, pg_url):
        for sneaky in (
            "WITH d AS (DELETE FROM clusters RETURNING id) SELECT count(*) FROM d",
            "SELECT * INTO stolen FROM clusters",
            "SELECT nextval('clusters_id_seq')",
        ):
            with pytest.raises(InputError, match="only reads|read-only|permission denied"):
                run_read_only(url, sneaky, 5.0)
    with db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM clusters")).scalar_one() == 20
    with pytest.raises(InputError, match="statement timeout"):
        run_read_only(reader_url, "SELECT pg_sleep(2)", 0.2)
    with pytest.raises(InputError, match="does not exist"):
        run_read_only(reader_url, "SELECT * FROM no_such_table", 5.0)


def test_unreachable_sql_url_is_one_line_with_the_password_masked():
    with pytest.raises(DatabaseError, match=r"cmcat sql cannot connect to PostgreSQL at .*\*\*\*@127\.0\.0\.1:1") as info:
        run_read_only("postgresql://reader:Pw-secret-77@127.0.0.1:1/cmcat", "SELECT 1", 5.0)
    assert "Pw-secret-77" not in str(info.value) and "\n" not in str(info.value)


def test_fetch_stops_at_max_rows(reader_url):
    """Rows are streamed and the statement is cancelled at the limit: 6 of 10,000 slow rows (each
    5 ms and ~10 kB, so the server sends them as they come) arrive well within a 3 s timeout that
    the whole statement (50 s) would exceed."""
    start = time.monotonic()
    res = run_read_only(reader_url, "SELECT g, repeat('x', 10000) AS pad, pg_sleep(0.005) FROM generate_series(1, 10000) g",
                        3.0, max_rows=5)
    assert [r[0] for r in res.rows] == [1, 2, 3, 4, 5] and res.truncated
    assert time.monotonic() - start < 2.0


def test_server_runs_one_statement_even_if_the_parser_let_two_through(db, pg_url, monkeypatch):
    """The second wall: the text is one prepared statement on the server (extended protocol)."""
    monkeypatch.setattr(sql_module, "check_read_only", lambda query: None)
    with pytest.raises(InputError, match="cannot insert multiple commands into a prepared statement"):
        run_read_only(pg_url, "SELECT 1; COMMIT; BEGIN READ WRITE; CREATE TABLE pwn_two (i int); COMMIT", 5.0)
    with db.connect() as conn:
        assert conn.execute(text("SELECT to_regclass('pwn_two')")).scalar_one() is None


BAD_TIMEOUTS = ["0", "0.05", "-1", "nan", "inf", "1e12", "abc"]


def test_timeout_below_a_tenth_of_a_second_or_not_a_number_is_an_error(reader_url):
    """0 would mean "no timeout" to PostgreSQL: such a setting or argument is refused, not obeyed."""
    for value in BAD_TIMEOUTS:
        with pytest.raises(ConfigError, match="sql_timeout"):
            load_settings(environ={"CMCAT_SQL_TIMEOUT": value})
        if value != "abc":
            with pytest.raises(InputError, match="statement timeout"):
                run_read_only(reader_url, "SELECT 1", float(value))


@pytest.mark.parametrize("value", ["0", "nan", "abc"])
def test_cli_timeout_errors_exit_1_for_a_setting_usage_error_for_an_option(value, pg_url, reader_url, tmp_path):
    """A bad sql_timeout setting is one error line with exit code 1; a bad --timeout is a usage
    error, with the exit code of any other bad option value (--max-rows 0). Neither runs the query."""
    env = {**os.environ, "CMCAT_DATABASE_URL": pg_url, "CMCAT_SQL_DATABASE_URL": reader_url,
           "CMCAT_DATA_DIR": str(tmp_path / "data")}

    def cmcat(*args: str, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "clustermass", *args], env={**env, **extra},
                              capture_output=True, text=True, timeout=120)

    res = cmcat("sql", "SELECT 1", CMCAT_SQL_TIMEOUT=value)
    assert res.returncode == 1 and res.stdout == "", (res.stdout, res.stderr)
    assert "sql_timeout" in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    usage_code = cmcat("sql", "--max-rows", "0", "SELECT 1").returncode
    res = cmcat("sql", "--timeout", value, "SELECT 1")
    assert res.returncode == usage_code != 0 and res.stdout == "" and res.stderr, res.stderr


def test_cli_sql_formats_and_refusal(cli, db):
    add_clusters(db, 3)
    out = cli("sql", "SELECT id, name FROM clusters ORDER BY id", "--json")
    assert json.loads(out.stdout) == [{"id": 1, "name": "C00000"}, {"id": 2, "name": "C00001"}, {"id": 3, "name": "C00002"}]
    out = cli("sql", "SELECT id, name FROM clusters ORDER BY id LIMIT 2", "--csv")
    assert out.stdout.splitlines() == ["id,name", "1,C00000", "2,C00001"]
    out = cli("sql", "SELECT count(*) AS n FROM clusters")
    assert "3" in out.stdout
    out = cli("sql", "SELECT round(1.23456::numeric, 3) AS x, now()::date AS d", "--json")  # numeric, date
    assert json.loads(out.stdout)[0]["x"] == 1.235
    bad = cli("sql", "SELECT 1; DROP TABLE clusters", ok=False)
    assert bad.exit_code != 0 and "one statement" in str(bad.exception)
    with db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM clusters")).scalar_one() == 3


def test_session_itself_is_read_only(reader_url) -> None:
    """Beyond the per-transaction READ ONLY: the session default is read-only too."""
    result = run_read_only(reader_url, "SHOW default_transaction_read_only", timeout_s=5)
    assert result.rows == [("on",)]


def documented_queries() -> list[str]:
    """Every query the README, docs/*.md and scripts/demo.sh show: ```sql blocks (statements
    apart by blank lines) and `cmcat sql "..."` commands."""
    texts = [REPO / "README.md", REPO / "scripts" / "demo.sh", *sorted((REPO / "docs").glob("*.md"))]
    queries = []
    for path in texts:
        doc = path.read_text()
        for block in re.findall(r"```sql\n(.*?)```", doc, flags=re.S):
            queries += [q.strip() for q in block.split("\n\n") if q.strip()]
        queries += re.findall(r'cmcat sql "([^"]+)"', doc)
    return [q for q in queries if "..." not in q]  # placeholders such as "SELECT ..."


def test_documented_queries_run_as_the_reader(db, reader_url, cli):
    add_clusters(db, 3)
    queries = documented_queries()
    assert len(queries) >= 10, queries
    for query in queries:
        run_read_only(reader_url, query, 5.0)
    demo = [q for q in queries if "log_m500_xray_sz" in q]
    assert json.loads(cli("sql", demo[0], "--json").stdout) == []
    assert cli("sql", demo[0], "--csv").stdout.startswith("name,z,lambda,log_m500,err,log_m500_population,fold,log_m500_xray_sz,source\n")
