"""The Dask layer: one task per HEALPix tile, shared by `cmcat predict`, `fetch` and `explain`.

Planning is pure (pipeline/tiles.py); the runs, tiles and each tile's transaction live in
PostgreSQL (pipeline/runs.py); this module maps tile tasks over Dask workers and accounts for
their results.

API (stable)
------------
``run_tiles(settings, kind, spec, task, task_args, *, identity=None, catalog_id=None, model_id=None,
scheduler=None, workers=None, resume=None, rerun=False, max_per_tile=DEFAULT_MAX_PER_TILE,
on_progress=None) -> RunSummary``

The runner plans tiles from `spec` (a `sky.TileSpec`) and the clusters in the database (dense
tiles are split to higher orders so no task holds more than `max_per_tile` clusters), creates a
`runs` row and its `run_tiles` rows, and maps one Dask task per tile over a
`distributed.LocalCluster` of worker processes (default, `settings.workers`) or an existing
scheduler (`scheduler="tcp://host:8786"`). Each tile task is a *module-level* function called on a
worker as::

    task(db_url, run_id, norder, npix, **task_args) -> TileResult (pipeline/tiles.py)

with plain, picklable arguments (`db_url` is the resolved database URL, so workers never start
an embedded server). The task writes its results AND marks its tile done in ONE transaction,
opened with `runs.tile_transaction`::

    def my_task(db_url, run_id, norder, npix, **kw):
        with tile_transaction(db_url, run_id, norder, npix) as tx:
            if tx.skipped:            # another process finished this tile meanwhile
                return tx.result
            clusters = clusters_in_tile(tx.conn, norder, npix)
            ...                       # compute, copy_upsert(tx.conn, ...)
            return tx.done(n_clusters=len(clusters), n_done=..., n_failed=...)

The runner does the rest: marks tiles running (worker, start time), records a task's exception
as the tile's failure reason, marks tiles of lost workers failed, reports progress, and sets the
run's final status (done | failed | interrupted).

Resume and idempotency: a run is identified by its kind and `identity` (default: `task_args`;
pass only what defines the *result*, e.g. model id and source, not the batch size). Running
the same command again continues the latest run with that identity and skips its done tiles;
`resume=RUN_ID` continues a given run (its stored spec and task arguments are reused, updated by
any `task_args` given); `rerun=True` starts a new run that recomputes every tile.

Concurrency: `tile_transaction` holds a PostgreSQL advisory lock on (identity, tile) for the
whole write, and skips a tile that a run of the same identity finished after this run started.
Two runs of the same tiles at once therefore never compute or write a tile twice.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator, TypeVar

from sqlalchemy import Engine

from clustermass import sky
from clustermass.config import Settings
from clustermass.db.engine import engine_for_url, get_engine, resolve_url
from clustermass.db.urls import scrub
from clustermass.errors import Interrupted, PipelineError
from clustermass.pipeline.runs import claim_tile, finish_run, mark_failed, prepare_run
from clustermass.pipeline.tiles import DEFAULT_MAX_PER_TILE, Pixel, Tile, TileResult

#: Waits (s) between attempts of a tile whose database connection failed (server restarting).
DB_RETRY_DELAYS_S = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)

TileTask = Callable[..., TileResult]
T = TypeVar("T")


def db_unreachable(exc: BaseException) -> bool:
    """Whether `exc` means the database connection failed or dropped (not a bad query)."""
    import psycopg2
    from sqlalchemy.exc import DBAPIError

    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        exc = exc.orig
    return isinstance(exc, (psycopg2.OperationalError, psycopg2.InterfaceError)) and not isinstance(
        exc, psycopg2.errors.QueryCanceled
    )


def execute_tile(task: TileTask, db_url: str, run_id: int, norder: int, npix: int, task_args: dict) -> TileResult:
    """Run one tile task on a worker: mark it running, call it, record a failure's reason.

    Never raises for task errors (they are data: the tile is marked failed with the reason).
    A lost database connection (server restart) is retried (`through_restarts`; the tile's
    transaction was rolled back, so a retry starts clean); if the database stays away the
    exception surfaces on the client, as a lost worker does.
    """
    return through_restarts(lambda: _execute_tile_once(task, db_url, run_id, norder, npix, task_args))


def through_restarts(call: Callable[[], T]) -> T:
    """call(), retried after each of DB_RETRY_DELAYS_S while the database is unreachable (a server restart);
    other errors, and the last failed attempt's, propagate."""
    for delay in (*DB_RETRY_DELAYS_S, None):
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - only connection failures are retried
            if delay is None or not db_unreachable(exc):
                raise
            time.sleep(delay)
    raise AssertionError("unreachable")


def _execute_tile_once(task: TileTask, db_url: str, run_id: int, norder: int, npix: int,
                       task_args: dict) -> TileResult:
    engine = engine_for_url(db_url)
    claimed = claim_tile(engine, run_id, norder, npix)
    if not claimed:
        return TileResult(Pixel(norder, npix), "skipped", reason="already done in this run")
    try:
        return task(db_url, run_id, norder, npix, **task_args)
    except Exception as exc:  # noqa: BLE001 - any task error becomes the tile's recorded failure
        if db_unreachable(exc):
            raise
        reason = scrub(f"{type(exc).__name__}: {exc}", db_url)[:2000]
        mark_failed(engine, run_id, norder, npix, reason)
        return TileResult(Pixel(norder, npix), "failed", error=reason)


@dataclass
class RunProgress:
    """What the progress callback sees: after startup and after each finished tile."""

    run_id: int
    tiles_total: int
    tiles_finished: int
    clusters_total: int
    clusters_finished: int
    dashboard_link: str | None = None
    last: TileResult | None = None  # the last tile's result


@dataclass
class RunSummary:
    """Outcome of one invocation of `run_tiles` (counts are for this invocation)."""

    run_id: int
    kind: str
    status: str  # done | failed | interrupted
    resumed: bool
    n_tiles: int  # tiles in the run
    n_tiles_done: int  # done by this invocation
    n_tiles_skipped: int  # already done (earlier invocation or concurrent run)
    n_tiles_failed: int
    n_clusters: int  # clusters in the tiles processed now
    n_done: int  # clusters with a result written
    n_failed: int  # clusters that failed inside tiles that succeeded
    seconds: float
    failures: list[dict] = field(default_factory=list)  # {norder, npix, error}
    dashboard_link: str | None = None
    workers: int = 0

    @property
    def clusters_per_s(self) -> float:
        return self.n_done / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict:
        return {**asdict(self), "clusters_per_s": self.clusters_per_s}


@contextmanager
def dask_client(scheduler: str | None, workers: int) -> Iterator[Any]:
    """A distributed Client on `scheduler`, or on a new LocalCluster of `workers` processes."""
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, ValueError) as exc:  # refused/timed out; a malformed address or unknown scheme
            raise PipelineError(
                f"cannot reach the Dask scheduler at {scheduler}: {exc}. Start one with `dask scheduler` "
                "and workers with `dask worker ADDR`, or leave out --scheduler for a local cluster."
            ) from None
        with client:
            yield client
        return
    with _children_ignore_sigint():
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            # workers log at ERROR when the scheduler stops first (e.g. after Ctrl-C: "Failed to
            # communicate with scheduler during heartbeat", with a traceback); a tile's failure or a
            # lost worker is recorded in run_tiles and the run summary, not read from these logs
            silence_logs=logging.CRITICAL,
        )
    with cluster, Client(cluster) as client:
        yield client


@contextmanager
def _children_ignore_sigint() -> Iterator[None]:
    """Processes started inside inherit SIGINT ignored (SIG_IGN survives exec).

    Ctrl-C in a terminal signals the whole process group: the worker processes would each die
    with a KeyboardInterrupt traceback while this process stops the cluster anyway. A Ctrl-C
    during the few seconds inside is lost (the next one counts).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)


def _dashboard(client: Any) -> str | None:
    import importlib.util

    return client.dashboard_link if importlib.util.find_spec("bokeh") else None


def run_tiles(
    settings: Settings,
    kind: str,
    spec: sky.TileSpec | None,
    task: TileTask,
    task_args: dict | None,
    *,
    identity: dict | None = None,
    catalog_id: int | None = None,
    model_id: int | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    resume: int | None = None,
    rerun: bool = False,
    max_per_tile: int = DEFAULT_MAX_PER_TILE,
    on_progress: Callable[[RunProgress], None] | None = None,
) -> RunSummary:
    """Run `task` over the tiles of `spec` on Dask; see the module docstring for the contract.

    `catalog_id` restricts planning to one catalogue and is passed to the task as
    `task_args["catalog_id"]`. `model_id` is stored on the runs row. Ctrl-C marks the run
    interrupted and raises `Interrupted` (continue it later); any other error of the run (an
    unreachable scheduler) marks it failed with the reason; a hard kill leaves it 'running'.
    All three are resumable.
    """
    engine = get_engine(settings)
    db_url = resolve_url(settings)
    n_workers = int(workers or settings.workers)
    run_id, args, todo, skipped, resumed = prepare_run(
        engine,
        kind,
        spec,
        task_args,
        identity=identity,
        catalog_id=catalog_id,
        model_id=model_id,
        resume=resume,
        rerun=rerun,
        max_per_tile=max_per_tile,
    )
    summary = RunSummary(
        run_id=run_id,
        kind=kind,
        status="done",
        resumed=resumed,
        n_tiles=len(todo) + skipped,
        n_tiles_done=0,
        n_tiles_skipped=skipped,
        n_tiles_failed=0,
        n_clusters=0,
        n_done=0,
        n_failed=0,
        seconds=0.0,
        workers=n_workers,
    )
    t0 = time.perf_counter()
    try:
        try:
            if todo:
                _execute(summary, todo, db_url, engine, task, args, scheduler, n_workers, on_progress)
        except KeyboardInterrupt:
            summary.status = "interrupted"
            reason = f"interrupted by the user; finished tiles are saved. Continue with {_continue_with(kind, run_id)}"
            through_restarts(lambda: finish_run(engine, run_id, "interrupted", reason))
            raise Interrupted(f"{kind} run {run_id} {reason}") from None
        except Exception as exc:  # e.g. an unreachable scheduler: the run must not stay 'running'
            if not db_unreachable(exc):
                finish_run(engine, run_id, "failed", scrub(_one_line(exc), db_url)[:2000])
            raise
        finally:
            summary.seconds = time.perf_counter() - t0
        if summary.n_tiles_failed:
            summary.status = "failed"
            through_restarts(lambda: finish_run(engine, run_id, "failed",
                                                f"{summary.n_tiles_failed} tile(s) failed; see run_tiles.error"))
        else:
            through_restarts(lambda: finish_run(engine, run_id, "done", None))
    except Exception as exc:
        if not db_unreachable(exc):
            raise
        raise PipelineError(
            f"lost the connection to PostgreSQL during {kind} run {run_id} ({scrub(_one_line(exc), db_url)}); "
            f"finished tiles are saved. When the database is back, continue with {_continue_with(kind, run_id)}"
        ) from None
    return summary


def _one_line(exc: BaseException) -> str:
    """An exception's message (a driver error's own, without SQLAlchemy's wrapping) on one line."""
    return " ".join(str(getattr(exc, "orig", None) or exc).split())


def _continue_with(kind: str, run_id: int) -> str:
    """How a user continues run `run_id` of `kind` (explain has no --resume: the same command resumes)."""
    return f"`cmcat {kind} --resume {run_id}`" if kind in ("predict", "fetch") else "the same command"


def _execute(
    summary: RunSummary,
    todo: list[Tile],
    db_url: str,
    engine: Engine,
    task: TileTask,
    args: dict,
    scheduler: str | None,
    n_workers: int,
    on_progress: Callable[[RunProgress], None] | None,
) -> None:
    from distributed import as_completed

    clusters_total = sum(t.n_clusters for t in todo)
    with dask_client(scheduler, n_workers) as client:
        link = _dashboard(client)
        summary.dashboard_link = link
        if scheduler:
            summary.workers = len(client.scheduler_info().get("workers", {}))
        progress = RunProgress(summary.run_id, len(todo), 0, clusters_total, 0, link)
        if on_progress:
            on_progress(progress)
        futures = {
            client.submit(
                execute_tile,
                task,
                db_url,
                summary.run_id,
                t.norder,
                t.npix,
                args,
                key=f"{summary.kind}-run{summary.run_id}-o{t.norder}-p{t.npix}-{os.getpid()}",
                pure=False,
            ): t
            for t in todo
        }
        for fut in as_completed(futures):
            tile = futures[fut]
            try:
                res = fut.result()
            except Exception as exc:  # noqa: BLE001 - lost worker (KilledWorker) or unpicklable task
                reason = scrub(f"worker lost or task not runnable: {type(exc).__name__}: {exc}", db_url)[:2000]
                through_restarts(lambda: mark_failed(engine, summary.run_id, tile.norder, tile.npix, reason))
                res = TileResult(tile.pixel, "failed", error=reason)
            _account(summary, tile, res)
            progress.tiles_finished += 1
            progress.clusters_finished += tile.n_clusters
            progress.last = res
            if on_progress:
                on_progress(progress)


def _account(summary: RunSummary, tile: Tile, res: TileResult) -> None:
    if res.status == "failed":
        summary.n_tiles_failed += 1
        summary.failures.append({"norder": tile.norder, "npix": tile.npix, "error": res.error})
    elif res.status == "skipped":
        summary.n_tiles_skipped += 1
    else:
        summary.n_tiles_done += 1
        summary.n_clusters += res.n_clusters
        summary.n_done += res.n_done
        summary.n_failed += res.n_failed
