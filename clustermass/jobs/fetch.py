"""`fetch_tiles`: ugriz cutouts of every cluster of a set of HEALPix tiles into the cutout store."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import Engine

from clustermass.config import Settings
from clustermass.db.queries import catalog_id_by_name
from clustermass.errors import InputError
from clustermass.images.base import CutoutGrid
from clustermass.jobs.tiles import OnProgress, RunOptions, SourceChoice, run_job, tile_spec, worker_args
from clustermass.pipeline.fetch import fetch_tile
from clustermass.pipeline.runner import RunProgress, RunSummary

#: Cutout counts a fetch tile reports, in the order of the summary.
COUNTS = ("cached", "fetched", "changed", "partial", "failed")


@dataclass
class FetchSummary:
    """A fetch run, with its cutouts counted over the tiles (this invocation) and why they failed."""

    run: RunSummary
    cutouts: Counter = field(default_factory=Counter)  # cached, fetched, changed, partial, failed
    reasons: Counter = field(default_factory=Counter)  # failure reason -> cutouts

    def add(self, p: RunProgress) -> None:
        """Count the cutouts of the tile that just finished."""
        if p.last is not None:
            self.cutouts.update({k: int(p.last.extra.get(k) or 0) for k in COUNTS})
            self.reasons.update(p.last.extra.get("errors") or {})

    def as_dict(self) -> dict:
        return {**self.run.as_dict(), **{k: self.cutouts[k] for k in COUNTS},
                "failure_reasons": dict(self.reasons.most_common())}


def fetch_tiles(engine: Engine, settings: Settings, tiles: str | None, source: SourceChoice, grid: CutoutGrid, *,
                catalog: str | None, options: RunOptions, on_progress: OnProgress | None = None) -> FetchSummary:
    """Fetch or render the cutouts of the clusters of `tiles` (or continue run `options.resume`)."""
    counted = FetchSummary(run=None)  # type: ignore[arg-type]  # the run is set when it ends

    def progress(p: RunProgress) -> None:
        counted.add(p)
        if on_progress is not None:
            on_progress(p)

    args = worker_args(settings, options, networks=False)
    if options.resume is not None:
        counted.run = run_job(settings, "fetch", None, fetch_tile, args, options, progress)
        return counted
    if not tiles:
        raise InputError("give --tiles (e.g. '3' or '3:12,13'), or --resume RUN to continue a run")
    spec = tile_spec(tiles)
    catalog_id = catalog_id_by_name(engine, catalog)
    ident = {**source.identity(engine), "grid": grid.as_dict()}
    counted.run = run_job(settings, "fetch", spec, fetch_tile, {**args, **ident}, options, progress,
                          identity=ident, catalog_id=catalog_id)
    return counted
