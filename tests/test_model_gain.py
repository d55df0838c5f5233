"""metrics.gain_vs_richness: the MAE ratio to richness and the fraction G of the oracle's gain,
with paired bootstrap intervals over clusters, on synthetic errors of known size."""

from __future__ import annotations

import numpy as np
import pytest

from clustermass.model.metrics import gain_vs_richness

N = 4000


def _estimates(scales: tuple[float, ...], seed: int = 0) -> tuple[np.ndarray, ...]:
    """A reference (zeros) and one estimate per Gaussian error scale (dex), on N clusters."""
    rng = np.random.default_rng(seed)
    return (np.zeros(N), *(rng.normal(0.0, s, N) for s in scales))


def test_gain_is_known_for_fixed_error_sizes_and_its_intervals_collapse():
    rng = np.random.default_rng(1)
    sign = lambda: rng.choice([-1.0, 1.0], N)  # noqa: E731
    ref = np.full(N, 14.0)
    res = gain_vs_richness(ref + 0.15 * sign(), ref + 0.2 * sign(), ref, ref + 0.1 * sign())
    assert res["gain"] == pytest.approx(0.5) and res["ratio"] == pytest.approx(0.75)
    for key in ("gain_ci68", "gain_ci95"):
        assert res[key] == pytest.approx([0.5, 0.5])
    assert res["ratio_ci95"] == pytest.approx([0.75, 0.75]) and res["gain_nonpositive"] == 0 and res["gain_n"] == N


def test_gain_intervals_hold_the_expected_gain():
    """MAE of N(0, s) errors is s sqrt(2/pi): G = (0.2 - 0.15) / (0.2 - 0.1) = 0.5, ratio 0.75."""
    ref, model, rich, oracle = _estimates((0.15, 0.2, 0.1))
    res = gain_vs_richness(model, rich, ref, oracle)
    lo68, hi68 = res["gain_ci68"]
    lo95, hi95 = res["gain_ci95"]
    assert lo95 < lo68 < res["gain"] < hi68 < hi95 and lo95 < 0.5 < hi95
    assert res["ratio_ci95"][0] < 0.75 < res["ratio_ci95"][1]


def test_gain_undefined_where_the_oracle_does_not_beat_richness():
    ref, model, rich = _estimates((0.15, 0.2))
    res = gain_vs_richness(model, rich, ref, rich)  # denominator exactly 0 in every resample
    assert res["gain"] is None and res["gain_ci68"] is None and res["gain_ci95"] is None
    assert res["gain_nonpositive"] == 2000 and res["ratio"] is not None


def test_gain_intervals_dropped_when_the_denominator_is_often_nonpositive():
    """An oracle whose gain is 0.2 of its own bootstrap spread: the point G exists, but ~40% of the
    resamples have a denominator <= 0, more than either interval's tail can take."""
    ref, model, rich = _estimates((0.15, 0.2))
    rich = np.sign(rich) * (np.abs(rich) + 0.5)  # errors of at least 0.5 dex, so |oracle - ref| = |rich - ref| - d
    rng = np.random.default_rng(5)
    d = np.clip(rng.normal(0.0, 0.05, N), -0.3, 0.3)
    d += 0.2 * d.std() / np.sqrt(N) - d.mean()  # |rich - ref| - |oracle - ref| with a small positive mean
    oracle = np.sign(rich) * (np.abs(rich) - d)
    res = gain_vs_richness(model, rich, ref, oracle)
    assert res["gain"] is not None and np.isfinite(res["gain"])
    assert 300 < res["gain_nonpositive"] < 1000
    assert res["gain_ci68"] is None and res["gain_ci95"] is None


def test_without_oracle_only_the_ratio_and_non_finite_rows_dropped():
    ref, model, rich = _estimates((0.15, 0.2))
    model[:10] = np.nan
    res = gain_vs_richness(model, rich, ref)
    assert res["gain"] is None and res["gain_nonpositive"] is None and res["gain_n"] is None
    both = gain_vs_richness(model[10:], rich[10:], ref[10:])
    assert res["ratio"] == both["ratio"] and res["ratio_ci95"] == both["ratio_ci95"]
