"""Numba kernels over a wafer's die grid for the pattern signature (patterns/features.py).

Pure functions over a 2-D ``int8`` grid: ``-1`` no die, ``0`` pass, ``1`` fail (any
other value counts as "no die"). Nothing here knows about wafers beyond that; nothing
imports our other code.

* ``edge_depth(grid)``: per die, how many dies lie between it and the wafer edge
  (chessboard distance to the nearest non-die cell, the outside of the grid counting
  as non-die): 0 for the outermost ring of dies, -1 where there is no die. An edge
  ring or an edge cluster is "a few dies deep", whatever the wafer's size or outline.
* ``fail_clusters(fail)``: 8-connected components of the non-zero cells of a 2-D
  ``uint8`` mask; returns (labels int32, sizes int64) with labels 0..k-1 and -1 off
  the mask. A flood fill with an explicit stack (no recursion).
* ``fail_neighbours(grid)``: per cell, the number of failing dies among its 8
  neighbours and the number of dies among them (two int32 grids) — the majority
  filter and the spatial autocorrelation both come from these counts.
* ``line_strips`` / ``line_runs``: Hough strips over die positions: dies and fails per
  strip, and per strip the densest long run of fails along it (a scratch).

Safety: every index is checked against the shape before it is read (a 0x0, 1xN or
all-no-die grid returns empty/all -1 results); the stack is sized to the grid, so a
push never goes past it.
"""

from __future__ import annotations

import numpy as np

from .jit import kernel


@kernel
def edge_depth(grid):
    rows, cols = grid.shape
    depth = np.full((rows, cols), -1, dtype=np.int32)
    n = rows * cols
    if n == 0:
        return depth
    queue = np.empty(n, dtype=np.int64)
    head = 0
    tail = 0
    # Seed: dies with a non-die (or the grid's border) among their 8 neighbours.
    for r in range(rows):
        for c in range(cols):
            v = grid[r, c]
            if v != 0 and v != 1:
                continue
            edge = False
            for dr in range(-1, 2):
                for dc in range(-1, 2):
                    rr = r + dr
                    cc = c + dc
                    if rr < 0 or rr >= rows or cc < 0 or cc >= cols:
                        edge = True
                    else:
                        w = grid[rr, cc]
                        if w != 0 and w != 1:
                            edge = True
            if edge:
                depth[r, c] = 0
                queue[tail] = r * cols + c
                tail += 1
    # Breadth-first inwards: each die is queued once (depth set before the push).
    while head < tail:
        k = queue[head]
        head += 1
        r = k // cols
        c = k - r * cols
        d = depth[r, c]
        for dr in range(-1, 2):
            for dc in range(-1, 2):
                rr = r + dr
                cc = c + dc
                if rr < 0 or rr >= rows or cc < 0 or cc >= cols:
                    continue
                w = grid[rr, cc]
                if (w == 0 or w == 1) and depth[rr, cc] < 0:
                    depth[rr, cc] = d + 1
                    queue[tail] = rr * cols + cc
                    tail += 1
    return depth


@kernel
def fail_clusters(fail):
    rows, cols = fail.shape
    labels = np.full((rows, cols), -1, dtype=np.int32)
    n = rows * cols
    sizes = np.zeros(max(n, 1), dtype=np.int64)
    if n == 0:
        return labels, sizes[:0]
    stack = np.empty(n, dtype=np.int64)
    k = 0
    for r0 in range(rows):
        for c0 in range(cols):
            if fail[r0, c0] == 0 or labels[r0, c0] >= 0:
                continue
            top = 0
            stack[top] = r0 * cols + c0
            top += 1
            labels[r0, c0] = k
            size = 0
            while top > 0:
                top -= 1
                p = stack[top]
                r = p // cols
                c = p - r * cols
                size += 1
                for dr in range(-1, 2):
                    for dc in range(-1, 2):
                        rr = r + dr
                        cc = c + dc
                        if rr < 0 or rr >= rows or cc < 0 or cc >= cols:
                            continue
                        if fail[rr, cc] != 0 and labels[rr, cc] < 0:
                            labels[rr, cc] = k   # labelled when pushed: at most n pushes
                            stack[top] = rr * cols + cc
                            top += 1
            sizes[k] = size
            k += 1
    return labels, sizes[:k]


@kernel
def fail_neighbours(grid):
    rows, cols = grid.shape
    fails = np.zeros((rows, cols), dtype=np.int32)
    dies = np.zeros((rows, cols), dtype=np.int32)
    for r in range(rows):
        for c in range(cols):
            nf = 0
            nd = 0
            for dr in range(-1, 2):
                for dc in range(-1, 2):
                    if dr == 0 and dc == 0:
                        continue
                    rr = r + dr
                    cc = c + dc
                    if rr < 0 or rr >= rows or cc < 0 or cc >= cols:
                        continue
                    w = grid[rr, cc]
                    if w == 1:
                        nf += 1
                        nd += 1
                    elif w == 0:
                        nd += 1
            fails[r, c] = nf
            dies[r, c] = nd
    return fails, dies


@kernel
def line_strips(x, y, fail, bin_width, n_angles, bins):
    """Hough strips: for ``n_angles`` directions theta = k * pi / n_angles, the dies and
    failing dies whose offset ``x cos(theta) + y sin(theta)`` (from -1) falls in each of
    ``bins`` strips ``bin_width`` wide; offsets outside are clamped to the end strips.
    Returns (dies, fails), int64 (n_angles, bins). ``x``, ``y``, ``fail`` must have one
    length (else ValueError)."""
    n = x.shape[0]
    if y.shape[0] != n or fail.shape[0] != n:
        raise ValueError("x, y and fail differ in length")
    if n_angles < 0 or bins < 1 or not bin_width > 0.0:
        raise ValueError("need n_angles >= 0, bins >= 1 and bin_width > 0")
    dies = np.zeros((n_angles, bins), dtype=np.int64)
    fails = np.zeros((n_angles, bins), dtype=np.int64)
    for a in range(n_angles):
        c = np.cos(a * np.pi / n_angles)
        s = np.sin(a * np.pi / n_angles)
        for i in range(n):
            v = (x[i] * c + y[i] * s + 1.0) / bin_width
            if not v > 0.0:          # also NaN
                b = 0
            elif v >= bins - 1:
                b = bins - 1
            else:
                b = int(v)
            dies[a, b] += 1
            if fail[i]:
                fails[a, b] += 1
    return dies, fails


@kernel
def line_runs(x, y, fail, bin_width, n_angles, bins, q, phases):
    """The best failing stretch of every Hough strip (the strips of ``line_strips``,
    moved by each of ``phases`` strip widths: a one-die line that wanders across two
    strips of one phase lies in one strip of the phase half a die beside).

    Each strip is cut into ``bins`` cells ``bin_width`` long along it (position
    ``t = -x sin(theta) + y cos(theta)``, from -1, clamped like the offset); each cell
    scores its failing dies minus ``q`` times its dies, and the stretch of consecutive
    cells with the largest sum (Kadane) is the strip's densest long run of fails: a
    broken scratch stays one run as long as its gaps are short, random fails at a rate
    below ``q`` make no long run. Counting into cells, not sorting, keeps it linear.
    Returns (gain float64, t_lo float64, t_hi float64, dies int64, fails int64), each
    (len(phases), n_angles, bins): the run's score, where it starts and ends along the
    strip (cell borders), and its dies and failing dies (all 0 where a strip has no
    run). ``x``, ``y``, ``fail`` must have one length (else ValueError)."""
    n = x.shape[0]
    if y.shape[0] != n or fail.shape[0] != n:
        raise ValueError("x, y and fail differ in length")
    if n_angles < 0 or bins < 1 or not bin_width > 0.0:
        raise ValueError("need n_angles >= 0, bins >= 1 and bin_width > 0")
    n_ph = phases.shape[0]
    gain = np.zeros((n_ph, n_angles, bins), dtype=np.float64)
    t_lo = np.zeros((n_ph, n_angles, bins), dtype=np.float64)
    t_hi = np.zeros((n_ph, n_angles, bins), dtype=np.float64)
    run_dies = np.zeros((n_ph, n_angles, bins), dtype=np.int64)
    run_fails = np.zeros((n_ph, n_angles, bins), dtype=np.int64)
    cell_dies = np.zeros((n_ph, bins, bins), dtype=np.int64)
    cell_fails = np.zeros((n_ph, bins, bins), dtype=np.int64)
    k_first = np.empty((n_ph, bins), dtype=np.int64)
    k_last = np.empty((n_ph, bins), dtype=np.int64)
    for a in range(n_angles):
        c = np.cos(a * np.pi / n_angles)
        s = np.sin(a * np.pi / n_angles)
        k_first[:, :] = bins
        k_last[:, :] = -1
        for i in range(n):
            u = (-x[i] * s + y[i] * c + 1.0) / bin_width
            if not u > 0.0:              # also NaN
                k = 0
            elif u >= bins - 1:
                k = bins - 1
            else:
                k = int(u)
            v0 = (x[i] * c + y[i] * s + 1.0) / bin_width
            f = 1 if fail[i] else 0
            for p in range(n_ph):        # one pass over the dies serves every phase
                v = v0 + phases[p]
                if not v > 0.0:
                    b = 0
                elif v >= bins - 1:
                    b = bins - 1
                else:
                    b = int(v)
                cell_dies[p, b, k] += 1
                cell_fails[p, b, k] += f
                k_first[p, b] = min(k_first[p, b], k)
                k_last[p, b] = max(k_last[p, b], k)
        for p in range(n_ph):
            for b in range(bins):
                cur = 0.0
                cur_dies = 0
                cur_fails = 0
                start = 0
                # Cells beyond a strip's first and last die add nothing to any run.
                for k in range(k_first[p, b], k_last[p, b] + 1):
                    if cur_dies == 0 and cur == 0.0:
                        start = k
                    cur += cell_fails[p, b, k] - q * cell_dies[p, b, k]
                    cur_dies += cell_dies[p, b, k]
                    cur_fails += cell_fails[p, b, k]
                    if cur > gain[p, a, b]:
                        gain[p, a, b] = cur
                        t_lo[p, a, b] = start * bin_width - 1.0
                        t_hi[p, a, b] = (k + 1) * bin_width - 1.0
                        run_dies[p, a, b] = cur_dies
                        run_fails[p, a, b] = cur_fails
                    if cur <= 0.0:
                        cur = 0.0
                        cur_dies = 0
                        cur_fails = 0
                # Empty the strip's cells for the next angle (only those it used:
                # clearing every cell of every angle would cost more than the walk).
                for k in range(k_first[p, b], k_last[p, b] + 1):
                    cell_dies[p, b, k] = 0
                    cell_fails[p, b, k] = 0
    return gain, t_lo, t_hi, run_dies, run_fails
