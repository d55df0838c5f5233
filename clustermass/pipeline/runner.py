"""The generic Dask runner over HEALPix tiles, shared by `cmcat predict` and `cmcat fetch`.

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

    task(db_url, run_id, norder, npix, **task_args) -> dict(n_clusters=..., n_done=..., n_failed=..., ...)

with plain, picklable arguments (`db_url` is the resolved database URL, so workers never start
an embedded server). The task writes its results AND marks its tile done in ONE transaction,
opened with `tile_transaction`::

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

import hashlib
import json
import logging
import os
import signal
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator

import pandas as pd
from sqlalchemy import Connection, Engine, func, insert, select, text, update

from clustermass import sky
from clustermass.config import Settings
from clustermass.db.engine import engine_for_url, get_engine, resolve_url
from clustermass.db.models import Run, RunTile
from clustermass.db.queries import tile_counts
from clustermass.db.urls import scrub
from clustermass.errors import Interrupted, PipelineError

#: Tiles holding more clusters than this are split into their 4 children (recursively).
DEFAULT_MAX_PER_TILE = 2000
#: How many orders below the requested one a dense tile may be split.
MAX_SPLIT_DEPTH = 6
#: Waits (s) between attempts of a tile whose database connection failed (server restarting).
DB_RETRY_DELAYS_S = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)

TileTask = Callable[..., dict]


# --------------------------------------------------------------------------- planning (pure)


@dataclass(frozen=True)
class Tile:
    """One unit of work: HEALPix NESTED pixel `npix` at order `norder`, holding `n_clusters`."""

    norder: int
    npix: int
    n_clusters: int


def plan_tiles(
    spec: sky.TileSpec,
    count_at: Callable[[int], pd.Series],
    max_per_tile: int = DEFAULT_MAX_PER_TILE,
    max_depth: int = MAX_SPLIT_DEPTH,
) -> list[Tile]:
    """Tiles of `spec`, dense ones split into children until each holds <= `max_per_tile`.

    `count_at(order)` gives the number of clusters per pixel at `order` (index: pixel). With
    `spec.pixels` None, the tiles holding clusters; else exactly the listed tiles (empty ones
    kept, so they are recorded as done). Splitting stops `max_depth` orders below `spec.order`.
    Sorted largest first (better load balance).
    """
    counts: dict[int, pd.Series] = {}

    def n_of(order: int, pix: int) -> int:
        if order not in counts:
            counts[order] = count_at(order)
        return int(counts[order].get(pix, 0))

    base = count_at(spec.order)
    counts[spec.order] = base
    if spec.pixels is None:
        pixels = [int(p) for p, n in base.items() if n > 0]
    else:
        pixels = sorted(set(int(p) for p in spec.pixels))
    stop = min(sky.MAX_ORDER, spec.order + max_depth)
    out: list[Tile] = []
    stack = [(spec.order, p) for p in pixels]
    while stack:
        order, pix = stack.pop()
        n = n_of(order, pix)
        if n > max_per_tile and order < stop:
            stack.extend((order + 1, c) for c in range(4 * pix, 4 * pix + 4) if n_of(order + 1, c) > 0)
        else:
            out.append(Tile(order, pix, n))
    return sorted(out, key=lambda t: (-t.n_clusters, t.norder, t.npix))


def run_scope(kind: str, identity: dict[str, Any]) -> str:
    """A short stable hash naming what a run computes (kind + identity): runs with the same
    scope produce the same results, so they share tile locks and done tiles."""
    payload = json.dumps({"kind": kind, "identity": identity}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def tile_lock_key(scope: str, norder: int, npix: int) -> int:
    """Signed 64-bit PostgreSQL advisory-lock key of one tile of a scope."""
    digest = hashlib.sha256(f"{scope}:{norder}:{npix}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def spec_string(spec: sky.TileSpec) -> str:
    """The CLI form of a TileSpec ('3' or '3:12,13')."""
    if spec.pixels is None:
        return str(spec.order)
    return f"{spec.order}:{','.join(str(p) for p in spec.pixels)}"


# --------------------------------------------------------------------------- the tile transaction


@dataclass
class TileTransaction:
    """A tile's write transaction: `conn` for the task's reads/writes; `done()` marks the tile."""

    conn: Connection
    run_id: int
    norder: int
    npix: int
    skipped: bool = False
    result: dict | None = None

    def done(self, n_clusters: int, n_done: int, n_failed: int = 0, error: str | None = None, **extra: Any) -> dict:
        """Mark the tile done (same transaction as the task's writes); return the task result.

        `error` is a note for partial failures (e.g. clusters without images); `extra` is
        passed back to the runner's progress callback unchanged.
        """
        self.conn.execute(
            update(RunTile)
            .where(RunTile.run_id == self.run_id, RunTile.norder == self.norder, RunTile.npix == self.npix)
            .values(
                status="done",
                n_clusters=int(n_clusters),
                n_done=int(n_done),
                n_failed=int(n_failed),
                error=error,
                finished=func.clock_timestamp(),
                seconds=func.extract("epoch", func.clock_timestamp() - func.coalesce(RunTile.started, func.now())),
            )
        )
        self.result = {
            "status": "done",
            "n_clusters": int(n_clusters),
            "n_done": int(n_done),
            "n_failed": int(n_failed),
            "error": error,
            **extra,
        }
        return self.result


_DONE_ELSEWHERE = text(
    """
    SELECT rt.run_id, rt.n_clusters FROM run_tiles rt JOIN runs r ON r.id = rt.run_id
    WHERE r.params->>'scope' = :scope AND r.kind = :kind AND rt.norder = :norder AND rt.npix = :npix
      AND rt.status = 'done'
      AND (rt.run_id = :run_id OR rt.finished >= (SELECT started FROM runs WHERE id = :run_id))
    ORDER BY rt.run_id = :run_id DESC LIMIT 1
    """
)


@contextmanager
def tile_transaction(db_url: str, run_id: int, norder: int, npix: int) -> Iterator[TileTransaction]:
    """Open the ONE transaction of a tile task, holding the tile's advisory lock.

    If the tile is already done in this run, or a run of the same scope finished it after this
    run started (a concurrent run), `skipped` is True and `result` says why; the task should
    return `result` without writing. Otherwise the task writes through `conn` and ends with
    `done(...)`. An exception rolls everything back (the runner records it as the failure).
    """
    engine = engine_for_url(db_url)
    with engine.begin() as conn:
        row = conn.execute(select(Run.kind, Run.params["scope"].astext).where(Run.id == run_id)).one_or_none()
        if row is None:
            raise PipelineError(f"run {run_id} does not exist (deleted while its tiles were running?)")
        kind, scope = row
        conn.execute(select(func.pg_advisory_xact_lock(tile_lock_key(scope, norder, npix))))
        hit = conn.execute(
            _DONE_ELSEWHERE, {"scope": scope, "kind": kind, "norder": norder, "npix": npix, "run_id": run_id}
        ).first()
        tx = TileTransaction(conn, run_id, norder, npix)
        if hit is not None:
            tx.skipped = True
            if hit.run_id == run_id:
                tx.result = {"status": "skipped", "reason": "already done in this run", "n_clusters": 0}
            else:
                tx.done(n_clusters=hit.n_clusters, n_done=0, error=f"done by concurrent run {hit.run_id}")
                tx.result = {"status": "skipped", "reason": f"done by concurrent run {hit.run_id}", "n_clusters": 0}
        yield tx


# --------------------------------------------------------------------------- worker-side wrapper


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return f"{socket.gethostname()}:{os.getpid()}"


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


def execute_tile(task: TileTask, db_url: str, run_id: int, norder: int, npix: int, task_args: dict) -> dict:
    """Run one tile task on a worker: mark it running, call it, record a failure's reason.

    Never raises for task errors (they are data: the tile is marked failed with the reason).
    A lost database connection (server restart) is retried after each of DB_RETRY_DELAYS_S
    (the tile's transaction was rolled back, so a retry starts clean); if the database stays
    away the exception surfaces on the client, as a lost worker does.
    """
    for delay in (*DB_RETRY_DELAYS_S, None):
        try:
            return _execute_tile_once(task, db_url, run_id, norder, npix, task_args)
        except Exception as exc:  # noqa: BLE001 - only connection failures are retried
            if delay is None or not db_unreachable(exc):
                raise
            time.sleep(delay)
    raise AssertionError("unreachable")


def _execute_tile_once(task: TileTask, db_url: str, run_id: int, norder: int, npix: int, task_args: dict) -> dict:
    engine = engine_for_url(db_url)
    with engine.begin() as conn:
        claimed = conn.execute(
            update(RunTile)
            .where(
                RunTile.run_id == run_id, RunTile.norder == norder, RunTile.npix == npix, RunTile.status != "done"
            )
            .values(status="running", worker=_worker_name(), started=func.clock_timestamp(), error=None)
        ).rowcount
    if not claimed:
        return {"status": "skipped", "reason": "already done in this run", "n_clusters": 0, "norder": norder, "npix": npix}
    try:
        result = dict(task(db_url, run_id, norder, npix, **task_args))
    except Exception as exc:  # noqa: BLE001 - any task error becomes the tile's recorded failure
        if db_unreachable(exc):
            raise
        reason = scrub(f"{type(exc).__name__}: {exc}", db_url)[:2000]
        mark_failed(engine, run_id, norder, npix, reason)
        return {"status": "failed", "error": reason, "n_clusters": 0, "n_done": 0, "n_failed": 0, "norder": norder, "npix": npix}
    result.setdefault("status", "done")
    return {**result, "norder": norder, "npix": npix}


def mark_failed(engine: Engine, run_id: int, norder: int, npix: int, reason: str) -> None:
    """Record a tile failure (never overwrites a tile that is done)."""
    with engine.begin() as conn:
        conn.execute(
            update(RunTile)
            .where(
                RunTile.run_id == run_id, RunTile.norder == norder, RunTile.npix == npix, RunTile.status != "done"
            )
            .values(
                status="failed",
                error=reason,
                finished=func.clock_timestamp(),
                seconds=func.extract("epoch", func.clock_timestamp() - func.coalesce(RunTile.started, func.now())),
            )
        )


# --------------------------------------------------------------------------- run bookkeeping


@dataclass
class RunProgress:
    """What the progress callback sees: after startup and after each finished tile."""

    run_id: int
    tiles_total: int
    tiles_finished: int
    clusters_total: int
    clusters_finished: int
    dashboard_link: str | None = None
    last: dict | None = None  # the last tile's result (status, n_clusters, n_done, error, ...)


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


def _find_run(conn: Connection, kind: str, scope: str) -> int | None:
    return conn.execute(
        select(Run.id).where(Run.kind == kind, Run.params["scope"].astext == scope).order_by(Run.id.desc()).limit(1)
    ).scalar_one_or_none()


def _create_run(
    conn: Connection, kind: str, params: dict, model_id: int | None, tiles: list[Tile]
) -> int:
    run_id = conn.execute(
        insert(Run)
        .values(
            kind=kind,
            status="running",
            params=params,
            model_id=model_id,
            n_tiles=len(tiles),
            n_clusters=sum(t.n_clusters for t in tiles),
        )
        .returning(Run.id)
    ).scalar_one()
    if tiles:
        conn.execute(
            insert(RunTile),
            [{"run_id": run_id, "norder": t.norder, "npix": t.npix, "n_clusters": t.n_clusters} for t in tiles],
        )
    return run_id


def _pending_tiles(conn: Connection, run_id: int) -> tuple[list[Tile], int]:
    rows = conn.execute(
        select(RunTile.norder, RunTile.npix, RunTile.n_clusters, RunTile.status).where(RunTile.run_id == run_id)
    ).all()
    todo = [Tile(r.norder, r.npix, r.n_clusters) for r in rows if r.status != "done"]
    todo.sort(key=lambda t: (-t.n_clusters, t.norder, t.npix))
    return todo, len(rows) - len(todo)


def _finish_run(engine: Engine, run_id: int, status: str, error: str | None) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(Run).where(Run.id == run_id).values(status=status, error=error, finished=func.clock_timestamp())
        )


def prepare_run(
    engine: Engine,
    kind: str,
    spec: sky.TileSpec | None,
    task_args: dict | None,
    *,
    identity: dict | None = None,
    catalog_id: int | None = None,
    model_id: int | None = None,
    resume: int | None = None,
    rerun: bool = False,
    max_per_tile: int = DEFAULT_MAX_PER_TILE,
) -> tuple[int, dict, list[Tile], int, bool]:
    """Find, resume or create the run; return (run_id, task_args, tiles to do, tiles skipped, resumed)."""
    with engine.begin() as conn:
        if resume is not None:
            run = conn.execute(select(Run.id, Run.kind, Run.params).where(Run.id == resume)).one_or_none()
            if run is None or run.kind != kind:
                raise PipelineError(
                    f"run {resume} is not a {kind} run; list runs with "
                    f"cmcat sql \"SELECT id, kind, status, params FROM runs ORDER BY id\""
                )
            args = {**run.params.get("task_args", {}), **(task_args or {})}
            run_id, resumed = run.id, True
        else:
            if spec is None or task_args is None:
                raise PipelineError("give the tiles and task arguments of a new run, or a run id to resume")
            args = dict(task_args)
            if catalog_id is not None:
                args["catalog_id"] = catalog_id
            ident = dict(identity if identity is not None else args)
            ident.update(tiles=spec_string(spec), catalog_id=catalog_id)
            scope = run_scope(kind, ident)
            run_id = None if rerun else _find_run(conn, kind, scope)
            resumed = run_id is not None
            if run_id is None:
                tiles = plan_tiles(spec, lambda k: tile_counts(conn, k, catalog_id), max_per_tile)
                params = {
                    "scope": scope,
                    "identity": ident,
                    "tiles": spec_string(spec),
                    "task_args": args,
                    "max_per_tile": max_per_tile,
                }
                run_id = _create_run(conn, kind, params, model_id, tiles)
        todo, skipped = _pending_tiles(conn, run_id)
        if resumed:
            params = dict(conn.execute(select(Run.params).where(Run.id == run_id)).scalar_one())
            params["task_args"] = args
            conn.execute(
                update(Run).where(Run.id == run_id).values(status="running", error=None, finished=None, params=params)
            )
    return run_id, args, todo, skipped, resumed


# --------------------------------------------------------------------------- execution


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
            silence_logs=logging.ERROR,
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
            _finish_run(engine, run_id, "interrupted", reason)
            raise Interrupted(f"{kind} run {run_id} {reason}") from None
        except Exception as exc:  # e.g. an unreachable scheduler: the run must not stay 'running'
            if not db_unreachable(exc):
                _finish_run(engine, run_id, "failed", scrub(_one_line(exc), db_url)[:2000])
            raise
        finally:
            summary.seconds = time.perf_counter() - t0
        if summary.n_tiles_failed:
            summary.status = "failed"
            _finish_run(engine, run_id, "failed", f"{summary.n_tiles_failed} tile(s) failed; see run_tiles.error")
        else:
            _finish_run(engine, run_id, "done", None)
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
                mark_failed(engine, summary.run_id, tile.norder, tile.npix, reason)
                res = {"status": "failed", "error": reason, "norder": tile.norder, "npix": tile.npix}
            _account(summary, tile, res)
            progress.tiles_finished += 1
            progress.clusters_finished += tile.n_clusters
            progress.last = res
            if on_progress:
                on_progress(progress)


def _account(summary: RunSummary, tile: Tile, res: dict) -> None:
    status = res.get("status")
    if status == "failed":
        summary.n_tiles_failed += 1
        summary.failures.append({"norder": tile.norder, "npix": tile.npix, "error": res.get("error")})
    elif status == "skipped":
        summary.n_tiles_skipped += 1
    else:
        summary.n_tiles_done += 1
        summary.n_clusters += int(res.get("n_clusters", 0))
        summary.n_done += int(res.get("n_done", 0))
        summary.n_failed += int(res.get("n_failed", 0))


def run_tiles_status(engine: Engine, run_id: int) -> pd.DataFrame:
    """The run_tiles rows of a run (for status displays and tests)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                RunTile.norder, RunTile.npix, RunTile.status, RunTile.n_clusters, RunTile.n_done,
                RunTile.n_failed, RunTile.error, RunTile.worker, RunTile.seconds,
            ).where(RunTile.run_id == run_id).order_by(RunTile.norder, RunTile.npix)
        ).all()
    return pd.DataFrame(rows, columns=["norder", "npix", "status", "n_clusters", "n_done", "n_failed", "error", "worker", "seconds"])


__all__ = [
    "DEFAULT_MAX_PER_TILE",
    "RunProgress",
    "RunSummary",
    "Tile",
    "TileTransaction",
    "execute_tile",
    "plan_tiles",
    "run_scope",
    "run_tiles",
    "run_tiles_status",
    "spec_string",
    "tile_transaction",
]
