"""What the tile commands (predict, fetch, explain) share: tiles, image source, run options.

Each tile command plans tiles from a `--tiles` text, names an image source that travels to the
workers as plain data, and runs one task per tile on Dask with the same execution options.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from sqlalchemy import Engine

from clustermass import sky
from clustermass.config import Settings
from clustermass.errors import InputError
from clustermass.pipeline.runner import RunProgress, RunSummary, TileTask, run_tiles
from clustermass.pipeline.sources import check_frames_indexed, source_options
from clustermass.pipeline.tiles import DEFAULT_MAX_PER_TILE
from clustermass.pipeline.worker import torch_threads_for, worker_settings

#: The progress callback of a tile run (see `pipeline.runner.RunProgress`).
OnProgress = Callable[[RunProgress], None]


@dataclass(frozen=True)
class RunOptions:
    """How a tile run executes: on which Dask cluster, and which of its tiles run again."""

    scheduler: str | None = None  # address of a running scheduler; None: a local cluster
    workers: int | None = None  # processes of the local cluster; None: setting `workers`
    rerun: bool = False  # every tile again, in a new run
    resume: int | None = None  # continue this run id (its tiles, identity and source)
    max_per_tile: int = DEFAULT_MAX_PER_TILE  # clusters per tile before it is split


@dataclass(frozen=True)
class SourceChoice:
    """The image source named on the command line, with its options."""

    name: str  # mock | local | sas (pipeline.sources.SOURCES)
    frames: str | None = None  # frame mirror folder (local)
    universe: str | None = None  # mock universe folder (mock)
    seed: int = 0  # mock renderer seed (mock)

    def identity(self, engine: Engine) -> dict[str, Any]:
        """{'source', 'source_options'} as stored with a run; stops when `fields` is needed but empty."""
        opts = source_options(self.name, self.frames, self.universe, self.seed)
        check_frames_indexed(engine, self.name)
        return {"source": self.name, "source_options": opts}


def tile_spec(tiles: str) -> sky.TileSpec:
    """The tiles of a `--tiles` text ('3' or '3:12,13'); InputError with the reason otherwise."""
    try:
        return sky.parse_tiles(tiles)
    except ValueError as exc:
        raise InputError(str(exc)) from None


def worker_args(settings: Settings, run: RunOptions, networks: bool) -> dict[str, Any]:
    """Task arguments every tile of a run gets: the settings, and torch threads when it runs a network."""
    args: dict[str, Any] = {"settings": worker_settings(settings)}
    if networks:
        args["torch_threads"] = torch_threads_for(run.scheduler, run.workers or settings.workers)
    return args


def run_job(settings: Settings, kind: str, spec: sky.TileSpec | None, task: TileTask, args: dict,
            options: RunOptions, on_progress: OnProgress | None, **identity: Any) -> RunSummary:
    """`run_tiles` with the run options (identity: `identity`, `catalog_id`, `model_id`)."""
    return run_tiles(settings, kind, spec, task, args, scheduler=options.scheduler,
                     workers=options.workers or settings.workers, resume=options.resume, rerun=options.rerun,
                     max_per_tile=options.max_per_tile, on_progress=on_progress, **identity)
