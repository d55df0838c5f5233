"""`explain_cluster` and `explain_tiles`: which pixels drive predicted masses, one cluster or many."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from sqlalchemy import Engine

from clustermass.config import Settings
from clustermass.db.engine import resolve_url
from clustermass.images.base import BANDS
from clustermass.jobs.tiles import OnProgress, RunOptions, SourceChoice, run_job, tile_spec, worker_args
from clustermass.model.preprocess import colour_composite
from clustermass.model.registry import get_model
from clustermass.pipeline.explain import (
    explain_one,
    explain_tile,
    find_cluster,
    load_explain_model,
    read_results,
    run_dir,
    save_maps,
    summarise,
)
from clustermass.pipeline.runner import RunSummary
from clustermass.pipeline.sources import image_source
from clustermass.plots.explain import plot_enrichment, plot_explanation


@dataclass(frozen=True)
class ExplainSettings:
    """What an explanation computes: the model, the image source, member radius (pixels), TTA."""

    model: str
    source: SourceChoice
    radius: float
    tta: bool


@dataclass
class ExplainedCluster:
    """One explained cluster: its scores (predicted, labelled and true masses, enrichments) and files."""

    cluster_id: int
    name: str | None
    model: str
    png: Path
    npz: Path
    scores: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"cluster_id": self.cluster_id, "name": self.name, "model": self.model, "png": self.png,
                "npz": self.npz, **{k: (None if isinstance(v, float) and v != v else v) for k, v in self.scores.items()}}


@dataclass
class ExplainRun:
    """A batch explanation run: the tile run, how many clusters it explained, the enrichment summary."""

    run: RunSummary
    n_explained: int
    results: Path  # folder of the per-tile CSVs
    summary: dict[str, Any] = field(default_factory=dict)  # with --summary: enrichment statistics
    plot: Path | None = None  # with --summary: enrichment vs mass and z

    def as_dict(self) -> dict[str, Any]:
        out = {"run_id": self.run.run_id, "status": self.run.status, "tiles": self.run.n_tiles,
               "tiles_failed": self.run.n_tiles_failed, "n_explained": self.n_explained, "results": self.results,
               **self.summary}
        return out if self.plot is None else {**out, "plot": self.plot}


def explain_cluster(engine: Engine, settings: Settings, ref: str, how: ExplainSettings, out_dir: Path,
                    on_step: Callable[[str], None] = lambda step: None) -> ExplainedCluster:
    """Explain cluster `ref` (id or name): a PNG and the raw maps (.npz) under `out_dir`."""
    chosen = how.source.identity(engine)
    model = load_explain_model(engine, settings, how.model, how.tta)
    row = find_cluster(engine, ref)
    src = image_source(chosen["source"], resolve_url(settings), settings, chosen["source_options"])
    on_step("integrated gradients + Grad-CAM")
    ce = explain_one(engine, settings, model, row, src, how.radius)
    on_step("writing PNG and maps")
    c, s, e = ce.cluster, ce.scores, ce.explanation
    stem = f"explain-{int(c['id'])}-model{model.model_id}"
    png = plot_explanation(
        colour_composite(ce.image), e.joint, e.ig.attributions, e.cam, out_dir / f"{stem}.png",
        title=f"{c['name'] or c['id']} (id {c['id']}, z={c['z']:.3f}, lambda={c['richness']:.1f}), model {model.name}",
        predicted=s["log10_m500_pred"], labelled=s["log10_m500_label"], true=s["log10_m500_true"],
        members_xy=ce.members_xy, bands=BANDS,
    )
    npz = save_maps(ce, out_dir / f"{stem}.npz")
    return ExplainedCluster(int(c["id"]), c["name"], model.name, png, npz, dict(s))


def explain_tiles(engine: Engine, settings: Settings, tiles: str, how: ExplainSettings, out_dir: Path, *,
                  summary: bool, options: RunOptions, on_progress: OnProgress | None = None) -> ExplainRun:
    """Explain every cluster of `tiles` on Dask (one CSV per tile); with `summary`, the enrichment summary and plot."""
    chosen = how.source.identity(engine)
    spec = tile_spec(tiles)
    model_id = get_model(engine, how.model).id
    ident = {"model_id": model_id, **chosen, "radius": how.radius, "tta": how.tta, "out": str(out_dir)}
    args = {**ident, **worker_args(settings, options, networks=True)}
    run = run_job(settings, "explain", spec, explain_tile, args, options, on_progress, identity=ident,
                  model_id=model_id)
    results = read_results(out_dir, run.run_id)
    done = ExplainRun(run, len(results), run_dir(out_dir, run.run_id))
    if summary:
        done.summary = summarise(results)
        if len(results):
            done.plot = plot_enrichment(results, run_dir(out_dir, run.run_id) / "enrichment.png")
    return done
