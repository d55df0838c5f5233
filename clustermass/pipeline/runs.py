"""Run bookkeeping in PostgreSQL: the `runs` and `run_tiles` rows, and each tile's one transaction.

A tile task writes its results AND marks its tile done in ONE transaction, opened with
`tile_transaction`, which holds a PostgreSQL advisory lock on (scope, tile) for the whole write
and skips a tile that a run of the same scope finished after this run started. Two runs of the
same tiles at once therefore never compute or write a tile twice.
"""

from __future__ import annotations

import os
import socket
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

from sqlalchemy import Connection, Engine, func, insert, select, text, update

from clustermass import sky
from clustermass.db.engine import engine_for_url
from clustermass.db.models import Run, RunTile
from clustermass.db.queries import tile_counts
from clustermass.errors import PipelineError
from clustermass.pipeline.tiles import (
    DEFAULT_MAX_PER_TILE, Pixel, Tile, TileResult, plan_tiles, run_scope, spec_string, tile_lock_key,
)


@dataclass
class TileTransaction:
    """A tile's write transaction: `conn` for the task's reads/writes; `done()` marks the tile."""

    conn: Connection
    run_id: int
    norder: int
    npix: int
    skipped: bool = False
    result: TileResult | None = None

    def done(self, n_clusters: int, n_done: int, n_failed: int = 0, error: str | None = None,
             **extra: Any) -> TileResult:
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
        self.result = TileResult(Pixel(self.norder, self.npix), "done", int(n_clusters), int(n_done), int(n_failed),
                                 error, extra=extra)
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
                tx.result = TileResult(Pixel(norder, npix), "skipped", reason="already done in this run")
            else:
                tx.done(n_clusters=hit.n_clusters, n_done=0, error=f"done by concurrent run {hit.run_id}")
                tx.result = TileResult(Pixel(norder, npix), "skipped", reason=f"done by concurrent run {hit.run_id}")
        yield tx


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return f"{socket.gethostname()}:{os.getpid()}"


def claim_tile(engine: Engine, run_id: int, norder: int, npix: int) -> bool:
    """Mark a tile running on this worker (start time, error cleared); False if it is already done."""
    with engine.begin() as conn:
        return bool(conn.execute(
            update(RunTile)
            .where(
                RunTile.run_id == run_id, RunTile.norder == norder, RunTile.npix == npix, RunTile.status != "done"
            )
            .values(status="running", worker=_worker_name(), started=func.clock_timestamp(), error=None)
        ).rowcount)


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


def finish_run(engine: Engine, run_id: int, status: str, error: str | None) -> None:
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
