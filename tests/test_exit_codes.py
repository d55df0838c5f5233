"""Exit codes of the real `cmcat` console script: 0 done, 1 error, 2 usage, 130 interrupted.

Scripts and schedulers only see the exit code, so every case runs `cmcat` as a subprocess with
the typer that the install gets. Ctrl-C is a SIGINT to the whole process group (what a
terminal does: the Dask worker processes get it too).
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest
import typer
import typer.core
import typer.main
from sqlalchemy import text

from clustermass.model.registry import save_model
from faults import wait_for
from pipeline_helpers import add_clusters, add_model
from test_explain import _register_tiny

REPO = Path(__file__).resolve().parents[1]
CMCAT = Path(sys.executable).with_name("cmcat")  # the console script of this environment


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """Environment of a `cmcat` that never touches a database (usage errors come first)."""
    return {**os.environ, "CMCAT_DATA_DIR": str(tmp_path / "data"), "COLUMNS": "200"}


@pytest.fixture
def db_env(db, pg_url: str, env: dict[str, str]) -> dict[str, str]:
    """Environment of a `cmcat` on the (emptied) test database."""
    return {**env, "CMCAT_DATABASE_URL": pg_url}


def cmcat(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([str(CMCAT), *args], env=env, capture_output=True, text=True, timeout=timeout)


def error_lines(stderr: str, prefix: str = "error:") -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(prefix)]


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_row(db) -> tuple[int, str, str]:
    with db.connect() as conn:
        return tuple(conn.execute(text("SELECT id, status, error FROM runs ORDER BY id DESC LIMIT 1")).one())


# --------------------------------------------------------------------------- 2: usage errors


def parse(args: list[str]) -> None:
    """Parse `cmcat ARGS` as the console script does, without running the command: a usage
    error (unknown command or option, missing or out-of-range value) raises typer's exception."""
    from clustermass.cli import app

    command: typer.core.TyperCommand | typer.core.TyperGroup = typer.main.get_command(app)
    ctx, name, rest = typer.Context(command, info_name="cmcat"), "cmcat", list(args)
    while isinstance(command, typer.core.TyperGroup):
        name = rest.pop(0)
        sub = command.get_command(ctx, name)
        assert sub is not None, f"cmcat {shlex.join(args)}: no command {name!r}"
        command, ctx = sub, typer.Context(sub, info_name=name, parent=ctx)
    command.make_context(name, rest, parent=ctx.parent)


USAGE = [
    ["--bogus", "status"],
    ["sql"],  # missing argument
    ["baseline", "--seed", "-5"],
    ["baseline", "--folds", "1"],
    ["predict", "--workers", "0"],
    ["learning-curve", "--sizes", "0,50"],
    ["predict", "--tiles", "2", "--model", "richness", "--device", "tpu"],
    ["fetch", "--tiles", "0", "--source", "ftp"],
    ["export", "out", "--model", "m", "--format", "xls"],
    ["ingest", "table", "t.csv", "--ra", "RA", "--dec", "DEC", "--method", "bogus"],
]
#: Options with a fixed set of values: any other value is a usage error.
BAD_CHOICES = [
    ["train", "--stage", "3"],
    ["train", "--device", "gpu"],
    ["train", "--source", "ftp"],
    ["learning-curve", "--device", "tpu"],
    ["learning-curve", "--source", "http"],
    ["predict", "--source", "ftp"],
    ["explain", "1", "--source", "ftp"],
    ["export", "out", "--model", "m", "--format", "PARQUET"],
    ["mock", "universe", "--out", "u", "--variant", "nope"],
    ["ingest", "mcxc", "m.fits", "--mass-unit", "kg"],
    ["ingest", "table", "t.csv", "--ra", "RA", "--dec", "DEC", "--mass-unit", "1e13msun"],
]
#: Numeric options that had no range (each is checked by the parser; the subprocess cases above
#: show that such errors exit with 2).
OUT_OF_RANGE = [
    ["predict", "--seed", "-5"],
    ["predict", "--resume", "0"],
    ["fetch", "--seed", "-1"],
    ["fetch", "--resume", "0"],
    ["explain", "--tiles", "3", "--workers", "0"],
    ["explain", "1", "--seed", "4294967296"],
    ["train", "--seed", "-1"],
    ["train", "--mock-seed", "-1"],
    ["train", "--threads", "0"],
    ["learning-curve", "--sizes", "ten"],
    ["learning-curve", "--mock-seed", "-2"],
    ["mock", "universe", "--out", "u", "--seed", "-5"],
    ["mock", "universe", "--out", "u", "--area", "0"],
    ["mock", "universe", "--out", "u", "--area", "20000"],
    ["mock", "frames", "--universe", "u", "--out", "o", "--max-frames", "0"],
    ["mock", "frames", "--universe", "u", "--out", "o", "--aperture-mpc", "0"],
    ["mock", "frames", "--universe", "u", "--out", "o", "--seed", "-1"],
]


@pytest.mark.parametrize("args", USAGE, ids=[" ".join(a) for a in USAGE])
def test_usage_errors_exit_2_with_the_usage(env, args):
    res = cmcat(env, *args)
    assert res.returncode == 2, res.stderr
    assert "Usage: cmcat" in res.stderr and "Error:" in res.stderr and res.stdout == ""
    assert "unexpected error" not in res.stderr and "Traceback" not in res.stderr


@pytest.mark.parametrize("args", OUT_OF_RANGE + BAD_CHOICES, ids=[" ".join(a) for a in OUT_OF_RANGE + BAD_CHOICES])
def test_option_values_out_of_range_are_usage_errors(args):
    with pytest.raises(typer.TyperException) as err:
        parse(args)
    assert err.value.exit_code == 2


def test_choices_are_the_library_values():
    """The CLI's choices (written out so that parsing stays light) are the values the library takes."""
    from typing import get_args

    from clustermass.catalogs.readers import MASS_UNITS, METHODS
    from clustermass.cli import choices
    from clustermass.mock.relations import VARIANTS
    from clustermass.pipeline.sources import SOURCES
    from clustermass.results.export import FORMATS

    assert get_args(choices.Source) == SOURCES
    assert get_args(choices.Format) == FORMATS
    assert get_args(choices.Variant) == tuple(VARIANTS)
    assert get_args(choices.MassUnit) == tuple(MASS_UNITS)
    assert get_args(choices.Method) == METHODS


WORK_ORDER = ["db", "ingest", "crossmatch", "baseline", "mock", "fetch", "train", "evaluate", "learning-curve",
              "models", "predict", "explain", "sql", "export", "plot", "status"]


def test_help_lists_commands_in_the_order_of_the_work_and_flags_as_flags(env):
    res = cmcat(env, "--help")
    assert res.returncode == 0, res.stderr
    listed = [line.split()[1] for line in res.stdout.split("Commands", 1)[1].splitlines()
              if line.startswith("│ ") and line[2] != " "]
    assert listed == WORK_ORDER
    assert "--debug" in res.stdout and "<bool>" not in res.stdout
    for args in (["predict", "--help"], ["explain", "--help"], ["mock", "universe", "--help"]):
        res = cmcat(env, *args)
        assert res.returncode == 0 and "--json" in res.stdout and "<bool>" not in res.stdout, res.stdout
        assert "<cpu|cuda>" in res.stdout or "--variant" in res.stdout or "--tta" in res.stdout


@pytest.fixture
def fresh_env(pg_engine, pg_url: str, env: dict[str, str]) -> Iterator[dict[str, str]]:
    """Environment of a `cmcat` on a brand-new, empty database of the test server (no schema)."""
    from sqlalchemy.engine import make_url

    name = f"cmcat_fresh_{os.getpid()}"
    with pg_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield {**env, "CMCAT_DATABASE_URL": make_url(pg_url).set(database=name).render_as_string(hide_password=False)}
    with pg_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.mark.parametrize("args, message", [
    (["status"], ""),
    (["baseline"], "error: only 0 labelled clusters"),
    (["crossmatch"], ""),
    (["models", "list"], ""),
    (["export", "out", "--model", "cnn"], "error: no model 'cnn'"),
])
def test_first_command_on_a_brand_new_database_meets_its_tables(fresh_env, tmp_path, args, message):
    """Every command that touches the database makes its schema first (none says 'relation does not exist')."""
    res = subprocess.run([str(CMCAT), *args], env=fresh_env, capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert "unexpected error" not in res.stderr and "does not exist" not in res.stderr, res.stderr
    assert res.returncode == (1 if message else 0), res.stderr
    assert res.stderr.strip().startswith(message), res.stderr


# --------------------------------------------------------------------------- 1: errors


def test_bad_settings_files_exit_1_with_one_line(env, tmp_path):
    folder = tmp_path / "settings"
    folder.mkdir()
    not_a_table = tmp_path / "five.toml"
    not_a_table.write_text("cmcat = 5\n")
    stage_not_a_table = tmp_path / "train.toml"
    stage_not_a_table.write_text("stage2 = 5\n")
    epochs_text = tmp_path / "epochs.toml"
    epochs_text.write_text('[stage1]\nepochs = "12"\n')
    pooling_typo = tmp_path / "pooling.toml"
    pooling_typo.write_text('[stage2]\npooling = ["ring"]\n')
    cases = [
        ((["--config", str(folder), "status"], env), f"config file {folder} is a folder, not a TOML file"),
        ((["--config", str(not_a_table), "status"], env), "'cmcat' must be a [cmcat] table of settings"),
        ((["status"], {**env, "CMCAT_WORKERS": "0"}), "setting 'workers' = '0' must be >= 1"),
        ((["status"], {**env, "CMCAT_SQL_TIMEOUT": "nan"}), "setting 'sql_timeout' = 'nan' must be > 0"),
        ((["train", "--config", str(folder)], env), f"training config {folder} is a folder, not a TOML file"),
        ((["train", "--config", str(stage_not_a_table)], env), "stage2 must be a [stage2] table, not 5"),
        ((["train", "--config", str(epochs_text)], env), f"training config {epochs_text}: stage1.epochs must be an integer"),
        ((["train", "--config", str(pooling_typo)], env), "stage2.pooling has 'ring'; expected any of"),
    ]
    for (args, environ), message in cases:
        res = cmcat(environ, *args)
        assert res.returncode == 1, (args, res.stderr)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], (args, res.stderr)
    assert not (tmp_path / "data" / "pg").exists()  # refused before an embedded server was started


def test_a_run_that_is_not_done_exits_1(db_env, db, settings):
    add_clusters(db, 12, ra=(150, 160), dec=(0, 10))
    save_model(db, settings, name="coefless", kind="richness", config={}, metrics={}, training={})
    res = cmcat(db_env, "predict", "--tiles", "2", "--model", "coefless", "--workers", "1", "--json")
    assert res.returncode == 1, res.stderr
    assert run_row(db)[1] == "failed" and '"status": "failed"' in res.stdout


@pytest.mark.parametrize("command", ["fetch", pytest.param("predict", marks=pytest.mark.slow),
                                     pytest.param("explain", marks=pytest.mark.slow)])
def test_unreachable_scheduler_fails_the_run_with_one_line(db_env, db, settings, command):
    add_clusters(db, 6, ra=(150, 160), dec=(0, 10))
    save_model(db, settings, name="rich", kind="richness", config={"coef": [14.3, 1.1, -0.3]}, metrics={}, training={})
    add_model(db, name="cnn-x", kind="cnn")
    address = f"tcp://127.0.0.1:{closed_port()}"
    extra = {"fetch": ["--source", "mock"], "predict": ["--model", "rich"], "explain": ["--model", "cnn-x"]}[command]
    res = cmcat(db_env, command, "--tiles", "2", *extra, "--scheduler", address)
    assert res.returncode == 1, res.stderr
    lines = error_lines(res.stderr)
    assert len(lines) == 1 and lines == res.stderr.strip().splitlines()[-1:], res.stderr
    assert f"cannot reach the Dask scheduler at {address}" in lines[0] and "Traceback" not in res.stderr
    _, status, error = run_row(db)
    assert status == "failed" and address in error


# --------------------------------------------------------------------------- 130: Ctrl-C


def _as_from_a_terminal() -> None:
    """In the child before exec: SIGINT as a terminal's foreground process has it. A test run
    started in the background by a shell without job control inherits SIGINT ignored, and
    Python then keeps ignoring it, so Ctrl-C would never arrive."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def ctrl_c_after(env: dict[str, str], args: list[str], db, tiles_done: int, out: Path) -> tuple[int, str, str]:
    """Start `cmcat ARGS`, press Ctrl-C once `tiles_done` tiles are done; (exit code, stdout, stderr)."""
    with open(out / "stdout", "w") as so, open(out / "stderr", "w") as se:
        proc = subprocess.Popen([str(CMCAT), *args], env=env, stdout=so, stderr=se, start_new_session=True,
                                preexec_fn=_as_from_a_terminal)
        try:
            wait_for(db, "SELECT count(*) FROM run_tiles WHERE status = 'done'", tiles_done, proc=proc)
            assert proc.poll() is None, "the run ended before Ctrl-C"
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(120)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    return proc.returncode, (out / "stdout").read_text(), (out / "stderr").read_text()


def assert_interrupted(db, command: str, code: int, stderr: str, how: str) -> int:
    run_id, status, error = run_row(db)
    assert code == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    expected = f"{command} run {run_id} interrupted by the user; finished tiles are saved. Continue with {how.format(run_id=run_id)}"
    assert stderr.strip().splitlines()[-1] == expected
    assert status == "interrupted" and error in expected
    return run_id


def test_ctrl_c_during_predict_marks_the_run_interrupted_and_resume_finishes_it(db_env, db, settings, tmp_path):
    clusters = add_clusters(db, 90, ra=(120, 250), dec=(-5, 65))
    save_model(db, settings, name="rich", kind="richness", config={"coef": [14.3, 1.1, -0.3]}, metrics={}, training={})
    args = ["predict", "--tiles", "3", "--model", "rich", "--workers", "2", "--max-per-tile", "2", "--json"]
    code, stdout, stderr = ctrl_c_after(db_env, args, db, 4, tmp_path)
    run_id = assert_interrupted(db, "predict", code, stderr, "`cmcat predict --resume {run_id}`")
    assert stdout == ""
    with db.connect() as conn:
        assert 0 < conn.execute(text("SELECT count(*) FROM predictions")).scalar_one() < len(clusters)
    resumed = cmcat(db_env, "predict", "--resume", str(run_id), "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert run_row(db)[:2] == (run_id, "done")
    with db.connect() as conn:
        assert conn.execute(text("SELECT count(DISTINCT cluster_id) FROM predictions")).scalar_one() == len(clusters)


@pytest.mark.slow
def test_ctrl_c_during_fetch_marks_the_run_interrupted_and_resume_finishes_it(db_env, db, tmp_path):
    clusters = add_clusters(db, 60, ra=(120, 250), dec=(-5, 65))
    args = ["fetch", "--tiles", "3", "--source", "mock", "--size", "16", "--workers", "2", "--max-per-tile", "2"]
    code, _, stderr = ctrl_c_after(db_env, args, db, 3, tmp_path)
    run_id = assert_interrupted(db, "fetch", code, stderr, "`cmcat fetch --resume {run_id}`")
    resumed = cmcat(db_env, "fetch", "--resume", str(run_id))
    assert resumed.returncode == 0, resumed.stderr
    assert run_row(db)[:2] == (run_id, "done")
    with db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM cutouts WHERE status = 'ok'")).scalar_one() == len(clusters)


@pytest.mark.slow
def test_ctrl_c_during_explain_marks_the_run_interrupted_and_the_same_command_finishes_it(db_env, db, settings, tmp_path):
    model = _register_tiny(db, settings)
    add_clusters(db, 24, ra=(120, 250), dec=(-5, 65))
    args = ["explain", "--tiles", "3", "--model", model, "--out", str(tmp_path / "explain"), "--workers", "2"]
    code, _, stderr = ctrl_c_after(db_env, args, db, 2, tmp_path)
    run_id = assert_interrupted(db, "explain", code, stderr, "the same command")
    again = cmcat(db_env, *args)
    assert again.returncode == 0, again.stderr
    assert run_row(db)[:2] == (run_id, "done")


def _sql_ctrl_c(db, env: dict[str, str], seconds: int) -> tuple[subprocess.Popen, float, str]:
    """`cmcat sql "SELECT pg_sleep(SECONDS)"`, Ctrl-C once the server runs it; (process, seconds to exit, stderr)."""
    query = f"SELECT pg_sleep({seconds})"
    active = f"SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = '{query}'"
    proc = subprocess.Popen([str(CMCAT), "sql", query], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, preexec_fn=_as_from_a_terminal)
    try:
        assert wait_for(db, active, 1, timeout_s=60, proc=proc) == 1, "the query never ran"
        os.killpg(proc.pid, signal.SIGINT)
        t0 = time.monotonic()
        _, stderr = proc.communicate(timeout=60)
        return proc, time.monotonic() - t0, stderr
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_ctrl_c_during_sql_exits_130_with_one_line(db_env, db):
    proc, _, stderr = _sql_ctrl_c(db, db_env, 3)
    assert proc.returncode == 130, stderr
    # the test server's role is a superuser, so `cmcat sql` warns first (tests/test_sql.py)
    lines = [line for line in stderr.strip().splitlines() if not line.startswith("warning: cmcat sql runs as role")]
    assert lines == ["interrupted by the user (Ctrl-C)"]


def test_ctrl_c_during_sql_cancels_the_query_at_once(db_env, db):
    proc, seconds, stderr = _sql_ctrl_c(db, db_env, 8)
    assert proc.returncode == 130, stderr
    assert seconds < 3, f"took {seconds:.1f} s: the query ran to its end"
    with db.connect() as conn:
        still = conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(8)' "
                                  "AND state = 'active'")).scalar_one()
    assert still == 0


# --------------------------------------------------------------------------- the README runs as written


def readme_tour() -> list[list[str]]:
    """The `cmcat ...` lines of README.md's tour, as argument lists (comments dropped)."""
    block = (REPO / "README.md").read_text().split("## A tour", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    lines = [shlex.split(line, comments=True) for line in block.splitlines()]
    return [words[1:] for words in lines if words and words[0] == "cmcat"]


def test_readme_tour_commands_parse():
    """Each tour command names existing commands and options with valid values, and gives every
    required one (checked by the parser itself, without running the commands)."""
    tour = readme_tour()
    assert len(tour) >= 20
    for args in tour:
        parse(args)


def test_readme_plot_skymap_runs_as_written(db_env):
    res = cmcat(db_env, "plot", "skymap")
    assert res.returncode == 1, res.stderr  # no hybrid model yet: an error, not a usage error
    assert res.stderr.strip().startswith("error: no model 'hybrid'"), res.stderr
