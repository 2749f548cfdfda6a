"""The day's worst wafers at a glance: one PNG, a grid of small maps, for the UI.

Each tile is the latest test event of one of the day's lowest-yield wafers (both
sources; wafers without dies have no yield and are left out), drawn in the wafer maps'
own bin colours (``maps/palette.py``: a bin has the same colour here as on its full
map), and labelled with its wafer token and yield. Below the tiles, the legend: the
bins drawn, most dies first, each with its colour, number, name where the file names
it, and whether it passes. The image is a preview, not an output file: it is rebuilt
from the day's committed dies on every materialization and lives in the asset's
metadata only (kept small: a few tens of KB).

Die coordinates come from untrusted files, so a tile never allocates more than its own
pixels: a wafer wider than the tile is sampled (each pixel shows the last die falling
in it), whatever its span.
"""

from __future__ import annotations

import io
import math

import numpy as np
import polars as pl
from PIL import Image, ImageDraw, ImageFont

from failmap_assets.maps.palette import bin_colors

#: How many wafers the grid shows, and in how many columns.
WORST_WAFERS = 12
COLUMNS = 4
#: A tile's map area (pixels, square) and the label lines above it.
TILE = 112
_LABEL_H, _PAD, _LEGEND_ROW, _LEGEND_COLUMNS, _LEGEND_MAX = 28, 8, 14, 3, 24
_BACKGROUND, _NO_DIE, _TEXT = (255, 255, 255), (236, 236, 236), (0, 0, 0)
#: The tile is drawn in this many pixels per die at most (a 3-die wafer is not a blob).
_MAX_BLOCK = 16


def worst_events(wafers: pl.DataFrame, top: int = WORST_WAFERS) -> pl.DataFrame:
    """The ``top`` lowest-yield latest events of ``wafers`` (a wafer_summary), lowest
    first; ties by source and wafer token."""
    return (wafers.filter(pl.col("latest") & (pl.col("dies") > 0))
            .sort(["yield_pct", "source", "wafer_token"]).head(top))


def worst_wafers_grid(wafers: pl.DataFrame, dies: pl.DataFrame, top: int = WORST_WAFERS) -> bytes | None:
    """The PNG grid of the ``top`` worst wafers (see the module docstring), or None when
    the day has no wafer with dies. ``wafers`` is the day's wafer_summary, ``dies`` the
    summaries' die input (``source, wafer_token, object_key, x, y, bin, pass``)."""
    worst = worst_events(wafers, top)
    if not worst.height:
        return None
    font = ImageFont.load_default()
    rows = -(-worst.height // COLUMNS)
    cols = min(COLUMNS, worst.height)
    tile_w, tile_h = TILE + _PAD, TILE + _LABEL_H + _PAD
    legend = _legend_rows(worst)
    legend_h = _LEGEND_ROW * (-(-len(legend) // _LEGEND_COLUMNS)) + 2 * _PAD
    width = max(cols * tile_w + _PAD, _LEGEND_COLUMNS * 200)
    img = Image.new("RGB", (width, rows * tile_h + _PAD + legend_h), _BACKGROUND)
    draw = ImageDraw.Draw(img)
    keys = ["source", "wafer_token", "object_key"]
    wanted = worst.select(keys)
    by_event = {k: g for k, g in dies.join(wanted, on=keys, how="semi").group_by(keys)}
    for n, event in enumerate(worst.iter_rows(named=True)):
        left, top_px = _PAD + (n % COLUMNS) * tile_w, _PAD + (n // COLUMNS) * tile_h
        draw.text((left, top_px), _fit(event["wafer_token"], TILE), fill=_TEXT, font=font)
        draw.text((left, top_px + 13), f"{event['yield_pct']:.2f}% of {event['dies']}", fill=_TEXT, font=font)
        rows_of = by_event.get((event["source"], event["wafer_token"], event["object_key"]))
        if rows_of is not None:
            img.paste(Image.fromarray(_tile(rows_of)), (left, top_px + _LABEL_H))
    y = rows * tile_h + _PAD
    draw.text((_PAD, y), "bins (most dies first)", fill=_TEXT, font=font)
    for n, (bin_no, name, passes, rgb) in enumerate(legend):
        x0, y0 = _PAD + (n % _LEGEND_COLUMNS) * 200, y + _PAD + 6 + (n // _LEGEND_COLUMNS) * _LEGEND_ROW
        draw.rectangle([x0, y0 + 1, x0 + 10, y0 + 11], fill=rgb, outline=_TEXT)
        text = f"{bin_no} {'pass' if passes else 'fail'}{f' {name}' if name else ''}"
        draw.text((x0 + 16, y0), _fit(text, 180), fill=_TEXT, font=font)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _legend_rows(worst: pl.DataFrame) -> list[tuple[int, str | None, bool, tuple[int, int, int]]]:
    """The bins on the tiles, most dies first: (bin, name, pass, colour)."""
    bins = (worst.select("bins").explode("bins").unnest("bins").drop_nulls("bin")
            .group_by("bin", "pass").agg(pl.col("name").drop_nulls().first(), pl.col("dies").sum())
            .sort(["dies", "bin"], descending=[True, False]).head(_LEGEND_MAX))
    colours = bin_colors(bins["bin"].to_numpy(), bins["pass"].to_numpy()) if bins.height else []
    return [(b, name, bool(p), tuple(int(c) for c in rgb))
            for (b, name, p), rgb in zip(bins.select("bin", "name", "pass").iter_rows(), colours)]


def _tile(dies: pl.DataFrame) -> np.ndarray:
    """One wafer's map, ``TILE`` x ``TILE`` RGB, centred, square dies."""
    x = dies["x"].to_numpy().astype(np.int64)
    y = dies["y"].to_numpy().astype(np.int64)
    rgb = bin_colors(dies["bin"].to_numpy().astype(np.int64), dies["pass"].to_numpy().astype(bool))
    w, h = int(x.max() - x.min()) + 1, int(y.max() - y.min()) + 1
    scale = min(TILE / w, TILE / h, _MAX_BLOCK)   # pixels per die (below 1: sampled)
    size_w, size_h = max(1, int(w * scale)), max(1, int(h * scale))
    pixels = np.empty((TILE, TILE, 3), dtype=np.uint8)
    pixels[:] = _BACKGROUND
    area = np.empty((size_h, size_w, 3), dtype=np.uint8)
    area[:] = _NO_DIE
    cols = np.minimum(((x - x.min()) * scale).astype(np.int64), size_w - 1)
    rows = np.minimum(((y - y.min()) * scale).astype(np.int64), size_h - 1)
    # a block per die, rounded up so a fractional scale leaves no gap between dies (at
    # most _MAX_BLOCK**2 passes over the dies)
    block = max(1, math.ceil(scale))
    for dy in range(block):
        for dx in range(block):
            area[np.minimum(rows + dy, size_h - 1), np.minimum(cols + dx, size_w - 1)] = rgb
    top, left = (TILE - size_h) // 2, (TILE - size_w) // 2
    pixels[top:top + size_h, left:left + size_w] = area
    return pixels


def _fit(text: str, width_px: int) -> str:
    """``text`` cut to about ``width_px`` of the default font (6 px a character)."""
    room = max(width_px // 6, 4)
    return text if len(text) <= room else text[: room - 2] + ".."
