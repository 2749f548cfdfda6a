"""The worst-wafer grid on hand-made wafers: the lowest-yield latest events, worst first,
each tile in its bins' wafer-map colours, a legend of those bins, bounded whatever the
coordinates."""

from __future__ import annotations

import io

import numpy as np
import polars as pl
from PIL import Image

from failmap_assets.maps.palette import bin_rgb
from failmap_assets.yield_view import sources, worst_grid
from failmap_assets.yield_view.summaries import wafer_summary
from failmap_assets.yield_view.worst_grid import COLUMNS, TILE, worst_wafers_grid
from tests.yield_view.test_summaries import dies_frame, event, events_frame

NAMES = pl.DataFrame([{"source": "failmap", "wafer_token": "W3", "object_key": "k3", "bin": 7, "name": "OPEN"}],
                     schema=sources.BIN_NAMES_SCHEMA)
TILE_W, TILE_H = TILE + worst_grid._PAD, TILE + worst_grid._LABEL_H + worst_grid._PAD


def square(fail_bin: int, fails: int, side: int = 6) -> list[tuple[int, int, int, bool]]:
    """A side x side wafer whose first ``fails`` dies fail with ``fail_bin``, the rest pass (bin 1)."""
    cells = [(x, y) for y in range(side) for x in range(side)]
    return [(x, y, fail_bin if n < fails else 1, n >= fails) for n, (x, y) in enumerate(cells)]


def day(n_wafers: int):
    """Wafers W0.. with growing yield (W0 worst), fail bin 10 + n, plus two that must not
    show: an earlier (not latest) event of W1 at 0 % and an empty wafer."""
    events, dies = [], []
    for n in range(n_wafers):
        token, key = f"W{n}", f"k{n}"
        events.append(event(token, key))
        dies.append(dies_frame(square(10 + n if n != 3 else 7, 30 - 2 * n), token, key))
    events.append(event("W1", "k1-old", latest=False, hour=6))
    dies.append(dies_frame(square(99, 36), "W1", "k1-old"))
    events.append(event("EMPTY", "ke"))
    return events_frame(*events), pl.concat(dies)


def tile_colours(img: np.ndarray, n: int) -> set[tuple[int, int, int]]:
    left = worst_grid._PAD + (n % COLUMNS) * TILE_W
    top = worst_grid._PAD + (n // COLUMNS) * TILE_H + worst_grid._LABEL_H
    area = img[top:top + TILE, left:left + TILE].reshape(-1, 3)
    return {tuple(int(v) for v in c) for c in np.unique(area, axis=0)} - {worst_grid._BACKGROUND, worst_grid._NO_DIE}


def test_the_worst_latest_wafers_worst_first_in_their_bin_colours_with_a_legend():
    events, dies = day(6)
    wafers = wafer_summary(events, dies, NAMES)
    png = worst_wafers_grid(wafers, dies, top=5)
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and len(png) < 200_000
    rows = 2   # 5 tiles in rows of COLUMNS (4)
    assert image.size[1] > rows * TILE_H and image.size[0] >= COLUMNS * TILE_W
    img = np.asarray(image.convert("RGB"))
    pass_rgb = bin_rgb(1, True)
    for n in range(5):   # W0 (worst) first; W5 (best) and the earlier event of W1 are not shown
        fail_bin = 10 + n if n != 3 else 7
        assert tile_colours(img, n) == {bin_rgb(fail_bin, False), pass_rgb}, n
    assert tile_colours(img, 5) == set()          # no sixth tile
    legend = img[rows * TILE_H:].reshape(-1, 3)
    legend_colours = {tuple(int(v) for v in c) for c in np.unique(legend, axis=0)}
    assert {bin_rgb(b, False) for b in (10, 11, 12, 7, 14)} | {pass_rgb} <= legend_colours
    assert bin_rgb(99, False) not in legend_colours and bin_rgb(15, False) not in legend_colours


def test_a_wafer_spanning_the_int32_range_stays_a_small_tile_and_no_dies_gives_none():
    far = [(-2**31, 0, 5, False), (2**31 - 1, 0, 1, True), (0, 2**31 - 1, 1, True)]
    events, dies = events_frame(event("FAR", "kf")), dies_frame(far, "FAR", "kf")
    image = Image.open(io.BytesIO(worst_wafers_grid(wafer_summary(events, dies, NAMES), dies)))
    assert tile_colours(np.asarray(image.convert("RGB")), 0) == {bin_rgb(5, False), bin_rgb(1, True)}
    empty = events_frame(event("EMPTY", "ke"))
    assert worst_wafers_grid(wafer_summary(empty, dies.clear(), NAMES), dies.clear()) is None
