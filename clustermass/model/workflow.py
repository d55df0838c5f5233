"""Train, register and evaluate: the steps `cmcat train/evaluate/learning-curve` run.

Orchestration only: data from `data.py`, compute from `train.py`/`evaluate.py`, storage in
`registry.py`. Idempotent: a model's name is derived from its config, seed and training data,
so rerunning the same command finds the registered model instead of training it again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from clustermass.config import Settings
from clustermass.db import queries
from clustermass.errors import ConfigError, ModelError
from clustermass.images.base import BANDS, CutoutGrid
from clustermass.model import baseline, registry
from clustermass.model.bcgfit import BcgFit
from clustermass.model.calibration import cross_fitted_sigma, fit_calibration, label_errors
from clustermass.model.data import ImagesFn, labelled_clusters, sample_clusters, usable
from clustermass.model.datasets import aux_inputs
from clustermass.model.evaluate import ORACLE_OF, comparison_table, unlabelled_table
from clustermass.model.inference import stage2_features
from clustermass.model.metrics import mass_metrics
from clustermass.model.networks import POOLINGS, Trunk
from clustermass.model.photometry import PHOTOMETRY
from clustermass.model.population import fit_population, population_masses
from clustermass.model.preprocess import normalise
from clustermass.model.registry import ModelRecord
from clustermass.model.reference import reference_band_accuracy
from clustermass.model.train import FineTune, ProgressFn, cross_validate, holdout_split, train_stage1
from clustermass.model.trainconfig import GridConfig, Stage2Config, TrainConfig
from clustermass.plots.model import plot_confusion, plot_learning_curves, plot_mae_vs_n, plot_pred_vs_true, plot_residuals

MASS_KINDS = ("cnn", "hybrid", "richness")


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:10]


def grid_of(grid: GridConfig) -> CutoutGrid:
    """The cutout grid of a training config's [grid]."""
    return CutoutGrid(size=grid.size, aperture_mpc=grid.aperture_mpc)


def _images(images_fn: ImagesFn, clusters: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Cutouts (nanomaggies) of the usable clusters and the mask of usable rows."""
    raw = images_fn(clusters)
    ok = usable(raw)
    if not ok.any():
        raise ModelError(f"none of the {len(clusters)} clusters has usable cutouts (>= 50% covered in every band)")
    return raw[ok], ok


def _source_key(source: str, provenance: dict | None) -> Any:
    """What of the image source enters a model's name: the source, and the mock's provenance if any."""
    return source if provenance is None else [source, provenance]


def train_band_classifier(
    engine: Engine, settings: Settings, cfg: TrainConfig, seed: int, images_fn: ImagesFn, source: str,
    device: str = "cpu", on_progress: ProgressFn | None = None, provenance: dict | None = None,
) -> tuple[ModelRecord, bool]:
    """Stage 1 on a seeded sample of all clusters; returns (model, trained now?).

    provenance: what made the cutouts (the mock's version and universe parameters), recorded in
    the model's `training` as `mock`.
    """
    s1, plain = cfg.stage1, cfg.as_dict()
    clusters = sample_clusters(engine, s1.n_clusters, seed)
    name = f"band-classifier-{cfg.name}-s{seed}-{_digest(plain, _source_key(source, provenance), clusters['id'].tolist())}"
    if (found := registry.find_model(engine, name)) is not None:
        return found, False
    raw, ok = _images(images_fn, clusters)
    images = normalise(raw, cfg.softening)
    del raw
    res = train_stage1(images, s1, seed, device, on_progress)
    reference = reference_band_accuracy(images, *holdout_split(len(images), s1.holdout_frac, seed), seed)
    arch = {"width": s1.width, "blocks": list(s1.blocks)}
    record = registry.save_model(
        engine, settings, name=name, kind="band-classifier",
        config={"arch": arch, "grid": grid_of(cfg.grid).as_dict(), "softening": cfg.softening, "train": plain, "seed": seed},
        metrics={"band_accuracy": res.accuracy, "reference_band_accuracy": reference, "confusion": res.confusion.tolist(),
                 "history": res.history},
        training={"source": source, "n_clusters": int(ok.sum()), "n_unusable": int((~ok).sum()),
                  "n_train": res.n_train, "n_holdout": res.n_holdout,
                  **({"mock": provenance} if provenance is not None else {})},
        weights={"classifier": res.model.state_dict(), "trunk": res.model.trunk.state_dict()},
    )
    return record, True


def stage2_arch(trunk_record: ModelRecord, s2: Stage2Config) -> dict[str, Any]:
    """Architecture of the stage-2 models: the stage-1 trunk pooled as stage 2 asks, and the head."""
    linear = s2.head == "ridge"
    return {**trunk_record.config["arch"], "pooling": list(s2.pooling), "hidden": 0 if linear else s2.hidden,
            "dropout": 0.0 if linear else float(s2.dropout),
            **({"photometry": list(s2.photometry)} if s2.photometry else {})}


def check_stage2(s2: Stage2Config) -> None:
    """ConfigError unless stage2.pooling and stage2.photometry name known choices, photometry on a frozen trunk:
    checked before any training, so a typo does not surface after stage 1."""
    for key, names, known in (("pooling", s2.pooling, POOLINGS), ("photometry", s2.photometry, PHOTOMETRY)):
        for name in names:
            if name not in known:
                raise ConfigError(f"training config: stage2.{key} has {name!r}; expected any of {', '.join(known)}")
    if s2.photometry and s2.finetune_epochs:
        raise ConfigError("training config: stage2.photometry needs a frozen trunk: set stage2.finetune_epochs = 0 "
                          "or stage2.photometry = []")


@dataclass
class LabelledData:
    """Labelled clusters with usable images, their stage-2 features and catalogue inputs.

    images and trunk (the normalised cutouts and the stage-1 trunk) are what fine-tuning needs.
    """

    clusters: pd.DataFrame
    feats: np.ndarray
    aux: np.ndarray
    n_unusable: int
    images: np.ndarray | None = None
    trunk: Trunk | None = None
    bcgfit: BcgFit | None = None

    def subset(self, rows: np.ndarray) -> LabelledData:
        """The rows `rows` (indices) only."""
        return LabelledData(self.clusters.iloc[rows].reset_index(drop=True), self.feats[rows], self.aux[rows], 0,
                            None if self.images is None else self.images[rows], self.trunk, self.bcgfit)


def labelled_features(
    engine: Engine, settings: Settings, trunk_record: ModelRecord, cfg: TrainConfig, images_fn: ImagesFn,
    device: str = "cpu", fine_fn: ImagesFn | None = None,
) -> LabelledData:
    """Labelled clusters, their stage-2 features (frozen trunk, TTA-averaged; photometry if the config
    asks) and (log10 lambda, z) inputs. Photometry `bcgfit` needs `fine_fn`, their cutouts on
    `bcgfit.FINE_GRID`, and fits the red sequence on these clusters (kept as `bcgfit`)."""
    check_stage2(cfg.stage2)
    clusters = labelled_clusters(engine)
    raw, ok = _images(images_fn, clusters)
    bcgfit = bcg = None
    if "bcgfit" in cfg.stage2.photometry:
        if fine_fn is None:
            raise ModelError("photometry 'bcgfit' needs the clusters' fine cutouts (bcgfit.FINE_GRID)")
        usable_rows = np.flatnonzero(ok)  # fine cutouts only where the model's grid is usable (~1.8 MB each)
        fine, fine_ok = _images(fine_fn, clusters.iloc[usable_rows])
        raw, ok = raw[fine_ok], np.isin(np.arange(len(clusters)), usable_rows[fine_ok])
        bcgfit, bcg = BcgFit.learn(fine, clusters["z"].to_numpy(dtype=float)[ok])
    images = normalise(raw, cfg.softening)
    trunk = registry.build_trunk(stage2_arch(trunk_record, cfg.stage2), registry.load_weights(settings, trunk_record)["trunk"])
    feats = stage2_features(trunk, raw, images, cfg.tta, cfg.stage2.photometry, grid_of(cfg.grid), device=device, bcg=bcg)
    clusters = clusters[ok].reset_index(drop=True)
    return LabelledData(clusters, feats, aux_inputs(clusters["richness"].to_numpy(), clusters["z"].to_numpy()),
                        int((~ok).sum()), images, trunk, bcgfit)


def cv_predictions(
    data: LabelledData, s2: Stage2Config, kind: str, seed: int, on_progress: ProgressFn | None = None,
    device: str = "cpu", tta: bool = True,
):
    """Out-of-fold predictions (N,), folds (N,) and the fitted state of one model kind (richness: the
    relation fitted on all rows, 'coef', and on each fold's training rows, 'fold_coef').

    Fine-tuning (s2.finetune_epochs > 0; cross_validate says so if data has no images or
    trunk) uses data.images and data.trunk on `device`, with test-time augmentation `tta` for
    the out-of-fold features.
    """
    y = data.clusters["log10_m500"].to_numpy(dtype=np.float64)
    ids = data.clusters["id"].to_numpy()
    if kind == "richness":
        lam, z = data.clusters["richness"].to_numpy(), data.clusters["z"].to_numpy()
        cv = baseline.cross_validate(ids, lam, z, y, s2.folds, seed)
        fitted = {"coef": baseline.fit(lam, z, y).tolist(), "fold_coef": [f["coef"] for f in cv["folds"]]}
        return cv["predicted"], cv["fold"], fitted
    tune = None if data.images is None or data.trunk is None else FineTune(data.images, data.trunk, tta, device)
    res = cross_validate(data.feats, data.aux, y, ids, s2, seed, hybrid=kind == "hybrid", on_progress=on_progress,
                         finetune=tune)
    return res.oof, res.fold, res


def train_mass_models(
    engine: Engine, settings: Settings, cfg: TrainConfig, seed: int, images_fn: ImagesFn, source: str,
    trunk_ref: int | str = "band-classifier", device: str = "cpu", on_progress: ProgressFn | None = None,
    provenance: dict | None = None, fine_fn: ImagesFn | None = None,
) -> list[tuple[ModelRecord, bool]]:
    """Stage 2: k-fold CNN / hybrid heads on the frozen trunk and the richness baseline, registered.

    All kinds share the folds (fold_of(cluster_id, k, seed)) and a training `group` name, which
    `evaluate_model` uses to put them side by side. provenance: as for train_band_classifier; fine_fn:
    the cutouts on bcgfit.FINE_GRID, for photometry `bcgfit`. Returns [(model, trained now?)].
    """
    s2, plain = cfg.stage2, cfg.as_dict()
    kinds = [k for k in s2.kinds if k in MASS_KINDS]
    trunk_record = registry.get_model(engine, trunk_ref)
    data = labelled_features(engine, settings, trunk_record, cfg, images_fn, device, fine_fn)
    if len(data.clusters) < 2 * s2.folds:
        raise ModelError(f"only {len(data.clusters)} labelled clusters with usable cutouts: too few for {s2.folds} folds")
    group = f"{cfg.name}-s{seed}-{_digest(plain, _source_key(source, provenance), trunk_record.name, data.clusters[['id', 'log10_m500']].values.tolist(), baseline.TERMS)}"
    y = data.clusters["log10_m500"].to_numpy(dtype=np.float64)
    tau = label_errors(data.clusters["log10_m500_err"].to_numpy(dtype=np.float64))
    lam, z = data.clusters["richness"].to_numpy(), data.clusters["z"].to_numpy()
    training = {
        "group": group, "source": source, "trunk_model": trunk_record.name, "n_labels": len(y),
        "n_unusable": data.n_unusable, "label_sources": data.clusters["source"].value_counts().to_dict(),
        **({"mock": provenance} if provenance is not None else {}),
    }
    arch = {**stage2_arch(trunk_record, s2), "n_in": int(data.feats.shape[1]),
            **({"bcgfit": data.bcgfit.as_dict()} if data.bcgfit is not None else {})}
    out = []
    for kind in kinds:
        name = f"{kind}-{group}"
        if (found := registry.find_model(engine, name)) is not None:
            out.append((found, False))
            continue
        oof, fold, fitted = cv_predictions(data, s2, kind, seed, on_progress, device, cfg.tta)
        metrics = {
            "cv": mass_metrics(oof, y),
            "folds": [mass_metrics(oof[fold == f], y[fold == f]) for f in range(s2.folds)],
            "cv_scatter": float(np.std(oof - y)),
            "calibration": fit_calibration(oof - y, tau, lam, z).as_dict(),
            "population": None if (pop := fit_population(oof, y, np.full(len(y), s2.population_label_error), z)) is None
            else pop.as_dict(),
        }
        train_info = {**training, "oof": {"cluster_id": data.clusters["id"].tolist(), "pred": oof.tolist(),
                                          "fold": fold.tolist()}}
        config = {"arch": arch, "grid": trunk_record.config["grid"], "softening": cfg.softening, "tta": cfg.tta,
                  "train": plain, "seed": seed}
        if kind == "richness":
            record = registry.save_model(engine, settings, name=name, kind=kind, config={**config, **fitted},
                                         metrics=metrics, training=train_info)
        else:
            metrics["history"] = [f.history for f in fitted.fits]
            if s2.head == "ridge":  # each fold head's penalty, chosen by its inner CV
                metrics["ridge_alpha"] = [f.penalty for f in fitted.fits]
            weights = {"trunk": registry.load_weights(settings, trunk_record)["trunk"],
                       "heads": [f.head.state_dict() for f in fitted.fits]}
            if fitted.fits[0].trunk is not None:  # fine-tuned: each fold head has its own trunk
                weights["fold_trunks"] = [f.trunk for f in fitted.fits]
            record = registry.save_model(engine, settings, name=name, kind=kind, config=config, metrics=metrics,
                                         training=train_info, weights=weights)
        out.append((record, True))
    return out


def group_models(engine: Engine, record: ModelRecord) -> list[ModelRecord]:
    """The models trained together with `record` (same training group), in kind order."""
    group = record.training.get("group")
    if group is None:
        return [record]
    same = [m for m in registry.list_models(engine) if m.training.get("group") == group]
    return sorted(same, key=lambda m: MASS_KINDS.index(m.kind) if m.kind in MASS_KINDS else 99)


def oracle_models(engine: Engine, models: list[ModelRecord], cluster_ids: list[int]) -> list[ModelRecord]:
    """The oracles to measure `models`' gain against, beyond those in their group: for each oracle kind
    (ORACLE_OF) not among them, the newest registered one whose out-of-fold clusters include every
    cluster of `cluster_ids` (oracles are registered by `cmcat mock oracle`; real data have none)."""
    have = {m.kind for m in models}
    found = []
    for kind in ORACLE_OF.values():
        if kind in have:
            continue
        covering = [m for m in registry.list_models(engine, kind)
                    if set(cluster_ids) <= set(m.training.get("oof", {}).get("cluster_id", []))]
        found += covering[-1:]
    return found


def evaluate_model(
    engine: Engine, settings: Settings, ref: int | str, out_dir: Path, truth: pd.DataFrame | None = None
) -> dict[str, Any]:
    """Side-by-side table (richness / CNN / hybrid, same folds) and PNG plots for model `ref`.

    Coverage is that of each cluster's error from the calibration fitted on the other folds'
    residuals (calibration.cross_fitted_sigma), so that it is not scored on its own fit. The table's
    ratio and gain columns pair each model with the richness model and the oracle of its group, or
    the oracle found by `oracle_models`.

    truth: optional DataFrame (cluster_id, log10_m500_true) of true masses (the mock's truth table).
    Returns {"table": DataFrame, "plots": [paths], "models": [names]}.
    """
    record = registry.get_model(engine, ref)
    if (record.kind not in MASS_KINDS and not record.kind.startswith("oracle-")) or "oof" not in record.training:
        raise ModelError(f"model {record.name!r} ({record.kind}) has no cross-validated predictions to evaluate")
    oof = pd.DataFrame(record.training["oof"])
    models = group_models(engine, record)
    models += oracle_models(engine, models, oof["cluster_id"].tolist())
    labels = labelled_clusters(engine).set_index("id").loc[oof["cluster_id"]].reset_index()
    preds = {m.kind: pd.Series(m.training["oof"]["pred"], index=m.training["oof"]["cluster_id"]).reindex(oof["cluster_id"]).to_numpy()
             for m in models}
    true_mass = None
    if truth is not None:
        true_mass = truth.set_index("cluster_id")["log10_m500_true"].reindex(oof["cluster_id"]).to_numpy(dtype=float)
    y = labels["log10_m500"].to_numpy(dtype=float)
    fold = oof["fold"].to_numpy()
    tau = label_errors(labels["log10_m500_err"].to_numpy(dtype=float))
    lam, z = labels["richness"].to_numpy(dtype=float), labels["z"].to_numpy(dtype=float)
    errors = {k: cross_fitted_sigma(p - y, tau, lam, z, fold) for k, p in preds.items()}
    table = comparison_table(labels, preds, fold, true_mass, errors)
    if truth is not None:
        table = pd.concat([table, unlabelled_table(unlabelled_predictions(engine, settings, models, truth))],
                          ignore_index=True)
    out_dir = Path(out_dir)
    stem = record.training["group"]
    plots = [
        plot_pred_vs_true(y, preds, _maes(preds, y), out_dir / f"{stem}-pred-vs-measured.png"),
        plot_residuals(y, preds, labels["z"].to_numpy(), labels["richness"].to_numpy(), out_dir / f"{stem}-residuals.png"),
    ]
    if true_mass is not None and np.isfinite(true_mass).any():
        plots.append(plot_pred_vs_true(true_mass, preds, _maes(preds, true_mass), out_dir / f"{stem}-pred-vs-true.png",
                                       label="true"))
    histories = {f"{m.kind} fold {i}": h for m in models for i, h in enumerate(m.metrics.get("history", []))}
    trunk_name = record.training.get("trunk_model")
    trunk = registry.find_model(engine, trunk_name) if trunk_name else None
    if trunk is not None:
        histories["stage 1"] = trunk.metrics.get("history", [])
        plots.append(plot_confusion(np.asarray(trunk.metrics["confusion"]), out_dir / f"{stem}-band-confusion.png", BANDS))
    plots.append(plot_learning_curves(histories, out_dir / f"{stem}-training-curves.png"))
    return {"table": table, "plots": plots, "models": [m.name for m in models],
            "band_accuracy": trunk.metrics.get("band_accuracy") if trunk else None,
            "reference_band_accuracy": trunk.metrics.get("reference_band_accuracy") if trunk else None}


def unlabelled_predictions(
    engine: Engine, settings: Settings, models: list[ModelRecord], truth: pd.DataFrame
) -> dict[str, pd.DataFrame]:
    """Masses of the unlabelled clusters with their true masses (log10_m500_true): per model kind its
    log10_m500 and log10_m500_err, and per '<kind> population' its population_log10_m500 and error
    (model.population; none, no entry). The richness model's computed here, the image models' read from
    `predictions` (those `cmcat predict` wrote; none, no entry)."""
    with engine.connect() as conn:
        clusters = queries.unlabelled_clusters(conn)
        stored = {m.kind: queries.stored_predictions(conn, m.id) for m in models if m.kind in ("cnn", "hybrid")}
    true = truth.set_index("cluster_id")["log10_m500_true"]
    out = {}
    for m in models:
        if m.kind == "richness":
            predictor = registry.load_predictor(engine, settings, m.id)
            mass, err = predictor.predict(None, clusters)
            pop, pop_err = population_masses(predictor.population, mass, clusters["z"].to_numpy(dtype=float))
            df = pd.DataFrame({"cluster_id": clusters["id"], "log10_m500": mass, "log10_m500_err": err,
                               "population_log10_m500": pop, "population_log10_m500_err": pop_err})
        elif not stored.get(m.kind, pd.DataFrame()).empty:
            df = stored[m.kind][stored[m.kind]["cluster_id"].isin(clusters["id"])]
        else:
            continue
        df = df.assign(log10_m500_true=true.reindex(df["cluster_id"]).to_numpy(dtype=float))
        df = df[np.isfinite(df["log10_m500_true"])]
        if len(df):
            out[m.kind] = df[["log10_m500", "log10_m500_err", "log10_m500_true"]]
            pop = df[["population_log10_m500", "population_log10_m500_err", "log10_m500_true"]].dropna()
            if len(pop):
                out[f"{m.kind} population"] = pop.set_axis(["log10_m500", "log10_m500_err", "log10_m500_true"], axis=1)
    return out


def learning_curve(
    data: LabelledData, s2: Stage2Config, sizes: list[int], seed: int, on_progress: ProgressFn | None = None,
    device: str = "cpu", tta: bool = True,
) -> pd.DataFrame:
    """Cross-validated MAE (dex) vs number of labelled clusters for richness, CNN and hybrid.

    Each size n takes the first n clusters of one seeded permutation (nested subsets).
    """
    order = np.random.default_rng(seed).permutation(len(data.clusters))
    rows = []
    for i, n in enumerate(sorted(s for s in sizes if 2 * s2.folds <= s <= len(order))):
        part = data.subset(np.sort(order[:n]))
        y = part.clusters["log10_m500"].to_numpy(dtype=float)
        row = {"n_labels": n}
        for kind in MASS_KINDS:
            oof, _, _ = cv_predictions(part, s2, kind, seed, device=device, tta=tta)
            row[kind] = mass_metrics(oof, y)["mae"]
        rows.append(row)
        if on_progress:
            on_progress("learning curve", i + 1, len(sizes), row)
    return pd.DataFrame(rows, columns=["n_labels", *MASS_KINDS])


def save_learning_curve(curve: pd.DataFrame, path: Path) -> Path:
    """PNG of the learning curve table."""
    return plot_mae_vs_n(curve, Path(path))


def _maes(predictions: dict[str, np.ndarray], reference: np.ndarray) -> dict[str, float]:
    """Each model's mean absolute error (dex) against `reference`, for the figures' legends."""
    return {name: mass_metrics(pred, reference)["mae"] for name, pred in predictions.items()}
