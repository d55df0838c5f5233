"""Training data on plain arrays: stage-1 band samples, catalogue inputs and sky augmentations.

Augmentations are the symmetries the sky allows: the 8 rotations/flips of the square
(dihedral group; north-up/east-left carries no physics at these scales) and small shifts
(the cluster centre is uncertain by a few pixels). Shifted-in pixels are 0, the background
level of normalised images.
"""

from __future__ import annotations

import numpy as np
import torch

from clustermass.images.base import BANDS
from clustermass.model.baseline import design_matrix


def aux_inputs(richness: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Hybrid catalogue inputs (N, 3), the richness baseline's (`baseline.design_matrix` less its 1):
    log10(lambda / 40), x = log10((1 + z) / 1.35) and x^2, float32 (lambda >= 1, z >= 0)."""
    lam = np.clip(np.asarray(richness, dtype=np.float64), 1.0, None)
    zz = np.clip(np.asarray(z, dtype=np.float64), 0.0, None)
    return design_matrix(lam, zz)[:, 1:].astype(np.float32)


def band_samples(n_clusters: int, n_bands: int = len(BANDS)) -> tuple[np.ndarray, np.ndarray]:
    """Stage-1 sample index: (cluster index, band index) of every single-band image, band = label."""
    cluster = np.repeat(np.arange(n_clusters), n_bands)
    band = np.tile(np.arange(n_bands), n_clusters)
    return cluster, band


def dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """The k-th (0..7) rotation/flip of the last two axes: rot90 by k % 4, then a flip if k >= 4."""
    out = torch.rot90(x, k % 4, dims=(-2, -1))
    return torch.flip(out, dims=(-1,)) if k >= 4 else out


def shift(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Shift the last two axes by (dy, dx) pixels, filling with 0 (no wrap-around)."""
    out = torch.zeros_like(x)
    h, w = x.shape[-2:]
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[..., yd, xd] = x[..., ys, xs]
    return out


def augment(x: torch.Tensor, rng: np.random.Generator, max_shift: int = 2) -> torch.Tensor:
    """Random dihedral transform and shift of up to `max_shift` px per sample of a (N, C, H, W) batch.

    All channels of a sample get the same transform (the 5 bands of a cluster stay aligned).
    """
    ks = rng.integers(0, 8, size=len(x))
    shifts = rng.integers(-max_shift, max_shift + 1, size=(len(x), 2)) if max_shift > 0 else np.zeros((len(x), 2), int)
    out = torch.empty_like(x)
    for i in range(len(x)):
        out[i] = shift(dihedral(x[i], int(ks[i])), int(shifts[i, 0]), int(shifts[i, 1]))
    return out
