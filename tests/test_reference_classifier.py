"""The summary-statistics reference band classifier (model/reference.py), on plain arrays."""

from __future__ import annotations

import numpy as np

from clustermass.model.reference import reference_band_accuracy, summary_statistics
from clustermass.model.train import holdout_split


def _blobs(rng: np.random.Generator, n_sources: int, size: int = 32) -> np.ndarray:
    """A normalised-looking image: noise of sigma 0.3 plus n_sources separated 3x3 blobs of height 4."""
    im = rng.normal(0.0, 0.3, (size, size)).astype(np.float32)
    cells = rng.choice(49, n_sources, replace=False)
    for c in cells:
        y, x = 2 + 4 * (c // 7), 2 + 4 * (c % 7)
        im[y - 1:y + 2, x - 1:x + 2] += 4.0
    return im


def test_summary_statistics_count_separated_sources():
    rng = np.random.default_rng(0)
    stats = summary_statistics(np.stack([_blobs(rng, k) for k in (0, 3, 7)]))
    assert stats.shape[0] == 3
    counts_above_2 = stats[:, -2]  # number of sources above the second source threshold
    np.testing.assert_array_equal(counts_above_2, [0, 3, 7])


def test_reference_reads_bands_that_differ_and_not_those_that_do_not():
    rng = np.random.default_rng(1)
    n = 100
    differ = np.stack([[_blobs(rng, 1 + 2 * b) for b in range(5)] for _ in range(n)])
    same = np.stack([[_blobs(rng, 4) for _ in range(5)] for _ in range(n)])
    split = holdout_split(n, 0.25, 0)
    assert reference_band_accuracy(differ, *split) > 0.9
    assert reference_band_accuracy(same, *split) < 0.35  # chance is 0.2
