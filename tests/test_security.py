"""Security: `cmcat sql` cannot write nor reach the server's files and programs, no SQL is
built from user input, injection strings are stored as data, passwords never leak, and files
cmcat writes are not world-writable.

Complements tests/test_sql.py (the basic refusals and the statement timeout live there).
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st
from pglast.parser import parse_sql
from sqlalchemy import make_url, text

from clustermass.db import embedded, migrate
from clustermass.db.engine import engine_for_url
from clustermass.db.urls import mask_url, parse_url, scrub
from clustermass.db.models import TABLES
from clustermass.errors import CmcatError, InputError
from clustermass.model.registry import get_model, save_model
from clustermass.results.sql import check_read_only, run_read_only
from clustermass.pipeline.runner import execute_tile
from clustermass.pipeline.runs import prepare_run
from clustermass import sky

import faults
from pipeline_helpers import add_clusters
from test_ingest import snapshot

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "Pw-7rQz_secret-9x"
INJECTIONS = [
    "x'); DROP TABLE clusters; --",
    "1 OR 1=1",
    "' OR '1'='1",
    'a"; DELETE FROM catalogs; --',
    "%(id)s %s :id $1 $$;$$",
    "name'\\';COMMIT;DROP TABLE clusters;--'",
    "Robert'); TRUNCATE predictions CASCADE;--",
]


def _tables(conn) -> set[str]:
    return set(conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).scalars())


# --------------------------------------------------------------------------- cmcat sql

SNEAKY = [
    # the two lexer disagreements found by these tests: PostgreSQL sees a chained COMMIT + DDL
    "SELECT name'\\';COMMIT;CREATE TABLE pwned (a int);--'",
    "SELECT 1 AS a$b$;COMMIT;CREATE TABLE pwned (a int);--$b$",
    "SELECT x$q$ FROM (SELECT 1 AS x$q$) s;COMMIT;CREATE TABLE pwned (a int)",
    # writes hidden in read-like statements: refused by the READ ONLY transaction
    "EXPLAIN ANALYZE DELETE FROM clusters",
    "EXPLAIN ANALYZE INSERT INTO catalogs (name, kind, path, sha256, n_rows) VALUES ('p', 'k', 'p', 's', 0)",
    "WITH t AS (UPDATE clusters SET z = 0 RETURNING 1) SELECT count(*) FROM t",
    "SELECT lo_import('/etc/hostname')",
    "SELECT * FROM clusters FOR UPDATE",
    "SELECT set_config('transaction_read_only', 'off', true)",
    "SELECT setval('clusters_id_seq', 999)",
    "VALUES (1); DROP TABLE clusters",
    "TABLE clusters; TRUNCATE clusters",
    "SHOW search_path; CREATE TABLE pwned (a int)",
    "/* ; */ SELECT 1 /* nested /* ; */ */; CREATE TABLE pwned (a int)",
    "SELECT E'\\'';CREATE TABLE pwned (a int);--'",
    "SELECT 'a' -- ;\n; CREATE TABLE pwned (a int)",
    "DO $$BEGIN CREATE TABLE pwned (a int); END$$",
    "CALL pg_catalog.pg_sleep(0)",
    "COPY (SELECT 1) TO '/tmp/pwned.csv'",
]


def test_sql_sneaky_writes_and_chains_change_nothing(cli, db, pg_url):
    """As the superuser (pg_url): the parser, the extended protocol and the READ ONLY transaction
    hold without the help of the reader role."""
    add_clusters(db, 5)
    before = snapshot(db)
    with db.connect() as conn:
        tables = _tables(conn)
        seq = conn.execute(text("SELECT last_value FROM clusters_id_seq")).scalar_one()
    for query in SNEAKY:
        with pytest.raises(InputError):
            run_read_only(pg_url, query, 5.0)
        res = cli("sql", query, "--json", ok=False)  # the same through the command line
        assert res.exit_code != 0 and isinstance(res.exception, CmcatError), (query, res.output)
    with db.connect() as conn:
        assert _tables(conn) == tables
        assert conn.execute(text("SELECT last_value FROM clusters_id_seq")).scalar_one() == seq
        assert conn.execute(text("SHOW default_transaction_read_only")).scalar_one() == "off"
    assert snapshot(db) == before
    assert not Path("/tmp/pwned.csv").exists()


def test_sql_timeout_cannot_be_lifted_from_inside_the_statement(db, pg_url):
    with pytest.raises(InputError, match="statement timeout"):
        run_read_only(pg_url, "SELECT set_config('statement_timeout', '0', true), pg_sleep(3)", 0.3)
    # the timeout and read-only mode end with the rolled-back transaction: the pool stays clean
    with db.connect() as conn:
        assert conn.execute(text("SHOW statement_timeout")).scalar_one() == "0"
        assert conn.execute(text("SHOW transaction_read_only")).scalar_one() == "off"


FRAGMENTS = ["SELECT 1", " ", ";", "COMMIT", "CREATE TABLE pwned (a int)", "'", "\\", "E", "name", "$b$", "$", "a",
             "--", "/*", "*/", "\n", '"', "(", ")", "AS x", "e'"]


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
           derandomize=True)
@given(st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=14))
def test_fuzz_sql_check_never_lets_ddl_through(db, pg_url, parts):
    """Whatever the check lets through runs read-only: no fragment soup ever creates a table."""
    try:
        run_read_only(pg_url, "".join(parts), 2.0)
    except InputError:
        pass
    with db.connect() as conn:
        assert "pwned" not in _tables(conn), "".join(parts)


# --------------------------------------------------------------------------- cmcat sql: the issue's bypasses

#: The texts that ran writes (and a program) as the superuser before the parser, the extended
#: protocol and the reader role: PostgreSQL ends a -- comment at \r, and $é$ opens a dollar quote.
ISSUE_CASES = {
    "cr_comment_then_create_table": "SELECT 1 --\r; COMMIT; BEGIN READ WRITE; CREATE TABLE pwn(i int); COMMIT",
    "cr_comment_then_copy_to_program": "SELECT 1 --\r; COMMIT; COPY (SELECT 1) TO PROGRAM 'id > MARKER'",
    "non_ascii_dollar_tag": "SELECT $é$'$é$; COMMIT; BEGIN READ WRITE; CREATE TABLE pwn2(i int); COMMIT; SELECT $é$'$é$",
}
SERVER_FUNCTIONS = ["pg_read_file('/etc/hostname')", "pg_ls_dir('/')", "pg_reload_conf()"]


@dataclass
class Home:
    """A cmcat data dir whose embedded server (cmcat's default) the `cmcat` processes start."""

    env: dict[str, str]
    marker: Path  # where COPY TO PROGRAM would write: a folder the server's OS user may write to
    admin_url: str = ""


@pytest.fixture(scope="module")
def embedded_home() -> Home:
    root = Path(tempfile.mkdtemp(prefix="cme", dir="/tmp"))  # short: the server's socket lives inside
    (root / "pw").mkdir()
    (root / "pw").chmod(0o777)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMCAT_")}
    home = Home({**env, "CMCAT_DATA_DIR": str(root / "data")}, root / "pw" / "x")
    first = _cmcat(home.env, "sql", "SELECT current_user AS u", "--json")  # starts the server, migrates
    assert first.returncode == 0 and json.loads(first.stdout) == [{"u": "cmcat_reader"}], first.stderr
    assert "warning" not in first.stderr
    home.admin_url = embedded.ensure_database(root / "data" / "pg")  # the superuser, to look
    yield home
    engine_for_url(home.admin_url).dispose()
    embedded.stop(root / "data" / "pg")
    shutil.rmtree(root, ignore_errors=True)


def _cmcat(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clustermass", *args], env=env, capture_output=True, text=True,
                          timeout=240)


def _nothing_planted(url: str, marker: Path) -> None:
    with engine_for_url(url).connect() as conn:
        assert not _tables(conn) & {"pwn", "pwn2"}
    assert not marker.exists(), marker.read_text()


@pytest.mark.parametrize("server", ["embedded", "external_superuser"])
@pytest.mark.parametrize("case", list(ISSUE_CASES))
def test_issue_bypasses_run_nothing(embedded_home, pg_url, db, case, server):
    """Through a real `cmcat`: on the default embedded server (as cmcat_reader) and on an external
    server whose URL is a superuser's (no reader role to help), nothing is created, no program runs."""
    env = embedded_home.env if server == "embedded" else {**embedded_home.env, "CMCAT_DATABASE_URL": pg_url}
    res = _cmcat(env, "sql", ISSUE_CASES[case].replace("MARKER", str(embedded_home.marker)))
    assert res.returncode == 1 and res.stdout == "" and "exactly one statement" in res.stderr, res.stderr
    _nothing_planted(embedded_home.admin_url if server == "embedded" else pg_url, embedded_home.marker)


@pytest.mark.parametrize("call", SERVER_FUNCTIONS)
def test_server_files_and_admin_functions_are_refused(embedded_home, call):
    res = _cmcat(embedded_home.env, "sql", f"SELECT {call}")
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 1 and res.stdout == "" and len(lines) == 1, res.stderr
    assert "permission denied for function" in lines[0]


def test_external_server_reader_url_or_a_warning(db, pg_url, reader_url, tmp_path):
    """External server: CMCAT_SQL_DATABASE_URL runs as the reader; without it, as the main URL's
    role, with a warning when that role can read server files or run programs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMCAT_")}
    env.update(CMCAT_DATABASE_URL=pg_url, CMCAT_DATA_DIR=str(tmp_path / "data"))
    res = _cmcat(env, "sql", "SELECT current_user AS u", "--json")
    assert res.returncode == 0 and json.loads(res.stdout) == [{"u": "postgres"}]
    warning = res.stderr.strip().splitlines()
    assert len(warning) == 1 and warning[0].startswith("warning:") and "CMCAT_SQL_DATABASE_URL" in warning[0]
    env["CMCAT_SQL_DATABASE_URL"] = reader_url
    res = _cmcat(env, "sql", "SELECT current_user AS u", "--json")
    assert res.returncode == 0 and json.loads(res.stdout) == [{"u": "cmcat_reader"}] and res.stderr == ""
    for call in SERVER_FUNCTIONS:
        res = _cmcat(env, "sql", f"SELECT {call}")
        assert res.returncode == 1 and "permission denied for function" in res.stderr, res.stderr


def test_reader_role_reads_cmcat_tables_and_nothing_more(db, pg_engine, reader_url):
    with db.connect() as conn:
        role = conn.execute(text("SELECT * FROM pg_roles WHERE rolname = 'cmcat_reader'")).mappings().one()
        assert role["rolcanlogin"] and not any(role[k] for k in ("rolsuper", "rolcreaterole", "rolcreatedb",
                                                                 "rolreplication", "rolbypassrls"))
        assert conn.execute(text("SELECT count(*) FROM pg_auth_members WHERE member = :o"), {"o": role["oid"]}).scalar_one() == 0
        for table in TABLES:
            assert conn.execute(text("SELECT has_table_privilege('cmcat_reader', :t, 'SELECT') "
                                     "AND NOT has_table_privilege('cmcat_reader', :t, 'INSERT, UPDATE, DELETE, TRUNCATE')"),
                                {"t": table}).scalar_one(), table
    with pg_engine.begin() as conn:  # a table made after the migration follows (default privileges)
        conn.execute(text("CREATE TABLE later_table (i int)"))
    try:
        assert run_read_only(reader_url, "SELECT count(*) FROM later_table", 5.0).rows == [(0,)]
    finally:
        with pg_engine.begin() as conn:
            conn.execute(text("DROP TABLE later_table"))
    # no way back to a privileged role from inside a statement: the session user is the reader
    for escape in ("SELECT set_config('role', 'postgres', false)",
                   "SELECT set_config('session_authorization', 'postgres', false)"):
        with pytest.raises(InputError, match="permission denied"):
            run_read_only(reader_url, escape, 5.0)
    for escape in ("RESET ROLE", "SET ROLE postgres", "RESET SESSION AUTHORIZATION", "SET SESSION AUTHORIZATION postgres"):
        with pytest.raises(InputError, match="only reads"):
            run_read_only(reader_url, escape, 5.0)


def test_reader_migration_downgrades_and_upgrades(pg_engine, reader_url):
    from alembic import command

    def reader_grants(conn) -> int:
        return conn.execute(text("SELECT count(*) FROM information_schema.role_table_grants "
                                 "WHERE grantee = 'cmcat_reader'")).scalar_one()

    cfg = migrate.alembic_config()
    with pg_engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0001")
        assert reader_grants(conn) == 0
    assert migrate.upgrade(pg_engine) == ("0001", migrate.head_revision())
    with pg_engine.begin() as conn:
        assert reader_grants(conn) >= len(TABLES)
        conn.execute(text("ALTER ROLE cmcat_reader PASSWORD :p"), {"p": make_url(reader_url).password})
    assert run_read_only(reader_url, "SELECT current_user", 5.0).rows == [("cmcat_reader",)]


# --------------------------------------------------------------------------- cmcat sql: generated texts

HYP_MARKERS = Path(tempfile.gettempdir()) / f"cmcat-hyp-{os.getpid()}"
PLANTS = ["CREATE TABLE pwn_h (i int)", "CREATE ROLE pwn_h_role", f"COPY (SELECT 1) TO PROGRAM 'touch {HYP_MARKERS}/m'"]
PRELUDES = ["", "COMMIT; ", "COMMIT; BEGIN READ WRITE; ", "RESET ROLE; ", "SET SESSION AUTHORIZATION DEFAULT; "]
#: a write behind a semicolon, after what would let it run (end the READ ONLY transaction, drop a role)
_planted = st.builds(lambda prelude, plant: f"; {prelude}{plant}", st.sampled_from(PRELUDES), st.sampled_from(PLANTS))
_inner = st.lists(st.one_of(st.text(st.sampled_from(list("ab ;'\"$\\*/-\r\nEeé中()")), max_size=4), _planted),
                  max_size=2).map("".join)
_tag = st.text(st.sampled_from(list("aZ_9éßжΩ中$")), max_size=3)
#: what may hide the text behind it from a lexer that gets PostgreSQL's rules wrong: comments
#: (valid anywhere), literals (valid as a SELECT item) and stray quote and comment characters
_comment = st.one_of(
    st.builds(lambda body, end: f"--{body}{end}", _inner, st.sampled_from(["\n", "\r", "\r\n", ""])),
    st.builds(lambda a, b, c, nest: f"/*{a}/*{b}*/{c}*/" if nest else f"/*{a}*/", _inner, _inner, _inner, st.booleans()),
)
_literal = st.one_of(
    st.builds(str.format, st.sampled_from(["'{}'", "E'{}'", "e'{}'", '"{}"', "U&'{}'", "x'{}'"]), _inner),
    st.builds(lambda tag, body, close: f"${tag}${body}" + (f"${tag}$" if close else ""), _tag, _inner, st.booleans()),
)
_junk = st.sampled_from([";", "'", '"', "$", "\\", "E", "--", "/*", "*/", "\r", "\n", " ", "(", ")", "$é$", "$$"])
_hiders = st.lists(st.one_of(_comment, _comment, _junk), max_size=2).map("".join)
HEADS = ["SELECT 1", "SELECT 1 AS a", "VALUES (1)", "SHOW search_path", "TABLE catalogs", "EXPLAIN SELECT 1", ""]
#: a read-like statement with hiders, the planted writes, and an end that may close what a hider opened
SQL_TEXTS = st.builds(
    lambda head, hiders, plants, tail: f"{head} {hiders}" + "".join(plants) + tail,
    st.one_of(st.sampled_from(HEADS), _literal.map("SELECT ".__add__)), _hiders, st.lists(_planted, max_size=2),
    st.one_of(st.sampled_from(["", ";", "; COMMIT"]), _comment, _junk, _literal.map("; SELECT ".__add__)),
)


@pytest.fixture(scope="module")
def hyp_markers() -> Path:
    HYP_MARKERS.mkdir()
    HYP_MARKERS.chmod(0o777)  # the server's OS user could write here
    yield HYP_MARKERS
    shutil.rmtree(HYP_MARKERS)


@hsettings(max_examples=500, deadline=None, derandomize=True)
@given(SQL_TEXTS)
def test_generated_texts_never_plant_anything(pg_engine, pg_url, hyp_markers, query):
    """Comments (-- ended by \n, \r, \r\n; nested /* */), quotes, E'' strings, dollar quotes with
    any tag and semicolons, with writes planted behind them, run as the superuser (no reader role
    to help): no table, role or file ever appears; an accepted text is one statement to the parser
    and to the server."""
    try:
        check_read_only(query)
    except InputError:
        pass
    else:
        assert len(parse_sql(query)) == 1, query
    try:
        run_read_only(pg_url, query, 2.0)
    except InputError as exc:
        assert "multiple commands" not in str(exc), query  # the server never sees two where the parser saw one
    with pg_engine.begin() as conn:
        planted = [*conn.execute(text("SELECT tablename FROM pg_tables WHERE tablename = 'pwn_h' UNION ALL "
                                      "SELECT rolname FROM pg_roles WHERE rolname = 'pwn_h_role'")).scalars(),
                   *(p.name for p in hyp_markers.iterdir())]
        # undone, so that a later example cannot fail for this one's effect
        conn.execute(text("DROP TABLE IF EXISTS pwn_h"))
        conn.execute(text("DROP ROLE IF EXISTS pwn_h_role"))
    for path in hyp_markers.iterdir():
        path.unlink()
    assert not planted, (planted, query)


# --------------------------------------------------------------------------- SQL built from strings

ALLOWED_FORMATTED_SQL = {
    # identifiers from our own schema constants (TABLES / fixed column lists), never user input
    ("clustermass/db/migrate.py", 'SELECT count(*) FROM "{table}'),
    ("scripts/bench_ingest.py", "COPY clusters ({cols}) FROM STDIN WITH (FORMAT csv)"),
    # a SQLAlchemy Select compiled with literal_binds (its literals: integer catalogue ids)
    ("clustermass/catalogs/crossmatch.py", "COPY ({query}) TO STDOUT WITH (FORMAT csv, HEADER)"),
}
SQL_CALLS = {"text", "execute", "exec_driver_sql", "executemany", "read_sql", "read_sql_query", "copy_expert", "mogrify"}


def _formatted_sql_calls(path: Path) -> list[tuple[int, str]]:
    """(line, string) of calls like text(f"...") / execute("..." % x) / execute("...".format(x))."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not (isinstance(node, ast.Call) and node.args):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        if name not in SQL_CALLS:
            continue
        arg = node.args[0]
        formatted = (
            isinstance(arg, ast.JoinedStr)
            or (isinstance(arg, ast.BinOp) and isinstance(arg.op, (ast.Mod, ast.Add)))
            or (isinstance(arg, ast.Call) and isinstance(arg.func, ast.Attribute) and arg.func.attr == "format"
                and isinstance(arg.func.value, ast.Constant))
        )
        if formatted:
            src = ast.get_source_segment(path.read_text(), arg) or ""
            found.append((node.lineno, src.strip("f'\"")))
    return sorted(found)


def test_no_sql_built_by_string_formatting():
    hits = []
    for path in sorted([*REPO.glob("clustermass/**/*.py"), *REPO.glob("scripts/*.py")]):
        rel = str(path.relative_to(REPO))
        for line, src in _formatted_sql_calls(path):
            if (rel, src) not in ALLOWED_FORMATTED_SQL:
                hits.append(f"{rel}:{line}: {src}")
    assert not hits, "SQL built by string formatting (use bind parameters or psycopg2.sql.Identifier):\n" + "\n".join(hits)


def test_the_scanner_finds_formatted_sql(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f(conn, n):\n    conn.execute(text(f\"SELECT * FROM c WHERE name = '{n}'\"))\n"
                   "    conn.execute('DELETE FROM c WHERE id = %s' % n)\n    conn.exec_driver_sql('X {}'.format(n))\n")
    assert [line for line, _ in _formatted_sql_calls(bad)] == [2, 3, 4]


# --------------------------------------------------------------------------- injection strings as data


def test_injection_strings_as_names_ids_and_columns_are_only_data(cli, db, tmp_path):
    path = tmp_path / "evil.csv"
    ids = INJECTIONS + [f"plain{i}" for i in range(3)]
    pd.DataFrame({"ID": ids, "name": list(reversed(ids)), "RA": [10.0 + i for i in range(len(ids))],
                  "dec": 5.0, "redshift": 0.2, "lambda": 30.0}).to_csv(path, index=False)
    for k, cat_name in enumerate(INJECTIONS[:3]):
        out = json.loads(cli("ingest", "redmapper", str(path), "--name", cat_name, "--json",
                             *(["--replace"] if k else [])).stdout)
        assert out["catalog"] == cat_name and out["n_rows"] == len(ids)
    with db.connect() as conn:
        assert conn.execute(text("SELECT name FROM catalogs ORDER BY id")).scalars().all() == INJECTIONS[:3]
        stored = conn.execute(text("SELECT source_id, name FROM clusters WHERE catalog_id = 1 ORDER BY ra")).all()
        assert [s for s, _ in stored] == ids and [n for _, n in stored] == list(reversed(ids))
        assert _tables(conn) >= set(TABLES)
    before = snapshot(db)
    for evil in INJECTIONS:
        res = cli("ingest", "table", str(path), "--ra", evil, "--dec", "dec", "--name", "t", ok=False)
        assert isinstance(res.exception, InputError) and "missing required column" in str(res.exception)
        res = cli("predict", "--tiles", "1", "--model", evil, ok=False)
        assert isinstance(res.exception, CmcatError) and "no model" in str(res.exception)
        res = cli("export", str(tmp_path / "x.csv"), "--model", evil, "--format", "csv", ok=False)
        assert isinstance(res.exception, CmcatError)
    assert snapshot(db) == before
    rec = save_model(db, load_settings_for(tmp_path), name=INJECTIONS[0], kind="richness",
                     config={"coef": [14.3, 1.1, -0.3]}, metrics={}, training={})
    assert get_model(db, INJECTIONS[0]).id == rec.id
    for evil in ("' OR 'x'='x", "%", "_"):
        res = cli("predict", "--tiles", "2", "--model", INJECTIONS[0], "--catalog", evil, ok=False)
        assert f"no catalogue named {evil!r}" in str(res.exception)
    with db.connect() as conn:
        assert _tables(conn) >= set(TABLES)


def load_settings_for(tmp_path: Path):
    from clustermass.config import load_settings

    return load_settings(overrides={"data_dir": tmp_path / "data"}, environ={})


# --------------------------------------------------------------------------- passwords


@pytest.fixture
def secret_url(pg_url: str, pg_engine) -> str:
    """The test database reached as a role with a password (the test server trusts local
    sockets, so the password is carried everywhere but never needed)."""
    with pg_engine.begin() as conn:
        if not conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = 'cmcat_pw'")).first():
            conn.execute(text("CREATE ROLE cmcat_pw LOGIN SUPERUSER PASSWORD :p"), {"p": PASSWORD})
    return make_url(pg_url).set(username="cmcat_pw", password=PASSWORD).render_as_string(hide_password=False)


def _run(args: list[str], url: str, data_dir: Path, timeout: int = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "CMCAT_DATABASE_URL": url, "CMCAT_DATA_DIR": str(data_dir)}
    return subprocess.run([sys.executable, "-m", "clustermass", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.slow
def test_password_never_in_output_errors_or_rows(db, secret_url, tmp_path):
    add_clusters(db, 40, ra=(100, 140), dec=(0, 30))
    save_model(db, load_settings_for(tmp_path), name="rich", kind="richness", config={"coef": [14.3, 1.1, -0.3]},
               metrics={"cv_scatter": 0.2}, training={})
    outputs = []
    for args in (["db", "url"], ["sql", "SELECT current_user AS u", "--json"], ["db", "status", "--json"],
                 ["predict", "--tiles", "1", "--model", "rich", "--workers", "1", "--json"],
                 ["sql", "SELECT * FROM no_such_table"], ["predict", "--tiles", "1", "--model", "nope", "--debug"]):
        res = _run(args, secret_url, tmp_path / "data")
        outputs.append(res.stdout + res.stderr)
        if args[0] == "predict" and args[-1] == "--json":
            assert json.loads(res.stdout)["n_done"] == 40, res.stderr
    assert '"cmcat_pw"' in outputs[1] and "***" in outputs[0]  # it really ran as the password role
    # an unreachable server (closed port on 127.0.0.1): the error names the masked URL
    closed = make_url(secret_url).set(host="127.0.0.1", port=1, query={}).render_as_string(hide_password=False)
    res = _run(["db", "status"], closed, tmp_path / "data")
    assert res.returncode != 0 and "cannot reach PostgreSQL" in res.stderr and "***" in res.stderr
    outputs.append(res.stdout + res.stderr)
    for out in outputs:
        assert PASSWORD not in out, out
    with db.connect() as conn:
        rows = [json.dumps([str(v) for v in r]) for t in ("runs", "run_tiles", "models", "catalogs")
                for r in conn.execute(text(f'SELECT * FROM "{t}"')).all()]  # fixed table names
    assert len(rows) > 3 and not any(PASSWORD in r for r in rows)


def test_tile_failure_text_is_scrubbed(db, secret_url):
    """A task error quoting the URL (as driver errors may) is stored with the password masked."""
    add_clusters(db, 10)
    run_id, _, todo, *_ = prepare_run(db, "predict", sky.TileSpec(0), {"x": 1})
    t = todo[0]
    res = execute_tile(faults.task_quoting_url, secret_url, run_id, t.norder, t.npix, {})
    assert res.status == "failed" and PASSWORD not in res.error and "***" in res.error
    with db.connect() as conn:
        err = conn.execute(text("SELECT error FROM run_tiles WHERE run_id = :r AND norder = :o AND npix = :p"),
                           {"r": run_id, "o": t.norder, "p": t.npix}).scalar_one()
    assert PASSWORD not in err and "cmcat_pw" in err


AT_PASSWORD = "S3cr@tPW-7q"  # an unencoded '@' in it
AT_PIECES = (AT_PASSWORD, "S3cr", "tPW-7q")


def _password_forms(url: str, password: str) -> dict[str, str]:
    """The server of `url` as role cmcat_pw written three ways a password can hide: in the query,
    raw with its '@' in the user info, and as a libpq key=value string."""
    u = make_url(url)
    host, port = u.query.get("host") or u.host, u.port
    query = f"host={host}" + (f"&port={port}" if port else "")
    return {
        "query": f"postgresql://cmcat_pw@/{u.database}?{query}&password={password}",
        "raw_at": f"postgresql://cmcat_pw:{password}@/{u.database}?{query}",
        "dsn": f"{query.replace('&', ' ')} dbname={u.database} user=cmcat_pw password={password}",
    }


@pytest.mark.parametrize("form", ["query", "raw_at", "dsn"])
def test_password_in_query_dsn_or_with_raw_at_is_never_shown(db, secret_url, pg_url, tmp_path, form):
    """`db url`, `db url --libpq`, `db status` reach the real server with each form and show the
    password as ***; so does the error of a closed port (127.0.0.1:1)."""
    url = _password_forms(pg_url, AT_PASSWORD)[form]
    outputs = []
    for args in (["db", "url"], ["db", "url", "--libpq"], ["db", "status", "--json"]):
        res = _run(args, url, tmp_path / "data")
        assert res.returncode == 0, res.stderr
        outputs.append(res.stdout + res.stderr)
    assert outputs[0].startswith("postgresql+psycopg2://cmcat_pw:***@/") and outputs[1].startswith("postgresql://")
    assert json.loads(outputs[2])["url"] == outputs[0].strip()
    closed = _password_forms("postgresql://x@127.0.0.1:1/nowhere", AT_PASSWORD)[form]
    res = _run(["db", "status"], closed, tmp_path / "data")
    assert res.returncode == 1
    assert "cannot reach PostgreSQL at postgresql+psycopg2://cmcat_pw:***@/nowhere" in res.stderr, res.stderr
    outputs.append(res.stdout + res.stderr)
    for out in outputs:
        assert not any(piece in out for piece in AT_PIECES), out
    assert (parse_url(url).username, parse_url(url).password) == ("cmcat_pw", AT_PASSWORD)


def test_mask_and_scrub_find_every_password_form():
    assert mask_url("postgresql://u@h/x?sslpassword=K3y&password=S3cr@t") == \
        "postgresql://u@h/x?password=***&sslpassword=***"
    assert mask_url("host=h password='S3cr et' dbname=x") == "postgresql+psycopg2:///x?host=h&password=***"
    text = ("could not connect to postgresql://u:S3cr@tPW@h:5/x; dsn host=h password='S3 cr' user=u; "
            "mail admin@example.org about postgresql://h:5432/x")
    assert scrub(text, None) == ("could not connect to postgresql://u:***@h:5/x; dsn host=h password=*** user=u; "
                                 "mail admin@example.org about postgresql://h:5432/x")
    assert scrub("role u, password S3cr%40tPW", "postgresql://u:S3cr@tPW@h/x") == "role u, password ***"


# --------------------------------------------------------------------------- file permissions


@pytest.mark.slow
def test_files_written_by_cmcat_are_not_world_writable(db, pg_url, tmp_path):
    """Even under umask 000 nothing cmcat creates is writable by others."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    pd.DataFrame({"ID": [1, 2, 3], "name": ["a", "b", "c"], "RA": [10.0, 400.0, 12.0], "dec": 5.0,
                  "redshift": 0.2, "lambda": 30.0}).to_csv(inputs / "rm.csv", index=False)
    data = tmp_path / "data"
    env = {**os.environ, "CMCAT_DATABASE_URL": pg_url, "CMCAT_DATA_DIR": str(data)}
    commands = [
        ["ingest", "redmapper", str(inputs / "rm.csv"), "--skip-bad"],
        ["mock", "universe", "--n", "300", "--area", "50", "--out", str(data / "universe")],
        ["export", str(data / "exp.csv"), "--model", "nope"],  # fails: writes nothing
    ]
    for args in commands:
        subprocess.run([sys.executable, "-m", "clustermass", *args], env=env, capture_output=True, text=True,
                       timeout=240, preexec_fn=lambda: os.umask(0))
    written = [inputs / "rm.rejected.csv", *data.rglob("*")]
    assert (inputs / "rm.rejected.csv").exists() and len(list((data / "universe").iterdir())) >= 3
    loose = [f"{p} {stat.filemode(p.stat().st_mode)}" for p in written if p.stat().st_mode & stat.S_IWOTH]
    assert not loose, loose
