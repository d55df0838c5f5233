"""Training loops on plain arrays (no database, no image source): stage 1 and stage-2 k-fold CV.

Determinism: every function takes a seed; torch and numpy generators are seeded from it, so
the same arrays, config and seed give the same weights and metrics on CPU.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from clustermass.errors import ConfigError
from clustermass.model.datasets import augment, band_samples
from clustermass.model.folds import fold_of
from clustermass.model.inference import classify_bands, extract_features, head_predict
from clustermass.model.networks import N_BANDS, BandClassifier, MassHead, MassRegressor, Trunk
from clustermass.model.photometry import n_unpenalised
from clustermass.model.trainconfig import Stage1Config, Stage2Config

#: on_progress(stage, step, total, info) callback for progress bars (info: plain dict).
ProgressFn = Callable[[str, int, int, dict[str, Any]], None]


def _seed_all(seed: int) -> np.random.Generator:
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


@dataclass
class Stage1Result:
    """Trained band classifier, its learning curve and held-out scores."""

    model: BandClassifier
    history: list[dict[str, float]]
    accuracy: float  # held-out band accuracy (fraction)
    confusion: np.ndarray  # (5, 5) counts, rows = true band, columns = predicted
    n_train: int  # clusters used for training
    n_holdout: int  # clusters held out


def holdout_split(n: int, frac: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of n items into (train indices, held-out indices)."""
    perm = np.random.default_rng(seed).permutation(n)
    n_hold = max(1, int(round(frac * n))) if n > 1 else 0
    return np.sort(perm[n_hold:]), np.sort(perm[:n_hold])


def train_stage1(
    images: np.ndarray, cfg: Stage1Config, seed: int = 0, device: str = "cpu", on_progress: ProgressFn | None = None
) -> Stage1Result:
    """Train the band classifier on normalised (N, 5, H, W) cutouts; hold out clusters, not images."""
    rng = _seed_all(seed)
    train_idx, hold_idx = holdout_split(len(images), cfg.holdout_frac, seed)
    model = BandClassifier(Trunk(cfg.width, cfg.blocks)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    clus, band = band_samples(len(train_idx))
    clus = train_idx[clus]
    bs, epochs = cfg.batch_size, cfg.epochs
    steps = epochs * int(np.ceil(len(clus) / bs))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(steps, 1))
    loss_fn = nn.CrossEntropyLoss()
    hold_x, hold_y = _single_band(images, hold_idx)
    history, step = [], 0
    for epoch in range(epochs):
        model.train()
        order = rng.permutation(len(clus))
        total, n_seen = 0.0, 0
        for start in range(0, len(order), bs):
            sel = order[start:start + bs]
            x = torch.from_numpy(images[clus[sel], band[sel]][:, None])
            x = augment(x, rng, cfg.max_shift).to(device)
            y = torch.from_numpy(band[sel]).to(device)
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(sel)
            n_seen += len(sel)
            step += 1
            if on_progress:
                on_progress("stage 1", step, steps, {"epoch": epoch + 1, "loss": total / n_seen})
        acc = float(np.mean(classify_bands(model, hold_x, device=device) == hold_y)) if len(hold_y) else float("nan")
        history.append({"epoch": epoch + 1, "train_loss": total / max(n_seen, 1), "holdout_accuracy": acc})
    pred = classify_bands(model, hold_x, device=device)
    model = model.cpu().eval()
    return Stage1Result(model, history, float(np.mean(pred == hold_y)) if len(hold_y) else float("nan"),
                        confusion_matrix(hold_y, pred), len(train_idx), len(hold_idx))


def _single_band(images: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All single-band images (M, 1, H, W) of the clusters `idx` and their band labels (M,)."""
    clus, band = band_samples(len(idx))
    return images[idx[clus], band][:, None], band


def confusion_matrix(true: np.ndarray, pred: np.ndarray, n: int = N_BANDS) -> np.ndarray:
    """(n, n) counts: rows are the true class, columns the predicted one."""
    cm = np.zeros((n, n), dtype=np.int64)
    np.add.at(cm, (np.asarray(true, int), np.asarray(pred, int)), 1)
    return cm


@dataclass
class HeadFit:
    """A trained stage-2 head and how it was chosen.

    MLP heads: the learning curve (train/validation MAE per epoch, dex) and the early-stopping
    epoch. Linear (ridge) heads: no epochs; `penalty` is the ridge alpha picked by inner CV.
    Fine-tuned fits: `trunk` is the state dict of this fold's own trunk, `history` and
    `best_epoch` are those of the fine-tuning (epoch 0 = the frozen-trunk start).
    """

    head: MassHead
    history: list[dict[str, float]]
    best_epoch: int
    penalty: float | None = None
    trunk: dict[str, torch.Tensor] | None = None

    @property
    def info(self) -> dict[str, float]:
        """What was chosen on the inner split, for progress lines."""
        out: dict[str, float] = {} if self.penalty is None else {"ridge_alpha": self.penalty}
        if self.trunk is not None:
            return {**out, "finetune_epoch": self.best_epoch}
        return out or {"best_epoch": self.best_epoch}


#: Stage-2 head types (config key stage2.head).
HEADS = ("mlp", "ridge")
#: Ridge penalties tried by `fit_ridge` (on standardised features, so in units of "rows").
RIDGE_ALPHAS = tuple(float(a) for a in 10.0 ** np.arange(0.0, 4.01, 0.5))


def _ridge_solve(x: np.ndarray, t: np.ndarray, n_penalised: int, alpha: float) -> np.ndarray:
    """Coefficients (p + 1,) of t ~ x @ w + b with alpha * |w[:n_penalised]|^2 (the rest and b free)."""
    d = np.hstack([x, np.ones((len(x), 1))])
    pen = np.zeros(d.shape[1])
    pen[:n_penalised] = alpha
    return np.linalg.solve(d.T @ d + np.diag(pen), d.T @ t)


def fit_ridge(
    feats: np.ndarray, aux: np.ndarray, y: np.ndarray, cfg: Stage2Config, seed: int, hybrid: bool
) -> HeadFit:
    """A linear MassHead (hidden=0) by ridge regression on the standardised features.

    The hybrid's catalogue terms (log10 lambda, x, x^2) and the BCG fit's features (`photometry.n_unpenalised`) are
    not penalised, so the hybrid is the richness relation (and the BCG's) plus a shrunk image correction. alpha is chosen from RIDGE_ALPHAS by the MAE of an inner k-fold
    CV (k = cfg.folds, seeded) over these training rows only; then refitted on all of them.
    """
    head = MassHead(feats.shape[1], hidden=0, hybrid=hybrid)
    f, a, t = torch.from_numpy(feats), torch.from_numpy(aux), torch.from_numpy(y.astype(np.float32))
    head.set_scaling(f, a if hybrid else None, t)
    x = ((f - head.mean) / head.std).double().numpy()
    if hybrid:
        x = np.hstack([x, ((a - head.aux_mean) / head.aux_std).double().numpy()])
    target = (y - float(head.y_mean)) / float(head.y_std)
    p = feats.shape[1] - n_unpenalised(cfg.photometry)
    k = min(cfg.folds, len(y))
    inner = np.random.default_rng(seed).permutation(len(y)) % k
    errors = []
    for alpha in RIDGE_ALPHAS:
        err = 0.0
        for i in range(k):
            w = _ridge_solve(x[inner != i], target[inner != i], p, alpha)
            err += np.abs(x[inner == i] @ w[:-1] + w[-1] - target[inner == i]).sum()
        errors.append(err / len(y))
    best = RIDGE_ALPHAS[int(np.argmin(errors))]
    w = _ridge_solve(x, target, p, best)
    with torch.no_grad():
        head.net.weight.copy_(torch.from_numpy(w[:-1]).float()[None])
        head.net.bias.fill_(float(w[-1]))
    return HeadFit(head.eval(), [], 0, best)


def fit_head(
    feats: np.ndarray, aux: np.ndarray, y: np.ndarray, val: np.ndarray, cfg: Stage2Config, seed: int, hybrid: bool
) -> HeadFit:
    """Fit a MassHead on rows ~val with early stopping on the validation rows `val` (bool mask).

    Uses cfg's hidden, dropout, lr, weight_decay, max_epochs, patience. Full-batch AdamW, L1 loss.
    """
    _seed_all(seed)
    f = torch.from_numpy(feats)
    a = torch.from_numpy(aux)
    t = torch.from_numpy(y.astype(np.float32))
    tr = torch.from_numpy(~val)
    head = MassHead(feats.shape[1], cfg.hidden, cfg.dropout, hybrid)
    head.set_scaling(f[tr], a[tr] if hybrid else None, t[tr])
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    best, best_state, best_epoch, history = np.inf, copy.deepcopy(head.state_dict()), 0, []
    for epoch in range(cfg.max_epochs):
        head.train()
        opt.zero_grad()
        loss = torch.mean(torch.abs(head(f[tr], a[tr]) - t[tr]))
        loss.backward()
        opt.step()
        val_mae = float(np.mean(np.abs(head_predict(head, feats[val], aux[val]) - y[val])))
        history.append({"epoch": epoch + 1, "train_mae": loss.item(), "val_mae": val_mae})
        if val_mae < best - 1e-5:
            best, best_state, best_epoch = val_mae, copy.deepcopy(head.state_dict()), epoch + 1
        elif epoch + 1 - best_epoch >= cfg.patience:
            break
    head.load_state_dict(best_state)
    return HeadFit(head.eval(), history, best_epoch)


#: Clusters (x 5 band images) per fine-tuning step.
FINETUNE_BATCH = 32


@dataclass
class FineTune:
    """What fine-tuning the trunk on the labels needs besides the features: the images and the trunk.

    images: (N, 5, H, W) normalised cutouts, rows aligned with the features and labels.
    """

    images: np.ndarray
    trunk: Trunk
    tta: bool = True
    device: str = "cpu"


def finetune_fold(
    ft: FineTune, start: HeadFit, aux: np.ndarray, y: np.ndarray, val: np.ndarray, cfg: Stage2Config, seed: int
) -> HeadFit:
    """Train a copy of the trunk and the head `start` end to end on the rows ~val (L1 loss, AdamW at
    cfg.finetune_lr, cfg.finetune_epochs epochs of sky augmentations) and keep the epoch with
    the lowest validation MAE on the rows `val`; epoch 0 is the frozen start, so a fine-tune that
    does not help returns it unchanged.

    aux, y, val: rows aligned with ft.images (this fold's training clusters). Batch-norm statistics
    stay those of stage 1 (batches of a few dozen clusters would estimate them badly).
    """
    rng = _seed_all(seed)
    model = MassRegressor(copy.deepcopy(ft.trunk), copy.deepcopy(start.head)).to(ft.device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.finetune_lr, weight_decay=cfg.weight_decay)
    hybrid = start.head.hybrid
    tr, va = np.flatnonzero(~val), np.flatnonzero(val)

    def batches(rows: np.ndarray):
        for i in range(0, len(rows), FINETUNE_BATCH):
            sel = rows[i:i + FINETUNE_BATCH]
            a = torch.from_numpy(aux[sel]).to(ft.device) if hybrid else None
            yield sel, torch.from_numpy(ft.images[sel]), a

    @torch.no_grad()
    def val_mae() -> float:
        model.eval()
        pred = np.concatenate([model(x.to(ft.device), a).cpu().numpy() for _, x, a in batches(va)])
        return float(np.mean(np.abs(pred - y[va])))

    best, best_epoch = val_mae(), 0
    best_state, history = copy.deepcopy(model.state_dict()), [{"epoch": 0, "val_mae": best}]
    for epoch in range(1, cfg.finetune_epochs + 1):
        model.train()
        model.trunk.apply(lambda m: m.eval() if isinstance(m, nn.BatchNorm2d) else None)
        total = 0.0
        for sel, x, a in batches(rng.permutation(tr)):
            x = augment(x, rng, max_shift=2).to(ft.device)
            opt.zero_grad()
            loss = torch.mean(torch.abs(model(x, a) - torch.from_numpy(y[sel].astype(np.float32)).to(ft.device)))
            loss.backward()
            opt.step()
            total += loss.item() * len(sel)
        mae = val_mae()
        history.append({"epoch": epoch, "train_mae": total / max(len(tr), 1), "val_mae": mae})
        if mae < best - 1e-5:
            best, best_epoch, best_state = mae, epoch, copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    model = model.cpu().eval()
    return HeadFit(model.head, history, best_epoch, start.penalty, model.trunk.state_dict())


@dataclass
class CVResult:
    """k-fold cross-validation of a stage-2 head: out-of-fold predictions and the k fold heads."""

    oof: np.ndarray  # (N,) out-of-fold log10 M500 prediction of every labelled cluster
    fold: np.ndarray  # (N,) test fold of each cluster (clustermass.model.folds.fold_of)
    fits: list[HeadFit] = field(default_factory=list)


def cross_validate(
    feats: np.ndarray,
    aux: np.ndarray,
    y: np.ndarray,
    cluster_ids: np.ndarray,
    cfg: Stage2Config,
    seed: int = 0,
    hybrid: bool = False,
    on_progress: ProgressFn | None = None,
    finetune: FineTune | None = None,
) -> CVResult:
    """k-fold CV (cfg.folds, folds from fold_of(cluster_ids, k, seed), shared with the baseline).

    cfg.head: 'mlp' or 'ridge'. Each fold's MLP head is early-stopped on an inner
    validation split of its training clusters (cfg.inner_val_frac, seeded); a ridge head picks
    its penalty by inner CV on them (fit_ridge): never on the test fold. With
    cfg.finetune_epochs > 0 (needs `finetune`), each fold's head is fitted on the training
    clusters outside the inner split, then it and a copy of the trunk are fine-tuned
    (finetune_fold), early-stopped on the inner split; the fold's trunk is in its HeadFit.
    """
    head = cfg.head
    if head not in HEADS:
        raise ConfigError(f"training config: stage2.head is {head!r}; expected one of {', '.join(HEADS)}")
    tune = cfg.finetune_epochs
    if tune < 0:
        raise ConfigError(f"training config: stage2.finetune_epochs is {tune}; expected 0 (frozen trunk) or more")
    if tune and finetune is None:
        raise ValueError("stage2.finetune_epochs > 0 needs the images and trunk (finetune=FineTune(...))")
    k = cfg.folds
    fold = fold_of(cluster_ids, k, seed)
    oof = np.full(len(y), np.nan)
    fits = []
    for i in range(k):
        train = np.flatnonzero(fold != i)
        test = np.flatnonzero(fold == i)
        _, inner = holdout_split(len(train), cfg.inner_val_frac, seed + 1000 + i)
        val = np.zeros(len(train), bool)
        val[inner] = True
        if head == "ridge":
            rows = train[~val] if tune else train
            fit = fit_ridge(feats[rows], aux[rows], y[rows], cfg, seed + i, hybrid)
        else:
            fit = fit_head(feats[train], aux[train], y[train], val, cfg, seed + i, hybrid)
        test_feats = feats[test]
        if tune:
            fit = finetune_fold(replace(finetune, images=finetune.images[train]), fit, aux[train], y[train], val, cfg,
                                seed + i)
            trunk = copy.deepcopy(finetune.trunk)
            trunk.load_state_dict(fit.trunk)
            test_feats = extract_features(trunk, finetune.images[test], finetune.tta, device=finetune.device)
        if len(test):
            oof[test] = head_predict(fit.head, test_feats, aux[test])
        fits.append(fit)
        if on_progress:
            on_progress("stage 2 " + ("hybrid" if hybrid else "cnn"), i + 1, k, fit.info)
    return CVResult(oof, fold, fits)
