"""A reference band classifier on per-image summary statistics, so that stage 1's accuracy can be read.

Stage 1's held-out band accuracy alone says little: five bands could be told apart by the pixel
histogram of a normalised image, without any convolution. This classifier sees the same normalised
single-band images and the same held-out clusters as stage 1 (`train.holdout_split`), reduced to
summary statistics (pixel quantiles, the share of pixels above thresholds, the number and mean size
of sources above two thresholds, the sharpness of the image), and fits gradient-boosted trees. The
CNN's accuracy above this level is what its trunk learnt from the images' structure.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from clustermass.model.datasets import band_samples

#: Pixel quantiles (percent) of each normalised image.
QUANTILES = (1.0, 5.0, 25.0, 50.0, 75.0, 95.0, 99.0, 99.9)
#: Thresholds (normalised units: asinh of sky sigmas over the softening) for pixel shares and sources.
SHARE_THRESHOLDS = (0.5, 1.0, 2.0, 3.0)
SOURCE_THRESHOLDS = (1.0, 2.0)


def summary_statistics(images: np.ndarray) -> np.ndarray:
    """(M, K) statistics of (M, H, W) normalised single-band images (see the module docstring)."""
    m = len(images)
    flat = images.reshape(m, -1)
    cols = [np.percentile(flat, QUANTILES, axis=1).T, flat.mean(1)[:, None], flat.std(1)[:, None],
            flat.max(1)[:, None]]
    cols.append(np.stack([(flat > t).mean(1) for t in SHARE_THRESHOLDS], axis=1))
    lap = np.stack([ndimage.laplace(im) for im in images]).reshape(m, -1)
    cols.append(lap.std(1)[:, None])
    for t in SOURCE_THRESHOLDS:
        labelled = [ndimage.label(im > t)[1] for im in images]
        n = np.asarray(labelled, dtype=np.float64)
        cols.append(np.column_stack([n, (flat > t).sum(1) / np.maximum(n, 1.0)]))
    return np.hstack(cols).astype(np.float32)


def reference_band_accuracy(images: np.ndarray, train_idx: np.ndarray, hold_idx: np.ndarray, seed: int = 0) -> float:
    """Held-out band accuracy of gradient-boosted trees on summary statistics.

    images: (N, 5, H, W) normalised ugriz cutouts; train_idx / hold_idx: clusters (as stage 1's split).
    """
    from sklearn.ensemble import HistGradientBoostingClassifier

    def sample(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        clus, band = band_samples(len(idx))
        return summary_statistics(images[idx[clus], band]), band

    if len(hold_idx) == 0 or len(train_idx) == 0:
        return float("nan")
    x_train, y_train = sample(train_idx)
    x_hold, y_hold = sample(hold_idx)
    clf = HistGradientBoostingClassifier(max_iter=300, learning_rate=0.1, random_state=seed)
    return float(np.mean(clf.fit(x_train, y_train).predict(x_hold) == y_hold))
