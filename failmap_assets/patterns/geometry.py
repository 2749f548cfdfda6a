"""Where each die sits on the wafer, whatever the grid: notch down, centred, radius 1.

Every later step (raster, features) works in these normalised coordinates, so a
26-die and a 120-die wafer, or a grid of tall dies and one of wide dies, describe the
same pattern with the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from failmap_assets.kernels.wafer_clusters import edge_depth

NOTCHES = ("down", "up", "left", "right")
# np.rot90 turns counter-clockwise: the left edge ends at the bottom after one turn.
_TURNS = {"down": 0, "up": 2, "left": 1, "right": 3}


@dataclass(frozen=True)
class WaferGeometry:
    grid: np.ndarray        # int8 (rows, cols), notch down
    die_aspect: float       # die width / die height after the turn
    rows: np.ndarray        # int64 (n,): row of each die
    cols: np.ndarray        # int64 (n,): column of each die
    fail: np.ndarray        # bool (n,)
    x: np.ndarray           # float64 (n,): right positive, wafer radius 1
    y: np.ndarray           # float64 (n,): down (towards the notch) positive
    radius: np.ndarray      # float64 (n,): hypot(x, y)
    angle: np.ndarray       # float64 (n,): atan2(y, x) in [-pi, pi]
    depth: np.ndarray       # int32 (n,): dies between this die and the wafer edge (0: outermost)
    centre: tuple[float, float]   # (row, col) of the wafer centre in the grid
    radius_dies: float      # wafer radius in die heights


def notch_down(grid: np.ndarray, die_aspect: float, notch: str) -> tuple[np.ndarray, float]:
    """The grid turned so its notch is at the bottom (row max), and the die aspect after the turn."""
    if notch not in _TURNS:
        raise ValueError(f"notch must be one of {NOTCHES}, got {notch!r}")
    turns = _TURNS[notch]
    if turns:
        grid = np.rot90(grid, turns)
        if turns % 2:
            die_aspect = 1.0 / die_aspect
    return np.ascontiguousarray(grid, dtype=np.int8), float(die_aspect)


def infer_die_aspect(grid: np.ndarray) -> float:
    """Die width / die height that makes the dies' outline round (a wafer is a disc).

    For maps that come without die sizes (WM-811K): a 37 x 55 grid of a round wafer
    has dies 37/55 as wide as they are tall.
    """
    valid = (grid == 0) | (grid == 1)
    if not valid.any():
        return 1.0
    r = np.flatnonzero(valid.any(axis=1))
    c = np.flatnonzero(valid.any(axis=0))
    return float((r[-1] - r[0] + 1) / (c[-1] - c[0] + 1))


def wafer_geometry(grid: np.ndarray, die_aspect: float = 1.0, notch: str = "down") -> WaferGeometry:
    if not np.isfinite(die_aspect) or die_aspect <= 0:
        raise ValueError(f"die_aspect must be a positive number, got {die_aspect!r}")
    g = np.asarray(grid)
    if g.ndim != 2:
        raise ValueError(f"grid must be 2-D (rows, cols), got shape {g.shape}")
    g, aspect = notch_down(g, die_aspect, notch)
    valid = (g == 0) | (g == 1)
    rows, cols = np.nonzero(valid)
    depth_grid = edge_depth(g)
    if rows.size == 0:
        e = np.zeros(0)
        return WaferGeometry(g, aspect, rows, cols, np.zeros(0, bool), e, e, e, e,
                             np.zeros(0, np.int32), (0.0, 0.0), 0.0)
    cy = (rows.min() + rows.max()) / 2.0
    cx = (cols.min() + cols.max()) / 2.0
    half_h = (rows.max() - rows.min() + 1) / 2.0
    half_w = (cols.max() - cols.min() + 1) / 2.0 * aspect
    rw = max(half_h, half_w)
    y = (rows - cy) / rw
    x = (cols - cx) * aspect / rw
    return WaferGeometry(
        grid=g, die_aspect=aspect, rows=rows, cols=cols, fail=g[rows, cols] == 1,
        x=x, y=y, radius=np.hypot(x, y), angle=np.arctan2(y, x),
        depth=depth_grid[rows, cols], centre=(cy, cx), radius_dies=rw,
    )


def rasterise(geo: WaferGeometry, size: int) -> np.ndarray:
    """Fail density on a size x size raster over [-1, 1]^2 (notch down), NaN where no die.

    A cell holding die centres takes their fail fraction (large grids: an area
    average); a cell between die centres (small grids) takes the die it falls on.
    """
    out = np.full((size, size), np.nan, dtype=np.float32)
    if geo.x.size == 0:
        return out
    ix = np.clip(((geo.x + 1.0) * 0.5 * size).astype(np.int64), 0, size - 1)
    iy = np.clip(((geo.y + 1.0) * 0.5 * size).astype(np.int64), 0, size - 1)
    cell = iy * size + ix
    count = np.bincount(cell, minlength=size * size)
    fails = np.bincount(cell, weights=geo.fail.astype(np.float64), minlength=size * size)
    flat = out.reshape(-1)
    has = count > 0
    flat[has] = fails[has] / count[has]
    holes = np.flatnonzero(~has)
    if holes.size:
        u = ((holes % size) + 0.5) / size * 2.0 - 1.0
        v = ((holes // size) + 0.5) / size * 2.0 - 1.0
        cy, cx = geo.centre
        r = np.rint(v * geo.radius_dies + cy).astype(np.int64)
        c = np.rint(u * geo.radius_dies / geo.die_aspect + cx).astype(np.int64)
        rows, cols = geo.grid.shape
        inside = (r >= 0) & (r < rows) & (c >= 0) & (c < cols)
        val = np.full(holes.size, -1, dtype=np.int64)
        val[inside] = geo.grid[r[inside], c[inside]]
        die = (val == 0) | (val == 1)
        flat[holes[die]] = val[die]
    return out
