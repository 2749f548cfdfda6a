"""Synthetic pattern wafers: deterministic, every class, WM-811K-like grids."""

from __future__ import annotations

import numpy as np
import pytest

from failmap_synth.patterns import CLASSES, pattern_set, pattern_wafer


def test_same_seed_same_wafer_other_seed_other_wafer() -> None:
    a = pattern_wafer("Scratch", seed=4, index=3)
    b = pattern_wafer("Scratch", seed=4, index=3)
    c = pattern_wafer("Scratch", seed=5, index=3)
    np.testing.assert_array_equal(a.grid, b.grid)
    assert a.die_aspect == b.die_aspect
    assert a.grid.shape != c.grid.shape or not np.array_equal(a.grid, c.grid)


def test_grids_look_like_wafers() -> None:
    wafers = pattern_set(6, seed=9)
    assert [w.label for w in wafers[:9]] == list(CLASSES)
    for w in wafers:
        assert w.grid.dtype == np.int8 and set(np.unique(w.grid)) <= {-1, 0, 1}
        assert 20 <= w.grid.shape[0] <= 120 and 0.5 <= w.die_aspect <= 2.0
        dies = (w.grid >= 0).sum()
        # A disc fills ~pi/4 of its bounding box.
        assert 0.6 < dies / w.grid.size < 0.85
    fractions = {c: np.mean([(w.grid == 1).sum() / (w.grid >= 0).sum() for w in wafers if w.label == c])
                 for c in CLASSES}
    assert fractions["Near-full"] > 0.75 and fractions["none"] < 0.12
    assert fractions["Random"] > fractions["Center"]


def test_unknown_class_is_refused() -> None:
    with pytest.raises(ValueError):
        pattern_wafer("Blob", seed=0, index=0)


def test_scratches_are_thin_long_and_some_reach_the_rim() -> None:
    from failmap_synth.patterns import _scratch

    n = 60
    die = 2.0 / n
    r = (np.arange(n) + 0.5 - n / 2) / (n / 2)
    y, x = np.meshgrid(r, r, indexing="ij")
    wafer = np.hypot(x, y) <= 1.0
    to_rim = 0
    for i in range(40):
        line = (_scratch(x, y, die, np.random.default_rng(i)) > 0) & wafer
        # Thin: a line up to 2 radii long and 2 dies wide covers at most a tenth of a
        # 60-die wafer (a blob of the same length would cover a third).
        assert 0 < line.sum() / wafer.sum() < 0.1, i
        to_rim += bool((line & (np.hypot(x, y) > 1.0 - 1.5 * die)).any())
    # Real scratches often run to the edge; not all of them.
    assert 8 <= to_rim <= 36, to_rim


def test_outermost_dies_fail_more_often_than_the_row_inside() -> None:
    # As on real WM-811K maps (edge dies yield worse): pooled over clean wafers, the rim
    # dies fail clearly more often than the dies one row in; the row in and the next
    # one alike (a rim, not a gradient).
    from failmap_synth.patterns import _depth_dies

    fails = np.zeros(3)
    dies = np.zeros(3)
    for w in pattern_set(24, seed=9, classes=("none",)):
        depth = _depth_dies(w.grid >= 0)
        for d in range(3):
            at = depth == d
            fails[d] += (w.grid[at] == 1).sum()
            dies[d] += at.sum()
    rate = fails / dies
    assert rate[0] > 1.5 * rate[1], rate
    assert rate[1] < 1.3 * rate[2], rate
