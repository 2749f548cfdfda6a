"""PNG wafer maps, checked pixel by pixel with Pillow against the JSON grid formula."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from failmap_assets.maps.coordinates import wafer_json
from failmap_assets.maps.palette import NOTCH_RGB, bin_rgb
from failmap_assets.maps.render import (
    MAX_BIN_COLORS,
    EmptyWafer,
    grid_for,
    no_png,
    png_scale,
    png_data_uri,
    render_thumbnail_png,
    render_wafer_png,
)
from tests.maps import contract_wafer, make_wafer, round_wafer

SOURCE = {"a_key": "20260111/N4A123.1_07P_20260111_143025.Z", "a_etag": "e1", "b_key": None, "b_etag": None}


def open_png(data: bytes) -> tuple[Image.Image, np.ndarray, np.ndarray]:
    """The image, its palette index per pixel (rows, cols) and the palette as (n, 3) RGB."""
    img = Image.open(io.BytesIO(data))
    img.load()
    assert img.format == "PNG"
    assert img.mode == "P"
    pal = np.array(img.getpalette("RGB"), dtype=int).reshape(-1, 3)
    return img, np.asarray(img), pal


def json_grid(wafer, ppd: int) -> dict:
    return json.loads(wafer_json(wafer, wafer_token="T_01P", source=SOURCE, companion=None, pixels_per_die=ppd))["grid"]


def die_box(idx: np.ndarray, grid: dict, x: int, y: int) -> np.ndarray:
    """The palette indices of die (x, y)'s pixel box, located by the contract formula."""
    ppd = grid["pixels_per_die"]
    col = (x - grid["x_min"]) * ppd
    row = (y - grid["y_min"]) * ppd
    return idx[row : row + ppd, col : col + ppd]


def alpha(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGBA"))[:, :, 3]


@pytest.mark.parametrize("ppd", [1, 4, 7])
def test_contract_example_dies_have_their_bin_colour(ppd):
    wafer = contract_wafer()
    grid = json_grid(wafer, ppd)
    assert grid == grid_for(wafer, ppd)
    img, idx, pal = open_png(render_wafer_png(wafer, ppd))
    assert img.size == ((grid["x_max"] - grid["x_min"] + 1) * ppd, (grid["y_max"] - grid["y_min"] + 1) * ppd)
    expected = {(-1, 0): bin_rgb(1, True), (0, 0): bin_rgb(1, True), (1, 0): bin_rgb(285, False), (0, 1): bin_rgb(1, True)}
    a = alpha(img)
    for (x, y), rgb in expected.items():
        box = die_box(idx, grid, x, y)
        assert box.shape == (ppd, ppd)
        assert np.all(box == box[0, 0])  # the whole square, one colour
        assert tuple(pal[box[0, 0]]) == rgb
        assert np.all(die_box(a, grid, x, y) == 255)
    # (-1, 1) and (1, 1) hold no die: transparent.
    for x, y in [(-1, 1), (1, 1)]:
        assert np.all(die_box(a, grid, x, y) == 0)
    assert img.info.get("transparency") == 0


def test_grid_adds_one_margin_lane_on_the_flat_side_only():
    x, y = [2, 5, 3], [-4, 1, 0]
    expected = {
        "D": (2, 5, -4, 2),
        "U": (2, 5, -5, 1),
        "L": (1, 5, -4, 1),
        "R": (2, 6, -4, 1),
    }
    for flat, (x_min, x_max, y_min, y_max) in expected.items():
        assert grid_for(make_wafer(x, y, [1, 1, 1], flat=flat), 3) == {
            "x_min": x_min, "x_max": x_max, "y_min": y_min, "y_max": y_max, "pixels_per_die": 3,
        }


def _lanes(idx: np.ndarray, ppd: int) -> dict[str, np.ndarray]:
    return {"U": idx[:ppd, :], "D": idx[-ppd:, :], "L": idx[:, :ppd], "R": idx[:, -ppd:]}


@pytest.mark.parametrize("ppd", [4, 9])
@pytest.mark.parametrize("flat", ["U", "D", "L", "R"])
def test_notch_wedge_only_in_the_flat_side_lane(flat, ppd):
    # A 21 x 11 block of dies with a hole, so every edge of the bounding box has dies.
    yy, xx = np.mgrid[0:11, 0:21]
    keep = ~((xx == 10) & (yy == 5))
    wafer = make_wafer(xx[keep], yy[keep], np.where(xx[keep] % 3 == 0, 1, 285), flat=flat)
    grid = json_grid(wafer, ppd)  # dies located as a reader of the JSON would
    img, idx, pal = open_png(render_wafer_png(wafer, ppd))
    notch = np.all(pal[idx] == NOTCH_RGB, axis=2)
    lane = _lanes(notch, ppd)[flat]
    # Present in the stated lane, and nowhere else in the image.
    assert lane.any()
    assert notch.sum() == lane.sum()
    # Lane rows ordered from the image's outer edge inwards, each along the side.
    rows = {"U": lane, "D": lane[::-1], "L": lane.T, "R": lane.T[::-1]}[flat]
    side = rows.shape[1]
    widths = []
    for row in rows:
        hits = np.flatnonzero(row)
        assert len(hits) and hits[-1] - hits[0] + 1 == len(hits)  # one solid run per row
        assert abs((hits[0] + hits[-1] + 1) / 2 - side / 2) <= 0.5  # centred on the side
        widths.append(len(hits))
    # A wedge: widest on the outer edge (about a fifth of the side), narrowing to the wafer.
    assert 0.15 <= widths[0] / side <= 0.25
    assert all(a >= b for a, b in zip(widths, widths[1:])) and widths[-1] <= widths[0] / 2
    # The lane holds no die; every die box keeps its bin colour, untouched by the mark.
    assert not np.any(alpha(img)[notch] == 0)
    for x, y, b in zip(wafer.x.tolist(), wafer.y.tolist(), wafer.bin.tolist()):
        box = die_box(idx, grid, x, y)
        assert tuple(pal[box[0, 0]]) == bin_rgb(b, b == 1) and np.all(box == box[0, 0])
        assert not die_box(notch, grid, x, y).any()
    # The die hole is transparent.
    assert np.all(die_box(alpha(img), grid, 10, 5) == 0)


def test_same_bin_same_colour_on_two_different_wafers():
    # Different bin sets -> different palette indices, yet identical colours per bin.
    w1 = make_wafer([0, 1, 2, 3], [0, 0, 0, 0], [1, 285, 17, 4000])
    w2 = make_wafer([5, 6, 7], [2, 3, 4], [9, 285, 1], flat="L")
    colours = []
    for wafer in (w1, w2):
        grid = grid_for(wafer, 2)
        _, idx, pal = open_png(render_wafer_png(wafer, 2))
        colours.append({b: tuple(pal[die_box(idx, grid, x, y)[0, 0]])
                        for x, y, b in zip(wafer.x.tolist(), wafer.y.tolist(), wafer.bin.tolist())})
    assert colours[0][285] == colours[1][285] == bin_rgb(285, False)
    assert colours[0][1] == colours[1][1] == (0, 160, 0)


def _drawn(wafer, ppd: int = 2) -> tuple[dict, dict]:
    """Each bin's colour in the wafer's PNG (by the grid formula) and in its JSON legend."""
    grid = json_grid(wafer, ppd)
    _, idx, pal = open_png(render_wafer_png(wafer, ppd))
    png = {b: tuple(pal[die_box(idx, grid, x, y)[0, 0]].tolist())
           for x, y, b in zip(wafer.x.tolist(), wafer.y.tolist(), wafer.bin.tolist())}
    doc = json.loads(wafer_json(wafer, wafer_token="T_01P", source=SOURCE, companion=None, pixels_per_die=ppd))
    legend = {e["bin"]: tuple(int(e["rgb"][i:i + 2], 16) for i in (1, 3, 5)) for e in doc["bins"]}
    return png, legend


def test_bins_sharing_a_colour_keep_it_whatever_else_is_on_the_wafer():
    # 3 and 57 are congruent mod 54: one colour, and neither moves to another colour
    # when both sit on one wafer (the contract: a bin's colour is the same on every wafer).
    alone_png, alone_legend = _drawn(make_wafer([0, 1], [0, 0], [1, 57]))
    both_png, both_legend = _drawn(make_wafer([0, 1, 2, 3], [0, 0, 0, 0], [3, 3, 57, 1]))
    assert alone_png[57] == both_png[57] == both_png[3] == bin_rgb(57, False)
    assert alone_legend == {b: alone_png[b] for b in alone_legend}
    assert both_legend == {b: both_png[b] for b in both_legend}


def test_the_issue_bins_are_distinct_in_the_png_and_legend():
    wafer = make_wafer([0, 1, 2, 3, 4], [0, 0, 0, 0, 0], [120, 285, 3, 4095, 1])
    png, legend = _drawn(wafer)
    assert png == legend == {b: bin_rgb(b, b == 1) for b in (120, 285, 3, 4095, 1)}
    assert len(set(png.values())) == 5


def test_bindef_pass_bins_drawn_green():
    wafer = make_wafer([0, 1], [0, 0], [1, 3], bin_pass={3: True})
    grid = grid_for(wafer, 1)
    _, idx, pal = open_png(render_wafer_png(wafer, 1))
    assert tuple(pal[die_box(idx, grid, 1, 0)[0, 0]]) == bin_rgb(3, True)


@pytest.mark.parametrize("flat", ["U", "D", "L", "R"])
def test_empty_wafer_gets_no_png_and_json_says_why(flat):
    wafer = make_wafer([], [], [], flat=flat)
    refused = no_png(wafer, 4)
    assert isinstance(refused, EmptyWafer) and refused.reason == "empty_wafer"
    with pytest.raises(EmptyWafer):
        render_wafer_png(wafer, 4)
    assert png_scale(wafer, 4) is None
    doc = json.loads(wafer_json(wafer, wafer_token="T_01P", source=SOURCE, companion=None, pixels_per_die=4))
    assert doc["chips"] == [] and doc["die_count"] == 0
    assert doc["png"] == {"written": False, "pixels_per_die": None, "reason": str(refused)}
    # The grid keeps its integer fields: the origin cell plus the margin lane.
    assert doc["grid"] == grid_for(wafer, 4) and sorted(_grid_size(doc["grid"])) == [1, 2]


def _grid_size(grid: dict) -> tuple[int, int]:
    return grid["x_max"] - grid["x_min"] + 1, grid["y_max"] - grid["y_min"] + 1


def test_a_single_die_wafer_still_gets_its_png():
    assert no_png(make_wafer([0], [0], [7]), 4) is None
    img, _, _ = open_png(render_wafer_png(make_wafer([0], [0], [7], flat="R"), 4))
    assert img.size == (8, 4)


def test_many_bins_rarest_take_the_nearest_kept_colour():
    rng = np.random.default_rng(3)
    n_bins = 300
    # Bin k appears 1 + k times, so the rarest 46 bins must borrow a colour. Bin 1
    # (pass by default) is among them; bin 3 is made a frequent pass bin, so bin 1
    # must take bin 3's green rather than the nearest fail colour.
    per_bin = np.arange(n_bins) + 1
    per_bin[3] = 400
    bins = np.repeat(np.arange(n_bins), per_bin)
    rng.shuffle(bins)
    side = int(np.ceil(np.sqrt(len(bins))))
    x, y = np.arange(len(bins)) % side, np.arange(len(bins)) // side
    wafer = make_wafer(x, y, bins, bin_pass={3: True})
    grid = grid_for(wafer, 1)
    _, idx, pal = open_png(render_wafer_png(wafer, 1))
    assert len(pal) <= 256
    values, counts = np.unique(bins, return_counts=True)
    ranked = values[np.lexsort((values, -counts))]
    kept, extra = ranked[:MAX_BIN_COLORS], ranked[MAX_BIN_COLORS:]
    assert 3 in kept and 1 in extra
    is_pass = {1: True, 3: True}
    kept_fail_rgb = np.array([bin_rgb(int(b), False) for b in kept if not is_pass.get(int(b), False)])
    drawn = pal[idx[y - grid["y_min"], x - grid["x_min"]]]
    for b in values.tolist():
        got = drawn[bins == b]
        assert np.all(got == got[0])
        own = np.array(bin_rgb(b, is_pass.get(b, False)))
        if b in kept:
            assert tuple(got[0]) == tuple(own)
        elif b == 1:
            assert tuple(got[0]) == bin_rgb(3, True)  # the only kept pass colour
        else:
            nearest = kept_fail_rgb[np.argmin(((kept_fail_rgb - own) ** 2).sum(axis=1))]
            assert tuple(got[0]) == tuple(nearest)


def test_large_wafer_every_die_in_place():
    wafer = round_wafer(196, seed=5)  # ~120,000 dies, shuffled order
    assert wafer.die_count > 119_000
    grid = grid_for(wafer, 4)
    _, idx, pal = open_png(render_wafer_png(wafer, 4))
    # Top-left pixel of every die box, located with the JSON formula.
    rows = (wafer.y.astype(int) - grid["y_min"]) * 4
    cols = (wafer.x.astype(int) - grid["x_min"]) * 4
    got = pal[idx[rows + 3, cols + 3]]  # and the bottom-right one
    assert np.array_equal(pal[idx[rows, cols]], got)
    expected = np.array([bin_rgb(int(b), int(b) == 1) for b in range(0, 40)])
    assert np.array_equal(got, expected[wafer.bin])
    assert idx.shape == ((grid["y_max"] - grid["y_min"] + 1) * 4, (grid["x_max"] - grid["x_min"] + 1) * 4)


def test_thumbnail_small_wafer_uses_largest_fitting_ppd():
    wafer = contract_wafer()
    img, idx, pal = open_png(render_thumbnail_png(wafer, max_px=96))
    # 3 x 3 cells (2 die rows + margin) -> 32 px per die.
    assert img.size == (96, 96)
    assert tuple(pal[idx[0, 0]]) == bin_rgb(1, True)  # die (-1, 0) at top-left
    assert tuple(pal[idx[31, 64]]) == bin_rgb(285, False)  # die (1, 0)
    # The margin lane (bottom 32 rows): only the notch wedge, the rest transparent.
    lane_notch = np.all(pal[idx[-32:]] == NOTCH_RGB, axis=2)
    assert lane_notch.any()
    assert np.all(alpha(img)[-32:][~lane_notch] == 0)


def test_thumbnail_of_a_large_wafer_fits_and_keeps_the_notch():
    wafer = round_wafer(150, flat="R")
    img, idx, pal = open_png(render_thumbnail_png(wafer, max_px=64))
    assert max(img.size) <= 64
    assert img.mode == "P"
    notch = np.all(pal[idx] == NOTCH_RGB, axis=2)
    assert notch[:, -1].any() and notch.sum() == notch[:, -1].sum()
    # The wafer centre is an opaque die drawn in a bin colour.
    centre = idx[img.size[1] // 2, img.size[0] // 2]
    assert alpha(img)[img.size[1] // 2, img.size[0] // 2] == 255
    assert tuple(pal[centre]) in {bin_rgb(b, b == 1) for b in range(1, 32)}


def test_png_data_uri_round_trips():
    png = render_wafer_png(contract_wafer(), 2)
    uri = png_data_uri(png)
    assert uri.startswith("data:image/png;base64,")
    assert base64.b64decode(uri.split(",", 1)[1]) == png


@pytest.mark.parametrize("ppd", [0, -1, 2.5])
def test_bad_pixels_per_die_rejected(ppd):
    with pytest.raises(ValueError):
        render_wafer_png(contract_wafer(), ppd)


def test_absurd_coordinate_span_rejected_before_allocating():
    wafer = make_wafer([0, 3_000_000], [0, 3_000_000], [1, 1])
    with pytest.raises(ValueError, match="pixels"):
        render_wafer_png(wafer, 4)
