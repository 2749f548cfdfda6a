"""WaferMap -> palette-mode PNG wafer map (and the grid that locates dies in it).

Layout (the contract in shared/docs/failmap-format.md): die (x_abs, y_abs) is the
``pixels_per_die`` square whose top-left pixel is column ``(x_abs - x_min) * ppd``,
row ``(y_abs - y_min) * ppd``. The grid is the dies' bounding box plus ONE extra
die row/column on the notch/flat side only; that margin lane never holds a die, and
the notch mark (a dark wedge centred on that side, its base about a fifth of the
side on the image edge, narrowing towards the wafer) is drawn in it.
Growing the grid instead of painting over dies keeps the formula exact for every
flat side and never hides a die.

Palette per image: index 0 = no die (transparent via tRNS), 1 = notch marker,
2.. = one index per distinct bin on this wafer with its stable colour from
``palette``. A palette holds at most 256 colours, so a wafer with more than 254
distinct bins keeps the 254 most frequent bins (ties: lower bin first) exact and
draws each rarer bin with the kept colour nearest to its own stable colour (RGB
distance, preferring a bin with the same pass/fail verdict). The JSON and the
legend still carry every die's exact bin.

Size: die coordinates come from untrusted files, so the grid can be anything from
one die to 2**32 x 2**32 cells. ``png_scale`` decides, before anything is
allocated, the pixels per die the PNG gets: the requested number if the image fits
``MAX_IMAGE_PIXELS``, else the largest smaller whole number that fits, else None:
``render_wafer_png`` then raises ``MapTooLarge`` and the caller writes no PNG
(the JSON, which ``coordinates.wafer_json`` writes with the same decision in its
``grid`` and ``png`` fields, and the die rows are kept). Grid extents are Python
ints, never int32, so spans at the int32 extremes are exact.

Empty wafers (``DIES 0``, which the contract tolerates): nothing to draw, so no PNG.
``no_png`` is the one decision for both cases: ``render_wafer_png`` raises
``EmptyWafer`` like ``MapTooLarge``, and the JSON (``png_fields``) says
``"written": false`` with the reason; its ``grid`` is then one (empty) cell at the
origin plus the margin lane, so its fields keep their types, and its ``chips`` is
empty. Each refusal carries the ``reason`` code of the warning the pipelines record.
"""

from __future__ import annotations

import base64
import io
import math

import numpy as np
from PIL import Image

from failmap_assets.wafer.model import WaferMap
from failmap_assets.maps.palette import NO_DIE_RGBA, NOTCH_RGB, bin_colors

NO_DIE_INDEX = 0
NOTCH_INDEX = 1
FIRST_BIN_INDEX = 2
MAX_BIN_COLORS = 256 - FIRST_BIN_INDEX
# Die coordinates come from untrusted files: one stray die at x=10**6 must not make
# us allocate gigabytes. 64 Mpx (64 MB of palette indices) is far above any real
# wafer (120k dies at 4 px/die is about 2.6 Mpx; at 20 px/die still fits), and
# below Pillow's own decompression-bomb warning (Image.MAX_IMAGE_PIXELS, ~89 Mpx),
# so a reader opening our PNG with Pillow gets no warning.
MAX_IMAGE_PIXELS = 64 * 1024 * 1024


class MapTooLarge(ValueError):
    """The wafer map does not fit ``max_pixels`` even at 1 pixel per die: no PNG.

    ``width`` and ``height`` are the grid in dies (margin lane included).
    """

    reason = "png_too_large"

    def __init__(self, grid: dict, max_pixels: int | None = None):
        self.width, self.height = _grid_cells(grid)
        self.max_pixels = _limit(max_pixels)
        self.grid = dict(grid)
        super().__init__(
            f"wafer map would be {self.width} x {self.height} pixels even at 1 pixel per die "
            f"({self.width * self.height} pixels, limit {self.max_pixels}); die coordinates span "
            f"x {grid['x_min']}..{grid['x_max']}, y {grid['y_min']}..{grid['y_max']} (margin lane included)"
        )


class EmptyWafer(ValueError):
    """The wafer has no dies (``DIES 0``): no PNG; the JSON is still written."""

    reason = "empty_wafer"

    def __init__(self):
        super().__init__("empty wafer (no dies): nothing to draw, no PNG")


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
        # An empty wafer gets no PNG (``no_png``); its JSON grid still needs integers:
        # one (empty) cell at the origin plus the margin lane.
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


def png_scale(wafer: WaferMap, requested_ppd: int = 4, max_pixels: int | None = None) -> int | None:
    """Pixels per die of the wafer's PNG: ``requested_ppd`` if the image fits
    ``max_pixels``, else the largest smaller whole number that fits, else None (even
    1 pixel per die is over the limit, or an empty wafer: no PNG, see ``no_png``).
    Cheap: no image is allocated."""
    if no_png(wafer, requested_ppd, max_pixels) is not None:
        return None
    return _scale(grid_for(wafer, requested_ppd), max_pixels)


def too_large(wafer: WaferMap, requested_ppd: int = 4, max_pixels: int | None = None) -> MapTooLarge | None:
    """The MapTooLarge ``render_wafer_png`` would raise for the wafer's size, or None
    when it fits (``no_png`` adds the empty wafer). Cheap: no image is allocated."""
    grid = grid_for(wafer, requested_ppd)
    return MapTooLarge(grid, max_pixels) if _scale(grid, max_pixels) is None else None


def no_png(wafer: WaferMap, requested_ppd: int = 4, max_pixels: int | None = None) -> EmptyWafer | MapTooLarge | None:
    """Why the wafer gets no PNG (the exception ``render_wafer_png`` would raise), or
    None when it gets one. Cheap: nothing is drawn."""
    if not wafer.die_count:
        return EmptyWafer()
    return too_large(wafer, requested_ppd, max_pixels)


def png_fields(wafer: WaferMap, requested_ppd: int = 4, max_pixels: int | None = None) -> tuple[dict, dict]:
    """The JSON's ``grid`` and ``png`` fields for the PNG ``render_wafer_png`` writes
    with these arguments (same decision as ``png_scale``).

    ``grid.pixels_per_die`` is the PNG's real scale (the requested one when no PNG
    can be written). ``png`` is ``{"written", "pixels_per_die", "reason"}``:
    ``reason`` is None when the PNG has the requested scale, else why it was reduced
    or not written.
    """
    grid = grid_for(wafer, requested_ppd)
    ppd = grid["pixels_per_die"]
    refused = no_png(wafer, requested_ppd, max_pixels)
    if refused is not None:
        return grid, {"written": False, "pixels_per_die": None, "reason": str(refused)}
    scale = _scale(grid, max_pixels)
    reason = None
    if scale != ppd:
        w, h = _grid_cells(grid)
        reason = (
            f"reduced from {ppd} to {scale} pixels per die: at {ppd} the map would be "
            f"{w * ppd} x {h * ppd} pixels (limit {_limit(max_pixels)})"
        )
        grid["pixels_per_die"] = scale
    return grid, {"written": True, "pixels_per_die": scale, "reason": reason}


def render_wafer_png(wafer: WaferMap, pixels_per_die: int = 4, *, max_pixels: int | None = None) -> bytes:
    """The wafer map PNG: mode P, ``png_scale(wafer, pixels_per_die, max_pixels)``
    square pixels per die; raises what ``no_png`` returns (before allocating):
    ``EmptyWafer`` for a wafer without dies, ``MapTooLarge`` when even 1 pixel per
    die exceeds ``max_pixels``."""
    refused = no_png(wafer, pixels_per_die, max_pixels)
    if refused is not None:
        raise refused
    grid = grid_for(wafer, pixels_per_die)
    ppd = _scale(grid, max_pixels)
    cells, palette = _die_cells(wafer, grid)
    h, w = cells.shape
    # Upscale with one broadcast copy instead of a loop per die (reshaping the
    # broadcast view forces the copy; with ppd 1 it would stay a read-only view).
    pixels = cells if ppd == 1 else np.broadcast_to(cells[:, None, :, None], (h, ppd, w, ppd)).reshape(h * ppd, w * ppd)
    _draw_notch(pixels, wafer.flat, lane_px=ppd)
    return _encode(pixels, palette)


#: The true-aspect map's longer die side is at most this many times its shorter one:
#: DIE_SIZE comes from untrusted files, and real dies are well within it.
MAX_DIE_ASPECT = 16.0


def die_stretch(wafer: WaferMap) -> tuple[float, float]:
    """How much wider (x) and taller (y) than the contract's square a die is drawn on the
    true-aspect map: the shorter side of ``DIE_SIZE`` stays 1, the longer is its ratio
    (at most ``MAX_DIE_ASPECT``); ``(1, 1)`` without a usable die size."""
    size = wafer.die_size
    if not size:
        return 1.0, 1.0
    w, h = float(size[0]), float(size[1])
    if not (math.isfinite(w) and math.isfinite(h) and w > 0 and h > 0):
        return 1.0, 1.0
    ratio = min(max(h / w, 1 / MAX_DIE_ASPECT), MAX_DIE_ASPECT)
    return (1.0, ratio) if ratio >= 1 else (1 / ratio, 1.0)


def render_true_aspect_png(wafer: WaferMap, pixels_per_die: int = 4, *, max_pixels: int | None = None,
                           contract_png: bytes | None = None) -> bytes:
    """The wafer map drawn with each die as wide and tall as ``DIE_SIZE`` says, so a
    round wafer of rectangular dies looks round. Written beside the contract PNG (whose
    square dies keep the contract's pixel formula); same palette, transparency and notch
    wedge, the shorter die side at the contract PNG's pixels per die. Where that would
    exceed ``max_pixels`` both sides shrink together (sampled below one pixel per die).
    Refuses exactly what ``render_wafer_png`` refuses (``no_png``); with square dies or
    without a die size it is the contract PNG, byte for byte (``contract_png``, the PNG
    ``render_wafer_png`` drew with the same arguments, is then returned as it is: no
    second drawing)."""
    refused = no_png(wafer, pixels_per_die, max_pixels)
    if refused is not None:
        raise refused
    stretch_x, stretch_y = die_stretch(wafer)
    if (stretch_x, stretch_y) == (1.0, 1.0):
        return contract_png if contract_png is not None else render_wafer_png(wafer, pixels_per_die,
                                                                              max_pixels=max_pixels)
    grid = grid_for(wafer, pixels_per_die)
    ppd = _scale(grid, max_pixels)
    cells, palette = _die_cells(wafer, grid)
    h, w = cells.shape
    px_x, px_y = ppd * stretch_x, ppd * stretch_y
    limit = _limit(max_pixels)
    if round(w * px_x) * round(h * px_y) > limit:
        shrink = math.sqrt(limit / (w * px_x * h * px_y))
        px_x, px_y = px_x * shrink, px_y * shrink
    height = max(1, round(h * px_y))
    width = max(1, min(round(w * px_x), limit // height))   # rounding never takes it over the limit
    # each pixel shows the die cell under its centre
    col_of = np.minimum(((np.arange(width) + 0.5) * (w / width)).astype(np.int64), w - 1)
    row_of = np.minimum(((np.arange(height) + 0.5) * (h / height)).astype(np.int64), h - 1)
    pixels = np.ascontiguousarray(cells[row_of[:, None], col_of[None, :]])
    lane = {"D": row_of == h - 1, "U": row_of == 0, "L": col_of == 0, "R": col_of == w - 1}[wafer.flat]
    _draw_notch(pixels, wafer.flat, lane_px=max(1, int(lane.sum())))
    return _encode(pixels, palette)


def render_thumbnail_png(wafer: WaferMap, max_px: int = 96) -> bytes:
    """A small palette PNG for markdown previews; its long side is at most ``max_px``.

    Uses the largest whole ``pixels_per_die`` (at least 1) that fits. A wafer wider
    than ``max_px`` dies is sampled: evenly spaced die rows/columns, the first and
    last always kept (so the margin lane and its notch marker survive, in a pixel
    line of their own); each pixel shows the die nearest to its sample among the
    dies closer to that sample than to any other, so sparse dies far apart (a stray
    die at 2**31) still show. Built from the dies directly, never from a full grid:
    memory is bounded by the thumbnail, whatever the coordinates. A preview only,
    the full PNG and the JSON remain exact.
    """
    max_px = int(max_px)
    if max_px < 1:
        raise ValueError("max_px must be at least 1")
    grid = grid_for(wafer, 1)
    w, h = _grid_cells(grid)
    long_side = max(h, w)
    if long_side <= max_px:
        ppd = max_px // long_side
        rows, cols = np.arange(h, dtype=np.int64), np.arange(w, dtype=np.int64)
    else:
        ppd = 1
        rows, cols = _samples(h, max_px / long_side), _samples(w, max_px / long_side)
    small = np.zeros((len(rows), len(cols)), dtype=np.uint8)
    die_index, palette = _die_palette(wafer)
    if wafer.die_count:
        flat = wafer.flat
        i, di = _nearest_sample(rows, np.asarray(wafer.y, dtype=np.int64) - grid["y_min"], h, flat == "U", flat == "D")
        j, dj = _nearest_sample(cols, np.asarray(wafer.x, dtype=np.int64) - grid["x_min"], w, flat == "L", flat == "R")
        cell = i * len(cols) + j
        dist = np.maximum(di, dj)
        # Per pixel, the die nearest its sample (Chebyshev distance); ties: the later
        # die, as a retest replaces. Two unbuffered reductions, no sort.
        best = np.full(small.size, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(best, cell, dist)
        nearest = np.flatnonzero(dist == best[cell])
        winner = np.full(small.size, -1, dtype=np.int64)
        np.maximum.at(winner, cell[nearest], nearest)
        shown = np.flatnonzero(winner >= 0)
        small.reshape(-1)[shown] = die_index[winner[shown]]
    sh, sw = small.shape
    pixels = small if ppd == 1 else np.broadcast_to(small[:, None, :, None], (sh, ppd, sw, ppd)).reshape(sh * ppd, sw * ppd)
    _draw_notch(pixels, wafer.flat, lane_px=ppd)
    return _encode(pixels, palette, compress_level=9)


def _samples(n: int, scale: float) -> np.ndarray:
    """Evenly spaced cells ``0 .. n - 1`` (first and last kept), about ``n * scale`` of them."""
    count = max(min(n, 2), round(n * scale))
    return np.unique(np.rint(np.linspace(0, n - 1, count)).astype(np.int64))


def _nearest_sample(samples: np.ndarray, pos: np.ndarray, n: int, lane_first: bool, lane_last: bool) -> tuple[np.ndarray, np.ndarray]:
    """For each position in ``0 .. n - 1``, the index of the nearest sample and the distance to it.

    The margin lane's sample (first or last cell) is never chosen: no die lies in the
    lane, and it keeps its own pixel line for the notch marker. ``samples`` are
    increasing int64, ``pos`` int64 (offsets within the grid, below 2**33).
    """
    lo = 1 if lane_first and len(samples) > 1 else 0
    hi = len(samples) - 1 if lane_last and len(samples) - lo > 1 else len(samples)
    cand = samples[lo:hi]
    if n <= max(4 * len(pos), 1 << 16):
        # A normal wafer: answer every cell of the axis once (a few hundred), then look up.
        index, dist = _nearest(cand, np.arange(n, dtype=np.int64))
        return index[pos] + lo, dist[pos]
    index, dist = _nearest(cand, pos)
    return index + lo, dist


def _nearest(cand: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    k = np.searchsorted(cand, pos)
    above = np.minimum(k, len(cand) - 1)
    below = np.maximum(k - 1, 0)
    d_above = np.abs(cand[above] - pos)
    d_below = np.abs(pos - cand[below])
    take_below = d_below <= d_above
    return np.where(take_below, below, above), np.where(take_below, d_below, d_above)


def png_data_uri(png_bytes: bytes) -> str:
    """``data:`` URI for embedding a PNG in markdown / HTML metadata."""
    return "data:image/png;base64," + base64.b64encode(png_bytes).decode("ascii")


def _check_ppd(pixels_per_die: int) -> int:
    ppd = int(pixels_per_die)
    if ppd != pixels_per_die or ppd < 1:
        raise ValueError(f"pixels_per_die must be a positive integer, not {pixels_per_die!r}")
    return ppd


def _grid_cells(grid: dict) -> tuple[int, int]:
    """``(width, height)`` of the grid in dies, as Python ints (no int32 overflow)."""
    return int(grid["x_max"]) - int(grid["x_min"]) + 1, int(grid["y_max"]) - int(grid["y_min"]) + 1


def _limit(max_pixels: int | None) -> int:
    """``max_pixels``, or ``MAX_IMAGE_PIXELS`` (read at call time) when None."""
    return MAX_IMAGE_PIXELS if max_pixels is None else int(max_pixels)


def _scale(grid: dict, max_pixels: int | None) -> int | None:
    """The largest pixels per die <= the grid's that keeps the image within ``max_pixels``, or None."""
    w, h = _grid_cells(grid)
    fit = math.isqrt(max(_limit(max_pixels), 0) // (w * h))   # largest s with s*s*w*h <= max_pixels
    scale = min(grid["pixels_per_die"], fit)
    return scale if scale >= 1 else None


def _die_palette(wafer: WaferMap) -> tuple[np.ndarray, bytes]:
    """The palette index of each die (uint8) and the image's RGB palette bytes."""
    palette = bytearray(NO_DIE_RGBA[:3]) + bytearray(NOTCH_RGB)
    if not wafer.die_count:
        return np.zeros(0, dtype=np.uint8), bytes(palette)
    bins, passed, counts, inverse = bin_summary(wafer)
    colors = bin_colors(bins, passed)
    slot = _palette_slots(colors, passed, counts)
    kept = np.flatnonzero(slot == np.arange(len(slot)))  # bins that own their index
    index_of = np.zeros(len(bins), dtype=np.int64)
    index_of[kept] = FIRST_BIN_INDEX + np.arange(len(kept))
    index_of = index_of[slot]
    palette += colors[kept].tobytes()
    return index_of[inverse].astype(np.uint8), bytes(palette)


def _die_cells(wafer: WaferMap, grid: dict) -> tuple[np.ndarray, bytes]:
    """One palette index per grid cell (die units) and the image's RGB palette bytes.

    Allocates the whole grid: the caller has checked its size (``_scale``).
    """
    w, h = _grid_cells(grid)
    cells = np.zeros((h, w), dtype=np.uint8)
    die_index, palette = _die_palette(wafer)
    if wafer.die_count:
        # int64 offsets: coordinates are int32 and a span could overflow int32.
        cols = np.asarray(wafer.x, dtype=np.int64) - grid["x_min"]
        rows = np.asarray(wafer.y, dtype=np.int64) - grid["y_min"]
        cells[rows, cols] = die_index
    return cells, palette


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
    """Paint the notch mark in the margin lane on the ``flat`` side (in place).

    A filled wedge centred on that side: its base lies on the image's outer edge
    (about a fifth of the side, at least twice the lane so the taper shows) and it
    narrows, row by row, towards the wafer, so it reads as a notch pointing at the
    wafer rather than as a stray line. It stays inside the lane (which holds no die).
    """
    h, w = pixels.shape
    side = w if flat in ("U", "D") else h
    base = min(side, max(2 * lane_px, round(side / 5)))
    # Half-width at each depth (0 = outer edge), shrinking linearly to about a
    # lane_px-th of the base at the lane's inner edge; never under half a pixel, so
    # every row of the lane keeps at least one marked pixel.
    depth = np.arange(lane_px)
    half = np.maximum(base / 2 * (lane_px - depth) / lane_px, 0.5)
    centre_dist = np.abs(np.arange(side) + 0.5 - side / 2)
    wedge = centre_dist[None, :] <= half[:, None]  # (lane_px, side), row 0 = outer edge
    if flat == "D":
        pixels[h - lane_px :][wedge[::-1]] = NOTCH_INDEX
    elif flat == "U":
        pixels[:lane_px][wedge] = NOTCH_INDEX
    elif flat == "L":
        pixels[:, :lane_px][wedge.T] = NOTCH_INDEX
    else:
        pixels[:, w - lane_px :][wedge[::-1].T] = NOTCH_INDEX


def _encode(pixels: np.ndarray, palette: bytes, *, compress_level: int = 6) -> bytes:
    h, w = pixels.shape
    img = Image.frombytes("P", (w, h), pixels.tobytes())
    img.putpalette(palette, rawmode="RGB")
    buf = io.BytesIO()
    # transparency=0 writes a tRNS chunk making palette index 0 (no die) transparent.
    img.save(buf, format="PNG", transparency=NO_DIE_INDEX, compress_level=compress_level)
    return buf.getvalue()
