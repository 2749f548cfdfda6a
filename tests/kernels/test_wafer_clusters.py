"""The wafer-pattern kernels: same answers as a plain-Python reference, and no
out-of-bounds access on odd shapes (run with Numba's bounds checking on)."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest
from numba import njit

from failmap_assets.kernels import wafer_clusters as kw

# The same kernels compiled with bounds checking: an out-of-bounds index raises IndexError.
edge_depth_checked = njit(boundscheck=True)(kw.edge_depth.py_func)
fail_clusters_checked = njit(boundscheck=True)(kw.fail_clusters.py_func)
fail_neighbours_checked = njit(boundscheck=True)(kw.fail_neighbours.py_func)

NEIGHBOURS = [(dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if (dr, dc) != (0, 0)]


def ref_depth(grid: np.ndarray) -> np.ndarray:
    rows, cols = grid.shape
    die = (grid == 0) | (grid == 1)
    depth = np.full(grid.shape, -1, dtype=np.int64)
    q = deque()
    for r in range(rows):
        for c in range(cols):
            if not die[r, c]:
                continue
            if any(not (0 <= r + dr < rows and 0 <= c + dc < cols) or not die[r + dr, c + dc] for dr, dc in NEIGHBOURS):
                depth[r, c] = 0
                q.append((r, c))
    while q:
        r, c = q.popleft()
        for dr, dc in NEIGHBOURS:
            rr, cc = r + dr, c + dc
            if 0 <= rr < rows and 0 <= cc < cols and die[rr, cc] and depth[rr, cc] < 0:
                depth[rr, cc] = depth[r, c] + 1
                q.append((rr, cc))
    return depth


def ref_cluster_sizes(mask: np.ndarray) -> list[int]:
    rows, cols = mask.shape
    seen = np.zeros(mask.shape, bool)
    sizes = []
    for r0 in range(rows):
        for c0 in range(cols):
            if mask[r0, c0] and not seen[r0, c0]:
                seen[r0, c0] = True
                q, n = deque([(r0, c0)]), 0
                while q:
                    r, c = q.popleft()
                    n += 1
                    for dr, dc in NEIGHBOURS:
                        rr, cc = r + dr, c + dc
                        if 0 <= rr < rows and 0 <= cc < cols and mask[rr, cc] and not seen[rr, cc]:
                            seen[rr, cc] = True
                            q.append((rr, cc))
                sizes.append(n)
    return sizes


ODD_SHAPES = [(0, 0), (0, 5), (5, 0), (1, 1), (1, 17), (17, 1), (2, 2), (3, 40), (40, 3)]


@pytest.mark.parametrize("shape", ODD_SHAPES)
@pytest.mark.parametrize("fill", ["all_no_die", "all_fail", "random"])
def test_odd_shapes_stay_in_bounds(shape, fill) -> None:
    rng = np.random.default_rng(sum(shape))
    if fill == "all_no_die":
        grid = np.full(shape, -1, dtype=np.int8)
    elif fill == "all_fail":
        grid = np.ones(shape, dtype=np.int8)
    else:
        grid = rng.integers(-3, 4, size=shape).astype(np.int8)   # values other than -1/0/1: no die
    depth = edge_depth_checked(grid)
    assert depth.shape == shape
    np.testing.assert_array_equal(depth, ref_depth(grid))
    mask = (grid == 1).astype(np.uint8)
    labels, sizes = fail_clusters_checked(mask)
    assert labels.shape == shape and sorted(sizes.tolist()) == sorted(ref_cluster_sizes(mask))
    assert (labels >= 0).sum() == mask.sum()
    nf, nd = fail_neighbours_checked(grid)
    assert nf.shape == nd.shape == shape and (nf <= nd).all() and (nd <= 8).all()


def test_random_grids_match_the_reference() -> None:
    rng = np.random.default_rng(7)
    for _ in range(40):
        shape = tuple(int(v) for v in rng.integers(1, 30, 2))
        grid = rng.choice(np.array([-1, 0, 1], np.int8), size=shape, p=[0.2, 0.5, 0.3])
        np.testing.assert_array_equal(kw.edge_depth(grid), ref_depth(grid))
        mask = (grid == 1).astype(np.uint8)
        labels, sizes = kw.fail_clusters(mask)
        assert sorted(sizes.tolist()) == sorted(ref_cluster_sizes(mask))
        # Every cell of a cluster has its cluster's label; sizes agree with the labels.
        assert np.bincount(labels[labels >= 0], minlength=sizes.size).tolist() == sizes.tolist()
        nf, nd = kw.fail_neighbours(grid)
        r, c = shape[0] // 2, shape[1] // 2
        window = grid[max(r - 1, 0):r + 2, max(c - 1, 0):c + 2]
        assert nf[r, c] == (window == 1).sum() - (grid[r, c] == 1)
        assert nd[r, c] == ((window == 0) | (window == 1)).sum() - (grid[r, c] in (0, 1))


def test_depth_of_a_disc() -> None:
    y, x = np.mgrid[-10:11, -10:11]
    grid = np.where(x * x + y * y <= 100, 0, -1).astype(np.int8)
    depth = kw.edge_depth(grid)
    # Row 10 from the left: (10, 1) touches the non-die (9, 0); the nearest non-die to
    # the centre is (2, 3), chessboard distance 8, so 7 dies lie between.
    assert depth[10, :11].tolist() == [0, 0, 1, 2, 3, 4, 4, 5, 6, 6, 7]
    assert depth[0, 0] == -1


line_strips_checked = njit(boundscheck=True)(kw.line_strips.py_func)


def test_line_strips_count_every_die_once_and_stay_in_bounds() -> None:
    rng = np.random.default_rng(3)
    for n, bins in [(0, 1), (1, 1), (5, 2), (300, 40)]:
        x = rng.uniform(-1.5, 1.5, n)            # some beyond the wafer: clamped to the end strips
        y = rng.uniform(-1.5, 1.5, n)
        if n:
            x[0] = np.nan                         # a NaN offset lands in strip 0, never out of bounds
        fail = rng.random(n) < 0.3
        dies, fails = line_strips_checked(x, y, fail, 0.1, 8, bins)
        assert dies.shape == fails.shape == (8, bins)
        assert (dies.sum(axis=1) == n).all() and (fails.sum(axis=1) == fail.sum()).all()
    # A horizontal line of fails (y = 0.25) is one strip of the direction theta = pi/2.
    x = np.linspace(-0.9, 0.9, 19)
    dies, fails = kw.line_strips(x, np.full(19, 0.25), np.ones(19, bool), 0.1, 4, 21)
    assert fails[2].max() == 19 and fails[2, 12] == 19
    with pytest.raises(ValueError):
        kw.line_strips(x, np.zeros(3), np.ones(19, bool), 0.1, 4, 21)
    with pytest.raises(ValueError):
        kw.line_strips(x, x, np.ones(19, bool), 0.0, 4, 21)


line_runs_checked = njit(boundscheck=True)(kw.line_runs.py_func)


def test_line_runs_find_a_broken_line_and_stay_in_bounds() -> None:
    rng = np.random.default_rng(5)
    phases = np.array([0.0, 0.5])
    for n, bins in [(0, 1), (1, 1), (5, 2), (300, 40)]:
        x = rng.uniform(-1.5, 1.5, n)
        y = rng.uniform(-1.5, 1.5, n)
        if n:
            x[0] = np.nan
            y[-1] = np.inf
        fail = rng.random(n) < 0.3
        gain, lo, hi, dies, fails = line_runs_checked(x, y, fail, 0.1, 8, bins, 0.5, phases)
        assert gain.shape == lo.shape == dies.shape == fails.shape == (2, 8, bins)
        assert (gain >= 0).all() and (fails <= dies).all() and (lo <= hi).all()
        assert np.allclose(gain, fails - 0.5 * dies)
        strip_dies, _ = kw.line_strips(x, y, fail, 0.1, 8, bins)
        assert (dies[0] <= strip_dies).all()
    # A horizontal line at y = 0.25 from x = -0.9 to 0.9 (one die per 0.1 cell) with two
    # one-die gaps, on a row of passing dies further out: one run of 19 dies, 17 failing,
    # 1.9 long (theta = pi/2: t = -x).
    x = np.arange(-11, 10) / 10.0 + 0.05
    fail = np.abs(x - 0.05) <= 0.9 + 1e-9
    fail[[7, 12]] = False
    gain, lo, hi, dies, fails = kw.line_runs(x, np.full(21, 0.25), fail, 0.1, 4, 21, 0.5, phases)
    assert dies[0, 2, 12] == 19 and fails[0, 2, 12] == 17 and gain[0, 2, 12] == 17 - 0.5 * 19
    assert abs(hi[0, 2, 12] - lo[0, 2, 12] - 1.9) < 1e-9
    assert gain[0, 2].argmax() == 12 and (gain[0, 2, :12] == 0).all() and (gain[0, 2, 13:] == 0).all()
    # Half a strip further (phase 0.5): the line (offset 12.5 strips) is in strip 13.
    assert gain[1, 2].argmax() == 13 and gain[1, 2, 13] == gain[0, 2, 12]
    with pytest.raises(ValueError):
        kw.line_runs(x, np.zeros(3), fail, 0.1, 4, 21, 0.5, phases)
