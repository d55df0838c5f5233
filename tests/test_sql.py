"""`cmcat sql`: one read-only statement, refused writes, timeouts, output formats."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from clustermass.errors import InputError
from clustermass.pipeline.sql import check_read_only, run_read_only, strip_sql

from pipeline_helpers import add_clusters


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
        "SELECT E'a\\';b' AS esc",
    ],
)
def test_single_read_statements_pass_the_check(query):
    assert check_read_only(query)


def test_strip_blanks_literals_and_comments():
    assert ";" not in strip_sql("SELECT 'a;b', \"c;d\", $q$e;f$q$ /* g; /* h; */ */ -- i;\n")
    with pytest.raises(InputError, match="unclosed"):
        strip_sql("SELECT 'abc")


def test_run_read_only_on_postgres(db):
    add_clusters(db, 20)
    res = run_read_only(db, "SELECT id, z FROM clusters WHERE z > 0 ORDER BY id", 5.0, max_rows=5)
    assert res.columns == ["id", "z"] and len(res.rows) == 5 and res.truncated
    res = run_read_only(db, "SELECT 7 % 3 AS m, ':x' AS colon;", 5.0)
    assert res.rows == [(1, ":x")]
    # PostgreSQL itself refuses writes hidden in a SELECT-like statement
    for sneaky in (
        "WITH d AS (DELETE FROM clusters RETURNING id) SELECT count(*) FROM d",
        "SELECT * INTO stolen FROM clusters",
        "SELECT nextval('clusters_id_seq')",
    ):
        with pytest.raises(InputError, match="read-only"):
            run_read_only(db, sneaky, 5.0)
    with db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM clusters")).scalar_one() == 20
    with pytest.raises(InputError, match="statement timeout"):
        run_read_only(db, "SELECT pg_sleep(2)", 0.2)
    with pytest.raises(InputError, match="does not exist"):
        run_read_only(db, "SELECT * FROM no_such_table", 5.0)


def test_cli_sql_formats_and_refusal(cli, db):
    add_clusters(db, 3)
    out = cli("sql", "SELECT id, name FROM clusters ORDER BY id", "--json")
    assert json.loads(out.stdout) == [{"id": 1, "name": "C00000"}, {"id": 2, "name": "C00001"}, {"id": 3, "name": "C00002"}]
    out = cli("sql", "SELECT id, name FROM clusters ORDER BY id LIMIT 2", "--csv")
    assert out.stdout.splitlines() == ["id,name", "1,C00000", "2,C00001"]
    out = cli("sql", "SELECT count(*) AS n FROM clusters")
    assert "3" in out.stdout
    bad = cli("sql", "SELECT 1; DROP TABLE clusters", ok=False)
    assert bad.exit_code != 0 and "one statement" in str(bad.exception)
    with db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM clusters")).scalar_one() == 3


def test_session_itself_is_read_only(db) -> None:
    """Beyond the per-transaction READ ONLY: the session default is read-only too."""
    from clustermass.pipeline.sql import run_read_only

    result = run_read_only(db, "SHOW default_transaction_read_only", timeout_s=5)
    assert result.rows == [("on",)]
