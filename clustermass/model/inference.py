"""Batched forward passes shared by training, evaluation and the registry's predictors."""

from __future__ import annotations

import numpy as np
import torch

from clustermass.images.base import CutoutGrid
from clustermass.model.datasets import dihedral
from clustermass.model.networks import BandClassifier, MassHead, Trunk, band_features
from clustermass.model.photometry import photometric_features


@torch.no_grad()
def extract_features(
    trunk: Trunk, images: np.ndarray, tta: bool = True, batch_size: int = 64, device: str = "cpu"
) -> np.ndarray:
    """(N, 5, H, W) normalised images -> (N, trunk.n_cluster_features) trunk features, float32.

    With `tta`, features are averaged over the 8 rotations/flips (the trained-in symmetries).
    """
    trunk.eval().to(device)
    ks = range(8) if tta else (0,)
    out = []
    for start in range(0, len(images), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(images[start:start + batch_size])).to(device)
        f = sum(band_features(trunk, dihedral(x, k)) for k in ks) / len(ks)
        out.append(f.cpu().numpy())
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, trunk.n_cluster_features), np.float32)


def stage2_features(
    trunk: Trunk, raw: np.ndarray, normalised: np.ndarray, tta: bool, photometry: tuple[str, ...], grid: CutoutGrid,
    batch_size: int = 64, device: str = "cpu", bcg: np.ndarray | None = None,
) -> np.ndarray:
    """What a stage-2 head reads, in training and in prediction alike: the trunk's features of the
    normalised cutouts (`extract_features`), then the photometric features (`photometry`, possibly
    none) of the same cutouts in nanomaggies, `raw` (N, 5, H, W) on `grid`, then (photometry `bcgfit`)
    the (N, 2) BCG fit features `bcg` (`model.bcgfit.BcgFit.features`)."""
    feats = extract_features(trunk, normalised, tta, batch_size, device)
    if "bcgfit" in photometry and (bcg is None or len(bcg) != len(feats)):
        raise ValueError("photometry 'bcgfit' needs the (N, 2) BCG fit features of the same clusters")
    parts = [feats, photometric_features(raw, grid, photometry)] if photometry else [feats]
    return np.hstack(parts + ([bcg] if "bcgfit" in photometry else []))


@torch.no_grad()
def head_predict(head: MassHead, feats: np.ndarray, aux: np.ndarray | None) -> np.ndarray:
    """log10 M500 (N,) from features (N, 5F) and aux inputs (N, N_AUX) (hybrid heads only)."""
    head.eval()
    f = torch.from_numpy(feats)
    a = torch.from_numpy(aux) if (aux is not None and head.hybrid) else None
    return head(f, a).numpy().astype(np.float64)


@torch.no_grad()
def classify_bands(model: BandClassifier, images: np.ndarray, batch_size: int = 256, device: str = "cpu") -> np.ndarray:
    """(M, 1, H, W) normalised single-band images -> predicted band index (M,)."""
    model.eval().to(device)
    out = []
    for start in range(0, len(images), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(images[start:start + batch_size])).to(device)
        out.append(model(x).argmax(1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, np.int64)
