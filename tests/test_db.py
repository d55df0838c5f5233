"""Schema, migrations and connection handling on a real PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import time

import pandas as pd
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from clustermass.db import migrate
from clustermass.db.bulk import copy_upsert
from clustermass.db.models import TABLES, Base
from clustermass.db.urls import mask_url, scrub


def test_models_and_migrations_agree(db) -> None:
    with db.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == [], f"models differ from migrations: {diff}"


def test_upgrade_is_idempotent_and_status_counts(db) -> None:
    before, after = migrate.upgrade(db)
    assert before == after == migrate.head_revision()
    info = migrate.status(db)
    assert info["up_to_date"]
    assert set(info["tables"]) == set(TABLES)
    assert all(n == 0 for n in info["tables"].values())


def test_required_indexes_exist(db) -> None:
    insp = inspect(db)
    for table in ("clusters", "mass_measurements", "fields"):
        cols = [tuple(ix["column_names"]) for ix in insp.get_indexes(table)]
        assert ("hpx29",) in cols, table
    uniques = {t: [tuple(u["column_names"]) for u in insp.get_unique_constraints(t)] for t in TABLES}
    assert ("cluster_id", "model_id") in uniques["predictions"]
    assert ("catalog_id", "source_id") in uniques["clusters"]


def test_column_comments_give_units(db) -> None:
    cols = {c["name"]: c for c in inspect(db).get_columns("clusters")}
    assert "deg" in cols["ra"]["comment"]
    pred = {c["name"]: c for c in inspect(db).get_columns("predictions")}
    assert "Msun" in pred["log10_m500"]["comment"]


def test_copy_upsert_inserts_then_updates_without_duplicates(db) -> None:
    with db.begin() as conn:
        conn.execute(
            text("INSERT INTO catalogs (name, kind, path, sha256, n_rows) VALUES ('c', 'table', '/x', 'abc', 2)")
        )
    df = pd.DataFrame(
        {"catalog_id": [1, 1], "source_id": ["a", "b"], "ra": [1.0, 2.0], "dec": [0.0, 0.5], "hpx29": [1, 2],
         "richness": [10.0, None], "extra": [{"k": 1}, {}]}
    )
    with db.begin() as conn:
        assert copy_upsert(conn, "clusters", df, conflict=["catalog_id", "source_id"], json_columns=["extra"]) == 2
    df.loc[0, "richness"] = 99.0
    with db.begin() as conn:
        copy_upsert(conn, "clusters", df, conflict=["catalog_id", "source_id"], update=["richness"], json_columns=["extra"])
    with db.connect() as conn:
        rows = conn.execute(text("SELECT source_id, richness, extra FROM clusters ORDER BY source_id")).all()
    assert rows == [("a", 99.0, {"k": 1}), ("b", None, {})]


def test_copy_upsert_failure_leaves_nothing(db) -> None:
    df = pd.DataFrame({"catalog_id": [12345], "source_id": ["a"], "ra": [1.0], "dec": [0.0], "hpx29": [1]})
    try:
        with db.begin() as conn:
            copy_upsert(conn, "clusters", df)  # foreign key violation
    except Exception:
        pass
    with db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM clusters")).scalar_one() == 0


def test_mask_url_hides_password() -> None:
    url = "postgresql+psycopg2://alice:pa55word@db.example:5432/cm"
    assert "pa55word" not in mask_url(url)
    assert "alice" in mask_url(url)
    assert "pa55word" not in scrub("FATAL: password pa55word rejected for alice", url)


def test_unreachable_database_fails_fast_with_masked_url(tmp_path) -> None:
    # A closed port on loopback: nothing listens there.
    url = "postgresql://bob:hunter2@127.0.0.1:1/nowhere"
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "clustermass", "--database-url", url, "db", "upgrade"],
        capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin", "CMCAT_DATA_DIR": str(tmp_path)},
    )
    assert time.monotonic() - t0 < 10
    assert proc.returncode != 0
    assert "cannot reach PostgreSQL" in proc.stderr
    assert "127.0.0.1" in proc.stderr
    assert "hunter2" not in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr


def test_cli_db_commands_use_the_configured_server(cli, pg_url) -> None:
    out = cli("db", "upgrade", "--json").output
    assert '"changed": false' in out
    status = cli("db", "status", "--json").output
    assert '"up_to_date": true' in status
    assert cli("db", "url").output.strip() == mask_url(pg_url)


def test_embedded_server_survives_across_processes(tmp_path) -> None:
    """Two separate `cmcat` processes with no URL share the embedded server and its data."""
    import os
    import tempfile
    from pathlib import Path

    data = Path(tempfile.mkdtemp(prefix="cme", dir="/tmp"))
    env = {**os.environ, "CMCAT_DATA_DIR": str(data)}
    env.pop("CMCAT_DATABASE_URL", None)
    try:
        for _ in range(2):
            proc = subprocess.run([sys.executable, "-m", "clustermass", "db", "upgrade"], env=env,
                                  capture_output=True, text=True, timeout=120)
            assert proc.returncode == 0, proc.stderr
        assert "already at revision" in proc.stdout
        url = subprocess.run([sys.executable, "-m", "clustermass", "db", "url"], env=env, capture_output=True,
                             text=True, timeout=60).stdout
        assert str(data / "pg").replace("/", "%2F") in url
    finally:
        import shutil

        from clustermass.db.embedded import stop

        stop(data / "pg")
        shutil.rmtree(data, ignore_errors=True)


def test_a_data_dir_copied_while_its_server_ran_gets_its_own_server() -> None:
    """A copy of a running embedded server's data dir holds that server's postmaster.pid; cmcat must not take the
    original's server for the copy's (it would write to the original's database, or stop it)."""
    import shutil
    import tempfile
    from pathlib import Path

    from sqlalchemy import create_engine

    from clustermass.db.embedded import ensure_database, stop

    first = Path(tempfile.mkdtemp(prefix="cmo", dir="/tmp"))
    copy = Path(tempfile.mkdtemp(prefix="cmc", dir="/tmp"))
    try:
        ensure_database(first / "pg")
        subprocess.run(["cp", "-a", str(first / "pg"), str(copy / "pg")], check=True)  # owner and modes kept
        url = ensure_database(copy / "pg")
        assert url.endswith(f"host={copy / 'pg'}")
        engine = create_engine(url)
        with engine.connect() as conn:
            assert conn.execute(text("SHOW data_directory")).scalar_one() == str(copy / "pg")
        engine.dispose()
        assert stop(copy / "pg") and stop(first / "pg")  # each stops its own server
    finally:
        for d in (copy, first):
            stop(d / "pg")
            shutil.rmtree(d, ignore_errors=True)
