"""`train_models`: stage 1 (band classifier) and/or stage 2 (k-fold CNN, hybrid, richness), registered."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Engine

from clustermass.config import Settings
from clustermass.jobs.tiles import SourceChoice
from clustermass.model import workflow
from clustermass.model.data import fine_images_fn, source_images_fn
from clustermass.model.trainconfig import load_train_config
from clustermass.model.train import ProgressFn
from clustermass.mock.version import provenance as mock_provenance
from clustermass.pipeline.sources import make_source

@dataclass
class TrainSummary:
    """The models a training made or found (registry summaries plus `trained`: made now), its time (s)."""

    models: list[dict[str, Any]]
    seconds: float
    config: str
    seed: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def train_models(engine: Engine, settings: Settings, stage: str, config: str, seed: int, source: SourceChoice, *,
                 trunk: str | None, device: str, threads: int | None,
                 on_progress: ProgressFn | None = None) -> TrainSummary:
    """Train (or find, when the same data, config and seed made them) the models of `stage` (1, 2 or all)."""
    if threads:
        import torch

        torch.set_num_threads(threads)
    cfg = load_train_config(config)
    chosen = source.identity(engine)
    opts = chosen["source_options"]
    provenance = mock_provenance(opts["universe_dir"], source.seed) if source.name == "mock" else None
    models: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    src = make_source(engine, settings, source.name, opts)
    images_fn = source_images_fn(engine, settings, workflow.grid_of(cfg.grid), src, on_progress)
    trunk_ref: str | int = trunk or "band-classifier"
    if stage in ("1", "all"):
        rec, new = workflow.train_band_classifier(engine, settings, cfg, seed, images_fn, source.name, device,
                                                 on_progress, provenance)
        models.append({**rec.summary(), "trained": new})
        trunk_ref = rec.id
    if stage in ("2", "all"):
        fine_fn = fine_images_fn(cfg.stage2.photometry, src)
        for rec, new in workflow.train_mass_models(engine, settings, cfg, seed, images_fn, source.name, trunk_ref, device,
                                                   on_progress, provenance, fine_fn):
            models.append({**rec.summary(), "trained": new})
    return TrainSummary(models, time.perf_counter() - t0, cfg.name, seed)
