"""Stacked lot maps: how often each die position fails over a lot's wafers.

From the merged dies (``merged.py``: each wafer's final result per die), per source,
lot and step: at each die position, how many wafers have a die there, how many of
them fail, and the fail rate. A position that fails on many wafers of a lot points at
the process or the probe card, not at one wafer.

The heat map is an RGBA PNG on the same grid as the wafer maps (x grows to the
right, y downward, ``pixels_per_die`` square pixels per die, no-die cells
transparent). Colours come from ``RAMP``, a fixed viridis-like table: dark blue-purple
at fail rate 0 to yellow at 1, perceptually ordered and readable by colour-blind
users; a rate between two stops is interpolated linearly (and rounded), so a colour
means the same rate on every lot and day. The legend is data in the JSON beside it.
"""

from __future__ import annotations

import io

import numpy as np
import polars as pl
from PIL import Image

from failmap_assets.maps.palette import NO_DIE_RGBA, rgb_hex
from failmap_assets.yield_view.summaries import schema_of

#: A lot map: one per source, lot and step.
LOT_MAP = ["source", "lot", "step"]

STACKED_LOT_MAPS_COLUMNS: dict[str, tuple[pl.DataType, str]] = {
    "source": (pl.String, "failmap or stdf"),
    "lot": (pl.String, "lot id"),
    "step": (pl.String, "test step"),
    "x": (pl.Int32, "die x"),
    "y": (pl.Int32, "die y"),
    "wafers": (pl.Int64, "wafers of the lot with a die at this position (merged result per wafer)"),
    "fails": (pl.Int64, "of those, wafers where the die fails"),
    "fail_rate": (pl.Float64, "fails / wafers (0..1)"),
}

#: Fail rate 0, 0.1, ..., 1 -> colour: samples of matplotlib's viridis, written out
#: so the colours never depend on a plotting library's version.
RAMP = (
    (68, 1, 84), (72, 36, 117), (65, 68, 135), (53, 95, 141), (42, 120, 142), (33, 145, 140),
    (34, 168, 132), (68, 191, 112), (122, 209, 81), (189, 223, 38), (253, 231, 37),
)
_RAMP = np.array(RAMP, dtype=np.float64)


def stacked_lot_maps(merged: pl.DataFrame) -> pl.DataFrame:
    """One row per die position of each lot map (``merged`` is a merged_dies table)."""
    out = merged.group_by([*LOT_MAP, "x", "y"]).agg(
        pl.col("wafer").n_unique().cast(pl.Int64).alias("wafers"),
        (~pl.col("pass")).sum().cast(pl.Int64).alias("fails"),
    ).with_columns((pl.col("fails") / pl.col("wafers")).alias("fail_rate"))
    return (out.select(list(STACKED_LOT_MAPS_COLUMNS)).cast(dict(schema_of(STACKED_LOT_MAPS_COLUMNS)))
            .sort([*LOT_MAP, "y", "x"], nulls_last=True))


def ramp_colors(rates: np.ndarray) -> np.ndarray:
    """The colour of each fail rate (0..1, clipped) as uint8 RGB, shape (n, 3)."""
    pos = np.clip(np.asarray(rates, dtype=np.float64), 0.0, 1.0) * (len(RAMP) - 1)
    low = np.minimum(np.floor(pos).astype(np.int64), len(RAMP) - 2)
    frac = (pos - low)[:, None]
    return np.rint(_RAMP[low] * (1 - frac) + _RAMP[low + 1] * frac).astype(np.uint8)


def lot_map_grid(rows: pl.DataFrame, pixels_per_die: int) -> dict:
    """The grid of one lot map, as the wafer JSON's ``grid``."""
    return {"x_min": int(rows["x"].min()), "x_max": int(rows["x"].max()), "y_min": int(rows["y"].min()),
            "y_max": int(rows["y"].max()), "pixels_per_die": pixels_per_die}


def render_lot_map_png(rows: pl.DataFrame, pixels_per_die: int = 4) -> bytes:
    """The heat map of one lot map's rows (a stacked_lot_maps slice with at least one row)."""
    g = lot_map_grid(rows, pixels_per_die)
    w, h = g["x_max"] - g["x_min"] + 1, g["y_max"] - g["y_min"] + 1
    cells = np.empty((h, w, 4), dtype=np.uint8)
    cells[:] = NO_DIE_RGBA
    cols = rows["x"].to_numpy().astype(np.int64) - g["x_min"]
    lines = rows["y"].to_numpy().astype(np.int64) - g["y_min"]
    cells[lines, cols, :3] = ramp_colors(rows["fail_rate"].to_numpy())
    cells[lines, cols, 3] = 255
    pixels = np.repeat(np.repeat(cells, pixels_per_die, axis=0), pixels_per_die, axis=1)
    buf = io.BytesIO()
    # fixed settings and no metadata: the same rows always give the same bytes
    Image.fromarray(pixels, "RGBA").save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def lot_map_json(rows: pl.DataFrame, pixels_per_die: int = 4) -> dict:
    """What sits beside the PNG: which lot map it is, its grid and the colour key."""
    first = rows.row(0, named=True)
    return {
        "source": first["source"], "lot": first["lot"], "step": first["step"],
        "wafers": int(rows["wafers"].max()), "dies": rows.height,
        "fail_rate_min": float(rows["fail_rate"].min()), "fail_rate_max": float(rows["fail_rate"].max()),
        "grid": lot_map_grid(rows, pixels_per_die),
        "legend": [{"fail_rate": round(i / (len(RAMP) - 1), 6), "rgb": rgb_hex(c)} for i, c in enumerate(RAMP)],
        "legend_rule": "linear between consecutive legend entries, rounded to the nearest integer",
    }
