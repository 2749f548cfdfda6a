"""Wafers whose dies are too far apart for the requested PNG: the scale is reduced or
the PNG refused (MapTooLarge), the JSON always written and saying so, and nothing
overflows or allocates the whole grid for coordinates anywhere in int32."""

from __future__ import annotations

import io
import json
import tracemalloc

import numpy as np
import pytest
from PIL import Image

from failmap_assets.maps import render
from failmap_assets.maps.coordinates import png_written, wafer_json
from failmap_assets.maps.palette import NOTCH_RGB, bin_rgb
from failmap_assets.maps.render import (
    MAX_IMAGE_PIXELS,
    MapTooLarge,
    grid_for,
    png_fields,
    png_scale,
    render_thumbnail_png,
    render_wafer_png,
)
from tests.maps import contract_wafer, make_wafer, round_wafer
from tests.maps import json_reference

SOURCE = {"a_key": "20260111/N4A123.1_07P_20260111_143025.Z", "a_etag": "e1", "b_key": None, "b_etag": None}
I32 = np.iinfo(np.int32)


def doc_of(wafer, ppd: int = 4, max_pixels: int | None = None) -> dict:
    raw = wafer_json(wafer, wafer_token="T_01P", source=SOURCE, companion=None, pixels_per_die=ppd,
                     max_pixels=max_pixels)
    assert raw == json_reference.wafer_json(wafer, wafer_token="T_01P", source=SOURCE, companion=None,
                                            pixels_per_die=ppd, max_pixels=max_pixels)
    return json.loads(raw)


def open_png(data: bytes) -> tuple[Image.Image, np.ndarray, np.ndarray]:
    img = Image.open(io.BytesIO(data))
    img.load()
    assert img.format == "PNG" and img.mode == "P"
    return img, np.asarray(img), np.array(img.getpalette("RGB"), dtype=int).reshape(-1, 3)


def assert_png_matches_json(wafer, png: bytes, doc: dict, *, sample: int = 2000) -> None:
    """The PNG's size is the JSON grid times its pixels_per_die, and dies sit where the
    contract formula says, in their bin colour."""
    grid = doc["grid"]
    ppd = grid["pixels_per_die"]
    assert doc["png"]["written"] is True and doc["png"]["pixels_per_die"] == ppd
    img, idx, pal = open_png(png)
    assert img.size == ((grid["x_max"] - grid["x_min"] + 1) * ppd, (grid["y_max"] - grid["y_min"] + 1) * ppd)
    pick = np.random.default_rng(0).permutation(wafer.die_count)[:sample]
    for k in pick.tolist():
        x, y, b = int(wafer.x[k]), int(wafer.y[k]), int(wafer.bin[k])
        col, row = (x - grid["x_min"]) * ppd, (y - grid["y_min"]) * ppd
        box = idx[row : row + ppd, col : col + ppd]
        assert box.shape == (ppd, ppd) and np.all(box == box[0, 0])
        assert tuple(pal[box[0, 0]]) == bin_rgb(b, b == 1)


def chips_xy(doc: dict) -> list[tuple[int, int]]:
    return [(c["x_abs"], c["y_abs"]) for c in doc["chips"]]


# ------------------------------------------------------------ the scale decision


def test_png_scale_requested_reduced_or_none():
    wafer = contract_wafer()  # grid 3 x 3 dies
    assert png_scale(wafer, 4) == 4
    assert png_scale(wafer, 4, max_pixels=9 * 16) == 4          # exactly at the limit
    assert png_scale(wafer, 4, max_pixels=9 * 16 - 1) == 3
    assert png_scale(wafer, 4, max_pixels=9 * 4) == 2
    assert png_scale(wafer, 4, max_pixels=9) == 1
    assert png_scale(wafer, 4, max_pixels=8) is None
    assert png_scale(wafer, 4, max_pixels=0) is None
    with pytest.raises(ValueError):
        png_scale(wafer, 0)


@pytest.mark.parametrize("seed", range(25))
def test_png_and_json_grid_agree_at_any_limit(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 400))
    span = int(rng.integers(1, 80))
    x = rng.integers(-span, span + 1, n) + int(rng.integers(-10**6, 10**6))
    y = rng.integers(-span, span + 1, n)
    keep = np.unique(x.astype(np.int64) << 32 | (y.astype(np.int64) & 0xFFFFFFFF), return_index=True)[1]
    wafer = make_wafer(x[keep], y[keep], rng.choice([1, 1, 1, 7, 285, 4000], len(keep)),
                       flat=str(rng.choice(list("UDLR"))))
    ppd = int(rng.integers(1, 9))
    g = grid_for(wafer)
    cells = (g["x_max"] - g["x_min"] + 1) * (g["y_max"] - g["y_min"] + 1)
    max_pixels = int(rng.integers(cells // 2, 2 * cells * ppd * ppd))  # refused, reduced or full
    doc = doc_of(wafer, ppd, max_pixels)
    scale = png_scale(wafer, ppd, max_pixels)
    if scale is None:
        with pytest.raises(MapTooLarge):
            render_wafer_png(wafer, ppd, max_pixels=max_pixels)
        assert doc["png"]["written"] is False and doc["png"]["pixels_per_die"] is None
        assert doc["grid"]["pixels_per_die"] == ppd
        return
    png = render_wafer_png(wafer, ppd, max_pixels=max_pixels)
    assert_png_matches_json(wafer, png, doc)
    assert doc["grid"]["pixels_per_die"] == scale
    w, h = Image.open(io.BytesIO(png)).size
    assert w * h <= max_pixels
    # The largest scale that fits, never above the requested one.
    assert scale == ppd or cells * (scale + 1) ** 2 > max_pixels
    assert (doc["png"]["reason"] is None) == (scale == ppd)


def test_normal_wafer_unchanged_png_field_says_written():
    wafer = round_wafer(196, seed=5)  # ~120,000 dies
    doc = doc_of(wafer)
    assert doc["png"] == {"written": True, "pixels_per_die": 4, "reason": None}
    assert doc["grid"] == grid_for(wafer, 4)
    assert list(doc)[-1] == "chips"


# ------------------------------------------------------------ 10 million dies


def test_ten_million_die_grid_gets_json_and_a_reduced_png():
    # A 3163 x 3163 bounding box (10 million die positions) drawn sparsely: its border,
    # both diagonals and a stripe of fail dies. At 4 px/die it would be 160 Mpx.
    side = 3163
    t = np.arange(side)
    x = np.concatenate([t, t, np.zeros(side - 2, int), np.full(side - 2, side - 1), t[1:-1], t[1:-1], t[100:200]])
    y = np.concatenate([np.zeros(side, int), np.full(side, side - 1), t[1:-1], t[1:-1], t[1:-1], t[::-1][1:-1],
                        np.full(100, 50)])
    keep = np.unique(x.astype(np.int64) << 32 | y, return_index=True)[1]
    x, y = x[keep] - 1500, y[keep] - 1500
    bins = np.where(y == 50 - 1500, 285, 1)
    wafer = make_wafer(x, y, bins)
    assert side * side >= 10_000_000
    assert png_scale(wafer, 4) == 2
    doc = doc_of(wafer)
    assert doc["png"]["written"] is True and doc["png"]["pixels_per_die"] == 2
    assert "reduced from 4 to 2" in doc["png"]["reason"] and str(MAX_IMAGE_PIXELS) in doc["png"]["reason"]
    assert doc["grid"] == {**grid_for(wafer, 2), "pixels_per_die": 2}
    assert doc["die_count"] == wafer.die_count == len(doc["chips"])
    assert sorted(chips_xy(doc), key=lambda p: (p[1], p[0])) == chips_xy(doc)
    assert set(chips_xy(doc)) == set(zip(x.tolist(), y.tolist()))
    assert_png_matches_json(wafer, render_wafer_png(wafer, 4), doc, sample=500)


def test_ten_million_die_line_gets_json_and_a_one_pixel_per_die_png():
    n = 10_000_000
    x = np.concatenate([np.arange(0, n, 9973), [n - 1]])
    wafer = make_wafer(x, np.zeros(len(x), int), np.where(np.arange(len(x)) % 3 == 0, 285, 1))
    doc = doc_of(wafer)
    assert doc["png"]["written"] is True and doc["grid"]["pixels_per_die"] == 1
    assert doc["grid"]["x_max"] - doc["grid"]["x_min"] + 1 == n
    assert chips_xy(doc) == [(int(v), 0) for v in x]
    assert_png_matches_json(wafer, render_wafer_png(wafer, 4), doc)


def test_ten_million_die_grid_refused_cleanly_at_a_lower_limit():
    wafer = make_wafer([0, 3162], [0, 3162], [1, 285])
    with pytest.raises(MapTooLarge, match="3163 x 3164 pixels even at 1 pixel per die") as exc:
        render_wafer_png(wafer, 4, max_pixels=4_000_000)
    assert (exc.value.width, exc.value.height, exc.value.max_pixels) == (3163, 3164, 4_000_000)
    doc = doc_of(wafer, 4, 4_000_000)
    assert doc["png"]["written"] is False and "limit 4000000" in doc["png"]["reason"]
    assert chips_xy(doc) == [(0, 0), (3162, 3162)]


# ------------------------------------------------------------ dies far apart


def test_dies_at_origin_and_100000_json_has_both_png_refused_with_reason():
    wafer = make_wafer([100000, 0], [100000, 0], [285, 1])
    assert png_scale(wafer, 4) is None
    with pytest.raises(MapTooLarge) as exc:
        render_wafer_png(wafer, 4)
    assert isinstance(exc.value, ValueError)
    assert "100001 x 100002 pixels" in str(exc.value) and f"limit {MAX_IMAGE_PIXELS}" in str(exc.value)
    doc = doc_of(wafer)
    assert [(c["x_abs"], c["y_abs"], c["b"]) for c in doc["chips"]] == [(0, 0, "1"), (100000, 100000, "285")]
    assert doc["png"] == {"written": False, "pixels_per_die": None, "reason": str(exc.value)}
    # The grid keeps its extents (and the requested scale: there is no PNG to describe).
    assert doc["grid"] == {"x_min": 0, "x_max": 100000, "y_min": 0, "y_max": 100001, "pixels_per_die": 4}
    assert png_written(wafer_json(wafer, wafer_token="T", source=SOURCE, companion=None)) is False
    # The thumbnail still shows both dies, in opposite corners.
    img, idx, pal = open_png(render_thumbnail_png(wafer))
    assert max(img.size) <= 96
    assert tuple(pal[idx[0, 0]]) == bin_rgb(1, True)
    assert tuple(pal[idx[-2, -1]]) == bin_rgb(285, False)  # the last row is the margin lane


def test_dies_far_apart_png_reduced_when_it_fits():
    wafer = make_wafer([0, 1000], [0, 1000], [1, 285], flat="L")
    png = render_wafer_png(wafer, 4, max_pixels=4_100_000)   # 1002 x 1001 dies: 2 px/die fit, 3 do not
    doc = doc_of(wafer, 4, 4_100_000)
    assert doc["grid"]["pixels_per_die"] == 2 and doc["png"]["pixels_per_die"] == 2
    assert doc["png"]["reason"].startswith("reduced from 4 to 2 pixels per die")
    assert_png_matches_json(wafer, png, doc)


# ------------------------------------------------------------ int32 extremes


@pytest.mark.parametrize("flat", ["U", "D", "L", "R"])
def test_int32_extremes_no_overflow_json_exact_thumbnail_works(flat):
    x = [I32.max, I32.min, 0, -1, I32.min, I32.max]
    y = [I32.max, I32.min, 0, 1, I32.max, I32.min]
    bins = [285, 1, 1, 7, 4000, 65535]
    wafer = make_wafer(x, y, bins, flat=flat)
    grid = grid_for(wafer, 4)
    width, height = grid["x_max"] - grid["x_min"] + 1, grid["y_max"] - grid["y_min"] + 1
    assert {width, height} == {2**32, 2**32 + 1}  # exact: no int32 wrap-around
    with pytest.raises(MapTooLarge, match=f"{width} x {height} pixels"):
        render_wafer_png(wafer, 1)
    doc = doc_of(wafer)
    assert doc["grid"] == grid
    assert doc["png"]["written"] is False
    expected = sorted(zip(x, y, bins), key=lambda t: (t[1], t[0]))
    assert [(c["x_abs"], c["y_abs"], int(c["b"])) for c in doc["chips"]] == expected

    img, idx, pal = open_png(render_thumbnail_png(wafer, max_px=64))
    assert max(img.size) <= 64
    colour = {tuple(pal[i]) for i in np.unique(idx)}
    assert {bin_rgb(b, b == 1) for b in bins} <= colour  # every die is a corner or the centre
    notch = np.all(pal[idx] == NOTCH_RGB, axis=2)
    lane = {"U": notch[0], "D": notch[-1], "L": notch[:, 0], "R": notch[:, -1]}[flat]
    assert lane.any() and notch.sum() == lane.sum()


def test_line_at_int32_extremes_thumbnail():
    wafer = make_wafer([I32.min, 0, 5, I32.max], [0, 0, 0, 0], [1, 285, 285, 7])
    img, idx, pal = open_png(render_thumbnail_png(wafer))
    assert img.size == (96, 2)  # the die row and the margin lane below it
    assert tuple(pal[idx[0, 0]]) == bin_rgb(1, True) and tuple(pal[idx[0, -1]]) == bin_rgb(7, False)
    assert tuple(pal[idx[0, 48]]) == bin_rgb(285, False)
    assert np.all(pal[idx[1]][idx[1] != 0] == NOTCH_RGB)


def test_nothing_grid_sized_is_allocated():
    wafer = make_wafer([I32.min, I32.max, 0], [I32.min, I32.max, 0], [1, 285, 1])
    tracemalloc.start()
    try:
        with pytest.raises(MapTooLarge):
            render_wafer_png(wafer, 4)
        png_fields(wafer, 4)
        render_thumbnail_png(wafer)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20


def test_thumbnail_of_a_sparse_wafer_still_shows_its_dies():
    # A normal wafer plus one stray die 10**6 dies away: the wafer shrinks to a few
    # pixels of the thumbnail, which must still show it (not sample only empty cells).
    base = round_wafer(40)
    x = np.concatenate([base.x, [10**6]])
    y = np.concatenate([base.y, [0]])
    wafer = make_wafer(x, y, np.concatenate([base.bin, [285]]))
    img, idx, pal = open_png(render_thumbnail_png(wafer))
    assert max(img.size) <= 96
    drawn = idx[(idx != 0) & ~np.all(pal[idx] == NOTCH_RGB, axis=2)]
    assert len(drawn) >= 2  # the wafer and the stray die


def test_monkeypatched_limit_is_read_at_call_time(monkeypatch):
    wafer = contract_wafer()
    monkeypatch.setattr(render, "MAX_IMAGE_PIXELS", 9)
    assert png_scale(wafer, 4) == 1
    assert doc_of(wafer)["grid"]["pixels_per_die"] == 1
    monkeypatch.setattr(render, "MAX_IMAGE_PIXELS", 8)
    with pytest.raises(MapTooLarge, match="limit 8"):
        render_wafer_png(wafer)


def test_png_written_reads_only_the_header():
    raw = wafer_json(contract_wafer(), wafer_token="T", source=SOURCE, companion=None)
    assert png_written(raw) is True
    head = raw[: raw.index(b'"chips":[') + 12]  # cut inside the chips
    assert png_written(head) is True
    assert png_written(b"{}") is None and png_written(b"not json") is None
    hostile = wafer_json(contract_wafer(), wafer_token='x,"chips":[', source=SOURCE, companion=None,
                         max_pixels=1)
    assert png_written(hostile) is False
