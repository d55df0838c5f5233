"""Shared CLI plumbing: the Typer app, global options, settings/engine access, output.

Commands call the library, then render its plain-data result either as Rich tables or, with
`--json`, as JSON on stdout. Errors (CmcatError) become one red line and a non-zero exit.
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

import typer
from typer.core import TyperGroup
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from clustermass.cli.choices import Device
from clustermass.config import Settings, load_settings
from clustermass.errors import CmcatError, InputError
from clustermass.pipeline.worker import tune_for_tensors

console = Console(stderr=False)
err_console = Console(stderr=True)

#: The commands in the order of the work, as `cmcat --help` lists them.
WORK_ORDER = ("db", "ingest", "crossmatch", "baseline", "mock", "fetch", "train", "evaluate", "learning-curve",
              "models", "predict", "explain", "sql", "export", "plot", "status")


def _flags_as_flags(command: Any) -> None:
    """Show on/off options without a value type in help, in `command` and every command below it.

    typer 0.29 shows `<bool>` beside every flag (and `--help`), which reads as if the flag took
    a value; an empty metavar leaves the type column blank.
    """
    for param in getattr(command, "params", ()):
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    help_option = command.get_help_option

    def blank_help_option(ctx: Any) -> Any:
        option = help_option(ctx)
        if option is not None and option.metavar is None:
            option.metavar = ""
        return option

    command.get_help_option = blank_help_option
    for sub in getattr(command, "commands", {}).values():
        _flags_as_flags(sub)


class WorkOrderGroup(TyperGroup):
    """The top-level `cmcat` group: commands listed in `WORK_ORDER`, flags shown as flags."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _flags_as_flags(self)

    def list_commands(self, ctx: Any) -> list[str]:
        names = super().list_commands(ctx)
        return sorted(names, key=lambda n: WORK_ORDER.index(n) if n in WORK_ORDER else len(WORK_ORDER))


app = typer.Typer(
    cls=WorkOrderGroup,
    name="cmcat",
    help=(
        "Galaxy-cluster masses for whole survey catalogues from SDSS ugriz images "
        "(two-stage CNN of Lin et al. 2022), stored in PostgreSQL.\n\n"
        "Uses an embedded PostgreSQL under the data dir unless CMCAT_DATABASE_URL or "
        "--database-url names a server."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@dataclass
class State:
    """Global options, resolved lazily so `--help` never starts a database."""

    config_file: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    debug: bool = False
    _settings: Settings | None = None
    _schema_ready: bool = False

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config_file, self.overrides)
        return self._settings

    def engine(self):  # -> sqlalchemy.Engine
        """The engine as it is, for commands that report or change the schema themselves (`cmcat db`)."""
        from clustermass.db.engine import get_engine

        return get_engine(self.settings)

    def database(self):  # -> sqlalchemy.Engine
        """The engine of a database whose schema is at the newest migration (created on a new database).

        Every command that reads or writes cmcat's tables goes through here, so none of them meets
        a brand-new database without its tables.
        """
        from clustermass.db import migrate

        engine = self.engine()
        if not self._schema_ready:
            migrate.upgrade(engine)
            self._schema_ready = True
        return engine


STATE = State()


@app.callback()
def _global(
    config: Optional[Path] = typer.Option(None, "--config", help="TOML settings file (keys as in CMCAT_* without the prefix)."),
    database_url: Optional[str] = typer.Option(
        None, "--database-url", help="PostgreSQL URL (postgresql+psycopg2://user:pw@host/db); default: embedded server."
    ),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Where cmcat keeps its server, cutouts and models."),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
) -> None:
    STATE.config_file = config
    STATE.overrides = {"database_url": database_url, "data_dir": data_dir}
    STATE.debug = debug
    STATE._settings = None
    STATE._schema_ready = False


#: Largest --seed (seeds are 32-bit unsigned, as numpy's legacy and most tools expect).
MAX_SEED = 2**32 - 1

#: Exit codes of every command (scripts and schedulers rely on them; docs/reliability.md).
#: Usage errors exit with 2, the code typer's own exceptions carry.
EXIT_OK, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 130


def main() -> None:
    """Console-script entry point: run the app and exit with its code.

    0 done; 1 an error (a CmcatError or an unexpected exception: one red line); 2 a usage error
    (unknown option, missing argument, option value out of range: the usage and the problem);
    130 interrupted by Ctrl-C (one line; a tile run is marked interrupted).

    Files and folders cmcat writes (and those of the worker processes it starts) are never
    world-writable, whatever the caller's umask. The allocator is tuned for the networks'
    large tensors (clustermass.pipeline.worker).
    """
    os.umask(os.umask(0) | 0o002)
    tune_for_tensors()
    sys.exit(run_app())


def run_app() -> int:
    """Run the Typer app without its own exit handling; return the exit code (see `main`).

    With `standalone_mode=False` typer (>= 0.29) returns the code of a `typer.Exit`, turns a
    KeyboardInterrupt inside a command into code 130, and raises its usage errors
    (`typer.TyperException`, whose subclasses carry exit code 2 and a `show()`).
    """
    try:
        code = app(standalone_mode=False)
    except CmcatError as exc:
        if STATE.debug:
            raise
        label = "" if exc.exit_code == EXIT_INTERRUPTED else "[red]error:[/red] "
        err_console.print(f"{label}{escape(str(exc))}", highlight=False, soft_wrap=True)
        return exc.exit_code
    except typer.TyperException as exc:
        exc.show()  # type: ignore[attr-defined]  # every TyperException typer raises is a ClickException
        return exc.exit_code
    except KeyboardInterrupt:  # outside a command, e.g. while parsing
        code = EXIT_INTERRUPTED
    except Exception as exc:  # an unexpected failure: one line, the traceback with --debug
        if STATE.debug:
            raise
        err_console.print(
            f"[red]unexpected error:[/red] {type(exc).__name__}: {escape(str(exc))} (rerun with --debug for a traceback)",
            highlight=False, soft_wrap=True,
        )
        return EXIT_ERROR
    if not isinstance(code, int):  # a command's return value (None)
        return EXIT_OK
    if code == EXIT_INTERRUPTED:
        err_console.print("interrupted by the user (Ctrl-C)", highlight=False, soft_wrap=True)
    return code


def emit_json(data: Any) -> None:
    """Machine-readable output on stdout (numpy and paths converted)."""
    print(json.dumps(data, indent=2, default=_json_default))


def _json_default(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Decimal):  # SQL numeric, e.g. round(x::numeric, 3) in `cmcat sql`
        return float(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    """A Rich table of plain rows (floats shown with 4 significant digits)."""
    t = Table(title=title, title_justify="left")
    for c in columns:
        t.add_column(c)
    for row in rows:
        t.add_row(*(_fmt(v) for v in row))
    return t


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def progress(transient: bool = False) -> Progress:
    """The standard progress bar of long commands (on stderr, so --json stays clean)."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=transient,
    )


@contextmanager
def counting_bar(description: str) -> Iterator[Callable[[int, int], None]]:
    """One progress bar that appears with its first update; yields `update(done, total)`."""
    bar = progress()
    task = bar.add_task(description, total=None)

    def update(done: int, total: int) -> None:
        if not bar.live.is_started:
            bar.start()
        bar.update(task, completed=done, total=total)

    try:
        yield update
    finally:
        if bar.live.is_started:
            bar.stop()


@contextmanager
def tile_progress() -> Iterator[Callable[[Any], None]]:
    """Progress bars for a tile run (tiles and clusters) plus the Dask dashboard link.

    Yields the `on_progress` callback for `pipeline.runner.run_tiles`.
    The bars appear with the first update, so a command that stops before its run prints none.
    """
    bar = progress()
    tiles_task = bar.add_task("tiles", total=None)
    clusters_task = bar.add_task("clusters", total=None)

    def on_progress(p: Any) -> None:
        if not bar.live.is_started:
            bar.start()
        if p.tiles_finished == 0 and p.dashboard_link:
            err_console.print(f"Dask dashboard: {p.dashboard_link}")
        bar.update(tiles_task, total=p.tiles_total, completed=p.tiles_finished)
        bar.update(clusters_task, total=p.clusters_total, completed=p.clusters_finished)

    try:
        yield on_progress
    finally:
        if bar.live.is_started:
            bar.stop()


def print_failures(kind: str, s: Any, resume: bool = True, shown: int = 10) -> None:
    """The failed tiles of a run (`RunSummary`), at most `shown`, and how to continue it."""
    for f in s.failures[:shown]:
        console.print(f"[red]tile {f['norder']}/{f['npix']} failed:[/red] {f['error']}", highlight=False)
    if len(s.failures) > shown:
        console.print(f"... and {len(s.failures) - shown} more (SELECT * FROM run_tiles WHERE run_id = {s.run_id} AND status = 'failed')")
    if s.failures and resume:
        console.print(f"fix the cause, then continue with `cmcat {kind} --resume {s.run_id}`")


def check_device(device: Device) -> None:
    """Check a --device option: cuda only when torch sees a GPU (the choice itself is a usage check)."""
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise InputError("--device cuda: torch sees no CUDA GPU here; use --device cpu")
