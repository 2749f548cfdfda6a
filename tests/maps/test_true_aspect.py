"""The true-aspect wafer map: dies as wide and tall as DIE_SIZE says, so a round wafer
of rectangular dies is drawn round (the contract PNG, square dies, draws it as an
ellipse); same palette, notch and refusals; the contract PNG itself unchanged."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from failmap_assets.maps.palette import NOTCH_RGB
from failmap_assets.maps.render import (
    MAX_DIE_ASPECT,
    EmptyWafer,
    die_stretch,
    render_true_aspect_png,
    render_wafer_png,
)
from tests.maps import contract_wafer, make_wafer

DIE_W, DIE_H = 2.0, 5.0   # mm: dies 2.5 times taller than wide


def round_wafer_of(die_w: float, die_h: float, radius_mm: float = 100.0, flat: str = "D"):
    """The dies whose centre lies within ``radius_mm`` of the wafer centre: a round wafer
    of ``die_w`` x ``die_h`` dies (many more columns than rows when the dies are tall)."""
    nx, ny = int(radius_mm // die_w), int(radius_mm // die_h)
    xs, ys = np.meshgrid(np.arange(-nx, nx + 1), np.arange(-ny, ny + 1))
    inside = (xs * die_w) ** 2 + (ys * die_h) ** 2 <= radius_mm ** 2
    x, y = xs[inside], ys[inside]
    bins = np.where((x + y) % 7 == 0, 285, 1)
    return make_wafer(x, y, bins, flat=flat, bin_pass={1: True, 285: False}, die_size=(die_w, die_h))


def drawn_box(png: bytes) -> tuple[int, int]:
    """Width and height of the dies' bounding box in the image (opaque, not the notch)."""
    img = Image.open(io.BytesIO(png))
    rgba = np.asarray(img.convert("RGBA"))
    dies = (rgba[:, :, 3] > 0) & ~np.all(rgba[:, :, :3] == NOTCH_RGB, axis=2)
    rows, cols = np.flatnonzero(dies.any(axis=1)), np.flatnonzero(dies.any(axis=0))
    return cols[-1] - cols[0] + 1, rows[-1] - rows[0] + 1


@pytest.mark.parametrize("die", [(DIE_W, DIE_H), (DIE_H, DIE_W), (6.34, 5.12)])
@pytest.mark.parametrize("flat", ["D", "L"])
def test_a_round_wafer_of_rectangular_dies_is_drawn_round(die, flat):
    wafer = round_wafer_of(*die, flat=flat)
    w, h = drawn_box(render_true_aspect_png(wafer, 4))
    assert w / h == pytest.approx(1.0, abs=0.03)
    # the contract PNG keeps square dies: the same wafer is an ellipse there
    cw, ch = drawn_box(render_wafer_png(wafer, 4))
    assert cw / ch == pytest.approx(die[1] / die[0], rel=0.05)
    img = Image.open(io.BytesIO(render_true_aspect_png(wafer, 4)))
    assert img.mode == "P" and np.array_equal(img.getpalette("RGB")[:6], [255, 255, 255, *NOTCH_RGB])
    rgba = np.asarray(img.convert("RGBA"))
    notch = np.all(rgba[:, :, :3] == NOTCH_RGB, axis=2) & (rgba[:, :, 3] > 0)
    edge = notch[-1] if flat == "D" else notch[:, 0]
    assert edge.sum() > 0 and not notch[0].any()   # the wedge on the flat side only


def test_the_shorter_die_side_keeps_the_contract_scale_and_each_die_its_colour():
    wafer = make_wafer([0, 1, 0], [0, 0, 1], [1, 285, 7], bin_pass={1: True}, die_size=(1.0, 3.0))
    img = Image.open(io.BytesIO(render_true_aspect_png(wafer, 4)))
    # grid: 2 columns x (2 rows + the notch lane) at 4 px wide, 12 px tall per die
    assert img.size == (2 * 4, 3 * 12)
    idx = np.asarray(img)
    contract = np.asarray(Image.open(io.BytesIO(render_wafer_png(wafer, 4))))
    for x, y in ((0, 0), (1, 0), (0, 1)):
        box = idx[y * 12:(y + 1) * 12, x * 4:(x + 1) * 4]
        assert (box == contract[y * 4, x * 4]).all()   # the same palette index as on the contract PNG


def test_without_a_usable_die_size_it_is_the_contract_png_and_refusals_are_the_same():
    wafer = contract_wafer()
    assert wafer.die_size == (5.12, 6.34) and render_true_aspect_png(wafer, 4) != render_wafer_png(wafer, 4)
    wafer.die_size = None
    assert render_true_aspect_png(wafer, 4) == render_wafer_png(wafer, 4)
    drawn = render_wafer_png(wafer, 4)
    assert render_true_aspect_png(wafer, 4, contract_png=drawn) is drawn   # not drawn twice
    for size in ((0.0, 1.0), (float("nan"), 1.0), (1.0, float("inf"))):
        odd = make_wafer([0, 1], [0, 0], [1, 1], die_size=size)
        assert die_stretch(odd) == (1.0, 1.0) and render_true_aspect_png(odd, 4) == render_wafer_png(odd, 4)
    # a hostile ratio is capped, and a huge one never exceeds the pixel limit
    thin = make_wafer([0, 500], [0, 0], [1, 1], die_size=(1e-9, 1.0))
    assert die_stretch(thin) == (1.0, MAX_DIE_ASPECT)
    img = Image.open(io.BytesIO(render_true_aspect_png(thin, 4, max_pixels=50_000)))
    assert img.size[0] * img.size[1] <= 50_000
    with pytest.raises(EmptyWafer):
        render_true_aspect_png(make_wafer([], [], [], die_size=(1.0, 2.0)), 4)
