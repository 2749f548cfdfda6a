"""The canonical wafer model's pure helpers: the pass verdict per die and A/B die matching."""

from __future__ import annotations

import numpy as np

from failmap_assets.wafer.model import WaferMap, match_dies


def _wafer(bins: np.ndarray, bin_pass: dict[int, bool]) -> WaferMap:
    n = len(bins)
    zeros = np.zeros(n, np.int32)
    return WaferMap("failmap", zeros, zeros, bins.astype(np.int32), np.zeros(n, np.int16), bin_pass=bin_pass)


def test_pass_verdict_is_the_files_word_else_bin_1_passes() -> None:
    rng = np.random.default_rng(3)
    for _ in range(500):
        bins = rng.integers(0, 9, int(rng.integers(0, 60)))
        verdicts = {int(b): bool(rng.integers(0, 2)) for b in rng.integers(0, 9, int(rng.integers(0, 6)))}
        wafer = _wafer(bins, verdicts)
        expected = np.array([verdicts.get(int(b), b == 1) for b in bins], dtype=bool)
        got = wafer.is_pass()
        assert got.dtype == bool and np.array_equal(got, expected), (bins, verdicts)
        distinct = np.unique(bins)
        assert np.array_equal(wafer.is_pass(distinct), [verdicts.get(int(b), b == 1) for b in distinct])


def test_bin_1_can_be_declared_failing_and_large_bins_passing() -> None:
    wafer = _wafer(np.array([1, 2, 65535, 1]), {1: False, 65535: True})
    assert wafer.is_pass().tolist() == [False, False, True, False]


def test_match_dies_pairs_equal_coordinates_in_any_order() -> None:
    rng = np.random.default_rng(5)
    ax, ay = np.meshgrid(np.arange(-3, 4), np.arange(0, 5))
    ax, ay = ax.ravel(), ay.ravel()
    keep = rng.random(len(ax)) < 0.8
    order = rng.permutation(int(keep.sum()))
    bx = np.concatenate([ax[keep][order], [100, -100]])
    by = np.concatenate([ay[keep][order], [0, 7]])
    b_index, b_only = match_dies(ax, ay, bx, by)
    for i, j in enumerate(b_index):
        if j >= 0:
            assert (bx[j], by[j]) == (ax[i], ay[i])
        else:
            assert not keep[i]
    assert sorted(b_only.tolist()) == [len(bx) - 2, len(bx) - 1]
