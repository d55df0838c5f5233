"""Explanations of a cluster's predicted mass: integrated gradients, Grad-CAM, their joint map
and how much of it falls on the cluster's member galaxies (with captum; plain arrays in and out).

- Integrated gradients (IG) of the stage-2 prediction (the fold-ensemble mean) with respect to
  the five *normalised* input bands, through the frozen trunk. By default the single
  orientation is explained (8x cheaper); with `tta` the mean over the 8 rotations/flips that
  `cmcat predict` uses (IG is linear in the model, so that map is the mean of the 8). Baseline: the blank sky, i.e. an all-zero image after
  normalisation (`preprocess.normalise` subtracts the sky median, so 0 is the background level
  of every band). The number of steps is raised until the completeness error
  |sum(IG) - (f(x) - f(baseline))| / |f(x) - f(baseline)| is at most `tol` (default 5%).
- Grad-CAM of the stage-1 band classifier's last convolution (`trunk.last_conv`), for each
  band image with that band as the target class, ReLU'd and bilinearly upsampled to the cutout.
- Joint map per band: |IG| normalised to sum 1 over all bands and pixels, times the band's CAM
  normalised to a maximum of 1; the summed map is the sum over bands.
- Enrichment: (fraction of the positive joint attribution on a set of pixels) / (those pixels'
  share of the image area); 1 for a uniform map, > 1 when attribution concentrates there.

All maps are (5, H, W) in ugriz order (`images.base.BANDS`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn

from clustermass.model.datasets import dihedral
from clustermass.model.networks import BandClassifier, MassHead, Trunk, band_features

#: IG step counts tried in turn until the completeness error is within tolerance.
DEFAULT_STEPS = (32, 64, 128, 256)
DEFAULT_TOL = 0.05
#: Floor (dex) of |f(x) - f(baseline)| in the relative completeness error.
MIN_DIFF_DEX = 1e-3
#: Radius (cutout pixels) around a galaxy's centre that counts as its pixels.
DEFAULT_RADIUS_PX = 1.5


class EnsembleMass(nn.Module):
    """log10 M500 (N,) from normalised (N, 5, H, W) images: mean over fold heads of the trunk
    features (averaged over the 8 rotations/flips when `tta`, as the registry's predictor does).

    trunks: one shared trunk, or one per head (fine-tuned models).
    """

    def __init__(self, trunks: Sequence[Trunk], heads: Sequence[MassHead], tta: bool = False) -> None:
        super().__init__()
        self.trunks = nn.ModuleList(trunks)
        self.heads = nn.ModuleList(heads)
        self.tta = tta

    def forward(self, images: torch.Tensor, aux: torch.Tensor | None = None) -> torch.Tensor:
        ks = range(8) if self.tta else (0,)
        feats = [sum(band_features(t, dihedral(images, k)) for k in ks) / len(ks) for t in self.trunks]
        return torch.stack([h(feats[i % len(feats)], aux if h.hybrid else None)
                            for i, h in enumerate(self.heads)]).mean(0)


@dataclass
class IGResult:
    """Integrated gradients of one cluster: attributions (5, H, W) and the completeness check."""

    attributions: np.ndarray
    prediction: float  # f(x), log10 M500
    baseline_prediction: float  # f(blank sky)
    n_steps: int
    completeness_error: float  # |sum(attr) - (f(x) - f(b))| / max(|f(x) - f(b)|, MIN_DIFF_DEX)


def integrated_gradients(
    model: nn.Module,
    image: np.ndarray,
    aux: np.ndarray | None = None,
    steps: Sequence[int] = DEFAULT_STEPS,
    tol: float = DEFAULT_TOL,
    internal_batch_size: int = 64,
) -> IGResult:
    """IG of `model` (normalised (N, 5, H, W) [+ aux (N, N_AUX)] -> (N,)) for one normalised image (5, H, W).

    Tries the step counts in `steps` (Gauss-Legendre rule) until the completeness error is at
    most `tol`; returns the last attempt either way (check `completeness_error`).
    """
    from captum.attr import IntegratedGradients

    model.eval()
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)[None])
    base = torch.zeros_like(x)
    a = None if aux is None else torch.from_numpy(np.asarray(aux, dtype=np.float32).reshape(1, -1))
    with torch.no_grad():
        fx, fb = float(model(x, a)[0]), float(model(base, a)[0])
    diff = max(abs(fx - fb), MIN_DIFF_DEX)
    ig = IntegratedGradients(model)
    for n in steps:
        attr = ig.attribute(x, base, additional_forward_args=(a,), n_steps=int(n),
                            internal_batch_size=internal_batch_size)
        attr_np = attr[0].detach().numpy().astype(np.float64)
        err = abs(attr_np.sum() - (fx - fb)) / diff
        if err <= tol:
            break
    return IGResult(attr_np, fx, fb, int(n), float(err))


def grad_cam(classifier: BandClassifier, image: np.ndarray) -> np.ndarray:
    """Grad-CAM (5, H, W) of the band classifier's last conv layer for each band image of a
    normalised (5, H, W) cutout, target = that band; ReLU'd, bilinearly upsampled to (H, W)."""
    from captum.attr import LayerAttribution, LayerGradCam

    classifier.eval()
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)[:, None])  # (5, 1, H, W)
    cam = LayerGradCam(classifier, classifier.trunk.last_conv)
    maps = cam.attribute(x, target=list(range(len(x))), relu_attributions=True)
    up = LayerAttribution.interpolate(maps, tuple(image.shape[-2:]), interpolate_mode="bilinear")
    return np.clip(up[:, 0].detach().numpy().astype(np.float64), 0.0, None)


def joint_map(ig: np.ndarray, cam: np.ndarray) -> np.ndarray:
    """(5, H, W): |IG| / sum|IG| (all bands) times each band's CAM / its maximum (0 where all-zero)."""
    mag = np.abs(ig)
    total = mag.sum()
    mag = mag / total if total > 0 else mag
    peak = cam.max(axis=(-2, -1), keepdims=True)
    weight = np.divide(cam, peak, out=np.zeros_like(cam, dtype=np.float64), where=peak > 0)
    return mag * weight


@dataclass
class Explanation:
    """All maps of one cluster, (5, H, W) each in ugriz order, and the IG bookkeeping."""

    ig: IGResult
    cam: np.ndarray
    joint: np.ndarray

    @property
    def joint_sum(self) -> np.ndarray:
        """The joint map summed over bands, (H, W)."""
        return self.joint.sum(axis=0)


def explain_image(
    regressor: nn.Module, classifier: BandClassifier, image: np.ndarray, aux: np.ndarray | None = None,
    steps: Sequence[int] = DEFAULT_STEPS, tol: float = DEFAULT_TOL,
) -> Explanation:
    """IG, Grad-CAM and joint maps of one normalised (5, H, W) cutout."""
    ig = integrated_gradients(regressor, image, aux, steps, tol)
    cam = grad_cam(classifier, image)
    return Explanation(ig, cam, joint_map(ig.attributions, cam))


def disk_mask(x: np.ndarray, y: np.ndarray, shape: tuple[int, int], radius: float = DEFAULT_RADIUS_PX) -> np.ndarray:
    """(H, W) bool: pixels whose centre lies within `radius` pixels of any (x, y) (0-based, x = column)."""
    h, w = shape
    x, y = np.asarray(x, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
    mask = np.zeros(h * w, dtype=bool)
    if x.size == 0:
        return mask.reshape(h, w)
    yy, xx = np.divmod(np.arange(h * w), w)
    for lo in range(0, x.size, 256):
        d2 = (xx[None, :] - x[lo:lo + 256, None]) ** 2 + (yy[None, :] - y[lo:lo + 256, None]) ** 2
        mask |= (d2 <= radius**2).any(axis=0)
    return mask.reshape(h, w)


def enrichment(attribution: np.ndarray, mask: np.ndarray) -> float:
    """(fraction of the positive attribution inside `mask`) / (mask's share of the area); NaN if undefined."""
    pos = np.clip(np.asarray(attribution, dtype=np.float64), 0.0, None)
    total = pos.sum()
    share = float(np.mean(mask))
    if total <= 0 or share == 0:
        return float("nan")
    return float(pos[mask].sum() / total / share)


def member_enrichment(
    attribution: np.ndarray, x: np.ndarray, y: np.ndarray, radius: float = DEFAULT_RADIUS_PX
) -> dict[str, float]:
    """Enrichment of a (H, W) map on member pixels and on the BCG (the first (x, y)), and their area shares.

    x, y: 0-based pixel positions of the members on the cutout grid, BCG first.
    """
    shape = attribution.shape[-2:]
    members = disk_mask(x, y, shape, radius)
    bcg = disk_mask(x[:1], y[:1], shape, radius)
    return {
        "enrichment_members": enrichment(attribution, members),
        "enrichment_bcg": enrichment(attribution, bcg),
        "area_members": float(members.mean()),
        "area_bcg": float(bcg.mean()),
    }
