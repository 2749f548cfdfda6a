"""WaferMap -> palette-mode PNG wafer map (and the grid that locates dies in it).

Layout (the contract in shared/docs/failmap-format.md): die (x_abs, y_abs) is the
``pixels_per_die`` square whose top-left pixel is column ``(x_abs - x_min) * ppd``,
row ``(y_abs - y_min) * ppd``. The grid is the dies' bounding box plus ONE extra
die row/column on the notch/flat side only; that margin lane never holds a die, and
the notch marker (a dark bar, centred, about a fifth of the side) is drawn in it.
Growing the grid instead of painting over dies keeps the formula exact for every
flat side and never hides a die.

Palette per image: index 0 = no die (transparent via tRNS), 1 = notch marker,
2.. = one index per distinct bin on this wafer with its stable colour from
``palette``. A palette holds at most 256 colours, so a wafer with more than 254
distinct bins keeps the 254 most frequent bins (ties: lower bin first) exact and
draws each rarer bin with the kept colour nearest to its own stable colour (RGB
distance, preferring a bin with the same pass/fail verdict). The JSON and the
legend still carry every die's exact bin.
"""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

from failmap_assets.wafer.model import WaferMap
from failmap_assets.maps.palette import NO_DIE_RGBA, NOTCH_RGB, bin_colors

NO_DIE_INDEX = 0
NOTCH_INDEX = 1
FIRST_BIN_INDEX = 2
MAX_BIN_COLORS = 256 - FIRST_BIN_INDEX
# Die coordinates come from untrusted files: one stray die at x=10**6 must not make
# us allocate gigabytes. 64 Mpx is far above any real wafer (120k dies at 4 px/die
# is about 2.6 Mpx).
MAX_IMAGE_PIXELS = 64 * 1024 * 1024


def bin_summary(wafer: WaferMap) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Distinct bins of the wafer: ``(bins, pass_flags, die_counts, inverse)``.

    ``inverse`` maps each die to its position in ``bins``. Pass/fail is decided once
    per distinct bin (``WaferMap.is_pass`` loops over BINDEFs, too slow per die).
    """
    b = np.asarray(wafer.bin, dtype=np.int64).reshape(-1)
    if len(b) and 0 <= b.min() and b.max() < (1 << 20):
        # Bins are small non-negative integers: a counting pass and a lookup table
        # are several times faster than np.unique's sort.
        all_counts = np.bincount(b)
        bins = np.flatnonzero(all_counts)
        lookup = np.zeros(len(all_counts), dtype=np.int64)
        lookup[bins] = np.arange(len(bins))
        counts, inverse = all_counts[bins], lookup[b]
    else:
        bins, inverse, counts = np.unique(b, return_inverse=True, return_counts=True)
    return bins, wafer.is_pass(bins), counts, inverse.reshape(-1)


def grid_for(wafer: WaferMap, pixels_per_die: int = 4) -> dict:
    """The JSON ``grid``: die bounding box plus one margin die on the flat side."""
    ppd = _check_ppd(pixels_per_die)
    if wafer.die_count:
        x_min, x_max = int(np.min(wafer.x)), int(np.max(wafer.x))
        y_min, y_max = int(np.min(wafer.y)), int(np.max(wafer.y))
    else:
        # An empty wafer still gets a valid image: one (empty) die cell at the origin
        # plus the margin lane holding the notch marker.
        x_min = x_max = y_min = y_max = 0
    if wafer.flat == "D":
        y_max += 1
    elif wafer.flat == "U":
        y_min -= 1
    elif wafer.flat == "L":
        x_min -= 1
    else:  # "R" (WaferMap validates the side)
        x_max += 1
    return {"x_min": x_min, "x_max": x_max, "y_min": y_min, "y_max": y_max, "pixels_per_die": ppd}


def render_wafer_png(wafer: WaferMap, pixels_per_die: int = 4, *, max_pixels: int = MAX_IMAGE_PIXELS) -> bytes:
    """The wafer map PNG: mode P, ``pixels_per_die`` square pixels per die."""
    grid = grid_for(wafer, pixels_per_die)
    ppd = grid["pixels_per_die"]
    cells, palette = _die_cells(wafer, grid, max_pixels=max_pixels)
    h, w = cells.shape
    # Upscale with one broadcast copy instead of a loop per die (reshaping the
    # broadcast view forces the copy; with ppd 1 it would stay a read-only view).
    pixels = cells if ppd == 1 else np.broadcast_to(cells[:, None, :, None], (h, ppd, w, ppd)).reshape(h * ppd, w * ppd)
    _draw_notch(pixels, wafer.flat, lane_px=ppd)
    return _encode(pixels, palette)


def render_thumbnail_png(wafer: WaferMap, max_px: int = 96) -> bytes:
    """A small palette PNG for markdown previews; its long side is at most ``max_px``.

    Uses the largest whole ``pixels_per_die`` (at least 1) that fits. A wafer wider
    than ``max_px`` dies is sampled nearest-neighbour (first and last die rows/columns
    always kept, so the margin lane and its notch marker survive); a preview only,
    the full PNG and the JSON remain exact.
    """
    max_px = int(max_px)
    if max_px < 1:
        raise ValueError("max_px must be at least 1")
    grid = grid_for(wafer, 1)
    cells, palette = _die_cells(wafer, grid, max_pixels=MAX_IMAGE_PIXELS)
    h, w = cells.shape
    ppd = max(1, max_px // max(h, w))
    if max(h, w) * ppd <= max_px:
        rows = np.repeat(np.arange(h), ppd)
        cols = np.repeat(np.arange(w), ppd)
        lane = ppd
    else:
        scale = max_px / max(h, w)
        rows = np.rint(np.linspace(0, h - 1, max(1, round(h * scale)))).astype(np.int64)
        cols = np.rint(np.linspace(0, w - 1, max(1, round(w * scale)))).astype(np.int64)
        lane = 1
    pixels = np.ascontiguousarray(cells[np.ix_(rows, cols)])
    _draw_notch(pixels, wafer.flat, lane_px=lane)
    return _encode(pixels, palette, compress_level=9)


def png_data_uri(png_bytes: bytes) -> str:
    """``data:`` URI for embedding a PNG in markdown / HTML metadata."""
    return "data:image/png;base64," + base64.b64encode(png_bytes).decode("ascii")


def _check_ppd(pixels_per_die: int) -> int:
    ppd = int(pixels_per_die)
    if ppd != pixels_per_die or ppd < 1:
        raise ValueError(f"pixels_per_die must be a positive integer, not {pixels_per_die!r}")
    return ppd


def _die_cells(wafer: WaferMap, grid: dict, *, max_pixels: int) -> tuple[np.ndarray, bytes]:
    """One palette index per grid cell (die units) and the image's RGB palette bytes."""
    w = grid["x_max"] - grid["x_min"] + 1
    h = grid["y_max"] - grid["y_min"] + 1
    ppd = grid["pixels_per_die"]
    if w * h * ppd * ppd > max_pixels:
        raise ValueError(
            f"wafer map would be {w * ppd} x {h * ppd} pixels (limit {max_pixels}); "
            f"die coordinates span x {grid['x_min']}..{grid['x_max']}, y {grid['y_min']}..{grid['y_max']}"
        )
    cells = np.zeros((h, w), dtype=np.uint8)
    palette = bytearray(NO_DIE_RGBA[:3]) + bytearray(NOTCH_RGB)
    if wafer.die_count:
        bins, passed, counts, inverse = bin_summary(wafer)
        colors = bin_colors(bins, passed)
        slot = _palette_slots(colors, passed, counts)
        kept = np.flatnonzero(slot == np.arange(len(slot)))  # bins that own their index
        index_of = np.zeros(len(bins), dtype=np.int64)
        index_of[kept] = FIRST_BIN_INDEX + np.arange(len(kept))
        index_of = index_of[slot]
        palette += colors[kept].tobytes()
        # int64 offsets: coordinates are int32 and a span could overflow int32.
        cols = np.asarray(wafer.x, dtype=np.int64) - grid["x_min"]
        rows = np.asarray(wafer.y, dtype=np.int64) - grid["y_min"]
        cells[rows, cols] = index_of[inverse].astype(np.uint8)
    return cells, bytes(palette)


def _palette_slots(colors: np.ndarray, passed: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """For each distinct bin, the distinct bin whose palette entry it is drawn with.

    Normally itself; beyond ``MAX_BIN_COLORS`` bins, the rarest map to the nearest
    kept colour with the same pass/fail verdict (so a rare pass bin stays green),
    or the nearest kept colour at all if no bin with that verdict was kept.
    """
    n = len(colors)
    slot = np.arange(n)
    if n <= MAX_BIN_COLORS:
        return slot
    # Most dies first; bins are sorted ascending, so a stable sort breaks ties by bin.
    order = np.argsort(-counts, kind="stable")
    keep = np.sort(order[:MAX_BIN_COLORS])
    extra = np.sort(order[MAX_BIN_COLORS:])
    kept_rgb = colors[keep].astype(np.int32)
    for start in range(0, len(extra), 4096):  # chunks bound the distance matrix size
        chunk = extra[start : start + 4096]
        d = ((colors[chunk].astype(np.int32)[:, None, :] - kept_rgb[None, :, :]) ** 2).sum(axis=2)
        # Any same-verdict colour beats any other-verdict one (max RGB distance is 3 * 255**2).
        d += (passed[chunk][:, None] != passed[keep][None, :]) * (3 * 255**2 + 1)
        slot[chunk] = keep[np.argmin(d, axis=1)]
    return slot


def _draw_notch(pixels: np.ndarray, flat: str, *, lane_px: int) -> None:
    """Paint the notch bar in the margin lane on the ``flat`` side (in place)."""
    h, w = pixels.shape
    side = w if flat in ("U", "D") else h
    length = min(side, max(lane_px, round(side / 5)))
    start = (side - length) // 2
    bar = slice(start, start + length)
    if flat == "D":
        pixels[h - lane_px :, bar] = NOTCH_INDEX
    elif flat == "U":
        pixels[:lane_px, bar] = NOTCH_INDEX
    elif flat == "L":
        pixels[bar, :lane_px] = NOTCH_INDEX
    else:
        pixels[bar, w - lane_px :] = NOTCH_INDEX


def _encode(pixels: np.ndarray, palette: bytes, *, compress_level: int = 6) -> bytes:
    h, w = pixels.shape
    img = Image.frombytes("P", (w, h), pixels.tobytes())
    img.putpalette(palette, rawmode="RGB")
    buf = io.BytesIO()
    # transparency=0 writes a tRNS chunk making palette index 0 (no die) transparent.
    img.save(buf, format="PNG", transparency=NO_DIE_INDEX, compress_level=compress_level)
    return buf.getvalue()
