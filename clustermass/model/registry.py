"""Model registry: `models` rows + weights files under settings.model_dir, and loading predictors.

A row holds the kind ('band-classifier' | 'cnn' | 'hybrid' | 'richness'), the training config
(grid, normalisation, architecture), metrics, a training-data summary, the git commit of the
code and the weights file (path relative to settings.model_dir, sha256 checked on every load).

`load_predictor(engine, settings, ref, device)` is what `cmcat predict` and explain use: it
returns a `clustermass.model.api.MassPredictor`:
- 'cnn' / 'hybrid': the ensemble of the k fold heads on the frozen trunk (or, fine-tuned, each
  head on its own fold trunk, saved as 'fold_trunks'); the estimate is the mean over folds.
- 'richness': the least-squares log10 M500 (lambda, z) relation of clustermass.model.baseline
  (config 'coef': 4 coefficients, 3 in models registered before its z^2 term); needs no images.
A cluster whose label trained the model (training.oof: its id and fold) gets the prediction of
the fold that held it out instead (that head; for 'richness' that fold's relation, config
'fold_coef'), and `folds(ids)` says which. The error is the calibrated sigma(lambda, z) of
metrics.calibration (clustermass.model.calibration), in dex.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sqlalchemy import Engine, insert, select, update
from sqlalchemy.orm import Session

from clustermass.config import Settings
from clustermass.db.models import Model
from clustermass.errors import ModelError
from clustermass.images.atomic import atomic_write
from clustermass.images.base import CutoutGrid
from clustermass.model.api import MassPredictor
from clustermass.model.bcgfit import BcgFit
from clustermass.model.calibration import Calibration
from clustermass.model.datasets import aux_inputs
from clustermass.model.inference import head_predict, stage2_features
from clustermass.model.networks import N_AUX, BandClassifier, MassHead, Trunk
from clustermass.model.population import PopulationCalibration
from clustermass.model.preprocess import normalise
from clustermass.model.trainconfig import TrainConfig

KINDS = ("band-classifier", "cnn", "hybrid", "richness", "oracle-cnn", "oracle-hybrid")
WEIGHTS_FORMAT = 1


@dataclass(frozen=True)
class ModelRecord:
    """One `models` row as plain data."""

    id: int
    name: str
    kind: str
    created: datetime | None
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    git_commit: str | None = None
    weights_path: str | None = None
    weights_sha256: str | None = None

    @property
    def grid(self) -> CutoutGrid:
        """The cutout grid the model was trained on."""
        return CutoutGrid(**self.config.get("grid", {}))

    @property
    def train_config(self) -> TrainConfig:
        """The training config the model was trained with (config 'train'; keys added to the training
        configs since then take the quick config's values)."""
        if "train" not in self.config:
            raise ModelError(f"model {self.name!r} ({self.kind}) has no stored training config")
        return TrainConfig.from_dict(self.config["train"], f"model {self.name!r}: stored training config")

    def summary(self) -> dict[str, Any]:
        """Short plain-data view for listings (no per-cluster arrays)."""
        m = self.metrics
        return {
            "id": self.id, "name": self.name, "kind": self.kind, "created": self.created,
            "mae": m.get("cv", {}).get("mae"), "band_accuracy": m.get("band_accuracy"),
            "n_labels": self.training.get("n_labels"), "n_clusters": self.training.get("n_clusters"),
            "git_commit": self.git_commit,
        }


def git_commit() -> str | None:
    """The git commit of the code (HEAD of the repository holding this package), or None."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _to_record(row: Model) -> ModelRecord:
    return ModelRecord(
        id=row.id, name=row.name, kind=row.kind, created=row.created, config=row.config or {},
        metrics=row.metrics or {}, training=row.training or {}, git_commit=row.git_commit,
        weights_path=row.weights_path, weights_sha256=row.weights_sha256,
    )


def save_model(
    engine: Engine,
    settings: Settings,
    *,
    name: str,
    kind: str,
    config: dict[str, Any],
    metrics: dict[str, Any],
    training: dict[str, Any],
    weights: dict[str, Any] | None = None,
) -> ModelRecord:
    """Write the weights (torch.save of plain state dicts, atomically) and insert the `models` row.

    Raises ModelError if a model of that name exists (names are unique).
    """
    if kind not in KINDS:
        raise ModelError(f"unknown model kind {kind!r}; expected one of {', '.join(KINDS)}")
    if find_model(engine, name) is not None:
        raise ModelError(f"a model named {name!r} already exists; choose another name or use it")
    rel, sha = None, None
    if weights is not None:
        settings.model_dir.mkdir(parents=True, exist_ok=True)
        path = settings.model_dir / f"{name}.pt"
        buf = io.BytesIO()
        torch.save({"format": WEIGHTS_FORMAT, "kind": kind, **weights}, buf)
        atomic_write(path, buf.getvalue())
        rel, sha = path.name, _sha256(path)
    with engine.begin() as conn:
        new_id = conn.execute(
            insert(Model).values(
                name=name, kind=kind, config=config, metrics=metrics, training=training,
                git_commit=git_commit(), weights_path=rel, weights_sha256=sha,
            ).returning(Model.id)
        ).scalar_one()
    return get_model(engine, new_id)


def replace_record(engine: Engine, name: str, *, config: dict[str, Any], metrics: dict[str, Any],
                   training: dict[str, Any]) -> ModelRecord:
    """Rewrite the config, metrics and training record of a model without weights (an oracle's out-of-fold
    predictions), so that rerunning what registered it under newer code leaves no stale numbers behind."""
    rec = get_model(engine, name)
    if rec.weights_path is not None:
        raise ModelError(f"model {name!r} has weights; register a new model instead of replacing its record")
    with engine.begin() as conn:
        conn.execute(update(Model).where(Model.name == name).values(
            config=config, metrics=metrics, training=training, git_commit=git_commit()))
    return get_model(engine, name)


def find_model(engine: Engine, name: str) -> ModelRecord | None:
    """The model of that exact name, or None."""
    with Session(engine) as session:
        row = session.scalars(select(Model).where(Model.name == name)).first()
        return _to_record(row) if row is not None else None


def list_models(engine: Engine, kind: str | None = None) -> list[ModelRecord]:
    """All registered models (optionally of one kind), oldest first."""
    stmt = select(Model).order_by(Model.id)
    if kind is not None:
        stmt = stmt.where(Model.kind == kind)
    with Session(engine) as session:
        return [_to_record(r) for r in session.scalars(stmt).all()]


def get_model(engine: Engine, ref: int | str) -> ModelRecord:
    """Resolve a model reference: an id, an exact name, or a kind (= the newest model of that kind)."""
    with Session(engine) as session:
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
            row = session.scalars(select(Model).where(Model.id == int(ref))).first()
        else:
            row = session.scalars(select(Model).where(Model.name == ref)).first()
            if row is None and ref in KINDS:
                row = session.scalars(select(Model).where(Model.kind == ref).order_by(Model.id.desc()).limit(1)).first()
        record = _to_record(row) if row is not None else None
    if record is None:
        known = ", ".join(f"{m.id}:{m.name}" for m in list_models(engine)[-10:]) or "none registered"
        raise ModelError(
            f"no model {ref!r} (give an id, a name or a kind such as 'hybrid'); known: {known}. "
            "Train one with `cmcat train` or list them with `cmcat models list`."
        )
    return record


def weights_file(settings: Settings, record: ModelRecord) -> Path:
    """Absolute path of a model's weights file (relative paths are under settings.model_dir)."""
    if not record.weights_path:
        raise ModelError(f"model {record.name!r} (id {record.id}) has no weights file")
    p = Path(record.weights_path)
    return p if p.is_absolute() else settings.model_dir / p


def load_weights(settings: Settings, record: ModelRecord) -> dict[str, Any]:
    """Read a model's weights after checking the file's sha256 against the registry."""
    path = weights_file(settings, record)
    if not path.is_file():
        raise ModelError(
            f"weights of model {record.name!r} (id {record.id}) missing at {path}; "
            "check the data dir (--data-dir / CMCAT_DATA_DIR) or retrain"
        )
    sha = _sha256(path)
    if sha != record.weights_sha256:
        raise ModelError(
            f"weights of model {record.name!r} (id {record.id}) at {path} fail the checksum "
            f"(sha256 {sha[:12]}... != registered {str(record.weights_sha256)[:12]}...): the file changed or is "
            "corrupt; restore it or retrain the model"
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("format") != WEIGHTS_FORMAT:
        raise ModelError(f"weights file {path} has unknown format {state.get('format')!r}")
    return state


def build_trunk(arch: dict[str, Any], state: dict[str, Any] | None = None) -> Trunk:
    """A Trunk from its architecture config (width, blocks, pooling), optionally with weights loaded."""
    trunk = Trunk(width=int(arch["width"]), blocks=tuple(arch["blocks"]), pooling=tuple(arch.get("pooling", ("mean", "max"))))
    if state is not None:
        trunk.load_state_dict(state)
    return trunk


def build_head(arch: dict[str, Any], hybrid: bool, state: dict[str, Any] | None = None) -> MassHead:
    """A MassHead from its architecture config (n_in, hidden, dropout), optionally with weights (whose
    aux buffers give the number of catalogue inputs: 2 in heads saved before the z^2 input)."""
    n_aux = int(state["aux_mean"].shape[0]) if state is not None else N_AUX
    head = MassHead(int(arch["n_in"]), hidden=int(arch["hidden"]), dropout=float(arch["dropout"]), hybrid=hybrid,
                    n_aux=n_aux)
    if state is not None:
        head.load_state_dict(state)
    return head


def load_band_classifier(settings: Settings, record: ModelRecord) -> BandClassifier:
    """The stage-1 network of a 'band-classifier' model (its trunk is what stage 2 reuses)."""
    if record.kind != "band-classifier":
        raise ModelError(f"model {record.name!r} is a {record.kind!r} model, not a band classifier")
    state = load_weights(settings, record)
    model = BandClassifier(build_trunk(record.config["arch"]))
    model.load_state_dict(state["classifier"])
    return model.eval()


def held_out_folds(record: ModelRecord) -> dict[int, int]:
    """Cluster id -> the CV fold that held it out, for every cluster whose label trained `record`."""
    oof = record.training.get("oof") or {}
    return {int(c): int(f) for c, f in zip(oof.get("cluster_id", []), oof.get("fold", []))}


class _HeldOut:
    """`folds(ids)` of a predictor with a `held_out` map (cluster id -> fold)."""

    held_out: dict[int, int]

    def folds(self, cluster_ids: np.ndarray) -> np.ndarray:
        """The fold whose model predicts each cluster (it held the cluster out), -1 if not trained on."""
        return np.array([self.held_out.get(int(c), -1) for c in cluster_ids], dtype=np.int64)


@dataclass
class EnsemblePredictor(_HeldOut):
    """CNN or hybrid: mean over the k fold heads (the held-out head for trained-on clusters); error
    from the calibration, dex."""

    model_id: int
    name: str
    grid: CutoutGrid
    trunks: list[Trunk]  # one shared (frozen) trunk, or one per head (fine-tuned)
    heads: list[MassHead]
    softening: float
    tta: bool
    calibration: Calibration
    held_out: dict[int, int] = field(default_factory=dict)
    population: PopulationCalibration | None = None
    device: str = "cpu"
    batch_size: int = 64
    needs_images: bool = True
    photometry: tuple[str, ...] = ()  # photometric feature sets the heads read after the trunk's
    bcgfit: BcgFit | None = None  # photometry 'bcgfit': the fine grid and red sequence of the BCG fits

    @property
    def fine_grid(self) -> CutoutGrid | None:
        return None if self.bcgfit is None else self.bcgfit.grid

    def predict(self, images: np.ndarray | None, clusters: pd.DataFrame,
                fine: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        if images is None:
            raise ModelError(f"model {self.name!r} needs ugriz cutouts; got none")
        if self.bcgfit is not None and (fine is None or len(fine) != len(images)):
            raise ModelError(f"model {self.name!r} reads BCG fits: it needs each cluster's cutout on {self.bcgfit.grid}")
        if images.shape[1:] != (5, self.grid.size, self.grid.size):
            raise ModelError(
                f"model {self.name!r} expects cutouts of shape (N, 5, {self.grid.size}, {self.grid.size}); "
                f"got {images.shape}: fetch cutouts on the model's grid"
            )
        x = normalise(images, self.softening)
        lam, z = clusters["richness"].to_numpy(), clusters["z"].to_numpy()
        bcg = None if self.bcgfit is None else self.bcgfit.features(fine, z)
        feats = [stage2_features(t, images, x, self.tta, self.photometry, self.grid, self.batch_size, self.device, bcg)
                 for t in self.trunks]
        aux = aux_inputs(lam, z)
        preds = np.stack([head_predict(h, feats[i % len(feats)], aux) for i, h in enumerate(self.heads)])
        mass, fold = preds.mean(0), self.folds(clusters["id"].to_numpy())
        held = np.flatnonzero(fold >= 0)
        mass[held] = preds[fold[held], held]
        return mass, self.calibration.sigma(lam, z)


@dataclass
class RichnessPredictor(_HeldOut):
    """The richness baseline as a model: log10 M500 from (lambda, z) only (for trained-on clusters the
    relation fitted without their fold); error from the calibration."""

    model_id: int
    name: str
    grid: CutoutGrid
    coef: np.ndarray
    calibration: Calibration
    fold_coef: list[np.ndarray] = field(default_factory=list)
    held_out: dict[int, int] = field(default_factory=dict)
    population: PopulationCalibration | None = None
    needs_images: bool = False
    fine_grid: CutoutGrid | None = None

    def predict(self, images: np.ndarray | None, clusters: pd.DataFrame,
                fine: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        from clustermass.model import baseline

        lam, z = clusters["richness"].to_numpy(), clusters["z"].to_numpy()
        pred = np.asarray(baseline.predict(self.coef, lam, z))
        fold = self.folds(clusters["id"].to_numpy())
        for f in np.unique(fold[fold >= 0]):
            rows = fold == f
            pred[rows] = baseline.predict(self.fold_coef[f], lam[rows], z[rows])
        return pred, self.calibration.sigma(lam, z)


def load_predictor(engine: Engine, settings: Settings, ref: int | str, device: str = "cpu") -> MassPredictor:
    """A ready-to-use MassPredictor for model `ref` (id, name or kind = newest of that kind).

    Models registered without a calibration get their CV scatter as a constant error, and a
    richness model without per-fold relations predicts every cluster with the full one.
    Raises ModelError for unknown models, kinds that do not predict masses, missing weights
    or a checksum mismatch.
    """
    record = get_model(engine, ref)
    cal = record.metrics.get("calibration")
    cal = Calibration.from_dict(cal) if cal else Calibration.constant(float(record.metrics.get("cv_scatter", 0.0)))
    pop = PopulationCalibration.from_dict(p) if (p := record.metrics.get("population")) else None
    if record.kind == "richness":
        fold_coef = [np.asarray(c) for c in record.config.get("fold_coef", [])]
        return RichnessPredictor(record.id, record.name, record.grid, np.asarray(record.config["coef"]), cal,
                                 fold_coef, held_out_folds(record) if fold_coef else {}, pop)
    if record.kind not in ("cnn", "hybrid"):
        raise ModelError(f"model {record.name!r} is a {record.kind!r} model and does not predict masses")
    state = load_weights(settings, record)
    arch = record.config["arch"]
    trunks = [build_trunk(arch, t).eval().to(device) for t in state.get("fold_trunks") or [state["trunk"]]]
    heads = [build_head(arch, record.kind == "hybrid", h).eval() for h in state["heads"]]
    return EnsemblePredictor(
        model_id=record.id, name=record.name, grid=record.grid, trunks=trunks, heads=heads,
        softening=float(record.config.get("softening", 3.0)), tta=bool(record.config.get("tta", True)),
        calibration=cal, held_out=held_out_folds(record), population=pop, device=device,
        photometry=tuple(arch.get("photometry", ())), bcgfit=BcgFit.from_dict(arch["bcgfit"]) if "bcgfit" in arch else None,
    )
