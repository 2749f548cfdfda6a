"""Where a wafer map's flat is, read from the dies themselves.

A flat (or the notch region) cuts the wafer's outermost row straight on its side, so
the outermost row / column on that side holds more dies than the opposite one. The
readers' orientation conventions are checked against real files with this.
"""

from __future__ import annotations


def edge_lengths(wafer) -> dict[str, int]:
    """Dies in the outermost row / column on each side (U, D, L, R) of the drawn map."""
    x, y = wafer.x, wafer.y
    return {"U": int((y == y.min()).sum()), "D": int((y == y.max()).sum()),
            "L": int((x == x.min()).sum()), "R": int((x == x.max()).sum())}


def straight_side(wafer, ratio: float = 1.5) -> str | None:
    """The side whose edge is clearly the longest (``ratio`` times its opposite side and
    longer than the two others), or None when the map does not show one."""
    edges = edge_lengths(wafer)
    opposite = {"U": "D", "D": "U", "L": "R", "R": "L"}
    side = max(edges, key=edges.get)
    if edges[side] >= ratio * max(edges[opposite[side]], 1) and all(
            edges[side] > n for s, n in edges.items() if s != side):
        return side
    return None
