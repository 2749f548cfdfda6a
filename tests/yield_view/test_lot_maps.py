"""Stacked lot maps on a hand-made lot: exact fail rates, the PNG's colours, the legend."""

from __future__ import annotations

import io

import numpy as np
import polars as pl
from PIL import Image

from failmap_assets.yield_view.lot_maps import (
    RAMP,
    STACKED_LOT_MAPS_COLUMNS,
    lot_map_json,
    ramp_colors,
    render_lot_map_png,
    stacked_lot_maps,
)
from failmap_assets.yield_view.merged import MERGED_DIES_COLUMNS
from failmap_assets.yield_view.summaries import schema_of


def merged(rows: list[tuple[str, str, int, int, bool]]) -> pl.DataFrame:
    """merged_dies rows of source failmap, step CP1: (lot, wafer, x, y, pass)."""
    return pl.DataFrame([{"source": "failmap", "lot": lot, "wafer": w, "step": "CP1", "x": x, "y": y,
                          "bin": 1 if ok else 9, "pass": ok, "tests": 1, "insertion": "P", "wafer_token": w,
                          "object_key": w, "file_time": None} for lot, w, x, y, ok in rows],
                        schema=schema_of(MERGED_DIES_COLUMNS))


# Lot L1, four wafers, a 3 x 2 grid (y downward); (2,1) exists on wafers 1 and 2 only:
#   (0,0) fails on 0 of 4, (1,0) on 1 of 4, (2,0) on 2 of 4, (0,1) on 3 of 4, (1,1) on 4 of 4, (2,1) on 1 of 2
FAILS = {(0, 0): set(), (1, 0): {"1"}, (2, 0): {"1", "2"}, (0, 1): {"1", "2", "3"}, (1, 1): {"1", "2", "3", "4"},
         (2, 1): {"2"}}
LOT = merged([("L1", w, x, y, w not in failing) for (x, y), failing in FAILS.items()
              for w in ("1", "2", "3", "4") if (x, y) != (2, 1) or w in ("1", "2")]
             + [("L2", "1", 5, 5, False)])  # another lot never mixes in
RATES = {(0, 0): 0.0, (1, 0): 0.25, (2, 0): 0.5, (0, 1): 0.75, (1, 1): 1.0, (2, 1): 0.5}


def test_fail_rate_of_each_position_over_the_lots_wafers() -> None:
    table = stacked_lot_maps(LOT)
    assert table.schema == schema_of(STACKED_LOT_MAPS_COLUMNS)
    l1 = table.filter(pl.col("lot") == "L1")
    assert {(r["x"], r["y"]): (r["wafers"], r["fails"], r["fail_rate"]) for r in l1.iter_rows(named=True)} == {
        (x, y): (2 if (x, y) == (2, 1) else 4, len(f), RATES[(x, y)]) for (x, y), f in FAILS.items()}
    assert table.filter(pl.col("lot") == "L2").select("wafers", "fails", "fail_rate").row(0) == (1, 1, 1.0)


def test_the_png_draws_each_die_in_its_ramp_colour() -> None:
    l1 = stacked_lot_maps(LOT).filter(pl.col("lot") == "L1")
    ppd = 3
    img = Image.open(io.BytesIO(render_lot_map_png(l1, ppd)))
    assert img.mode == "RGBA" and img.size == (3 * ppd, 2 * ppd)
    px = np.asarray(img)
    ramp = np.array(RAMP)
    # 0, 0.5 and 1 are ramp stops; 0.25 and 0.75 lie halfway between two stops
    want = {0.0: ramp[0], 0.5: ramp[5], 1.0: ramp[10], 0.25: np.rint((ramp[2] + ramp[3]) / 2),
            0.75: np.rint((ramp[7] + ramp[8]) / 2)}
    for (x, y), rate in RATES.items():
        cell = px[y * ppd:(y + 1) * ppd, x * ppd:(x + 1) * ppd]
        assert (cell[..., 3] == 255).all()
        assert (cell[..., :3] == want[rate]).all(), (x, y, rate)
    assert (ramp_colors(np.array([-1.0, 2.0])) == ramp[[0, 10]]).all()   # out of range: clipped
    # the same rows always give the same bytes (a forced rerun rewrites identical files)
    assert render_lot_map_png(l1, ppd) == render_lot_map_png(l1, ppd)


def test_no_die_cells_are_transparent_and_the_legend_is_data() -> None:
    corner = stacked_lot_maps(merged([("L3", "1", 0, 0, False), ("L3", "1", 2, 1, True)]))
    px = np.asarray(Image.open(io.BytesIO(render_lot_map_png(corner, 1))))
    assert px.shape == (2, 3, 4)
    assert px[0, 0, 3] == 255 and px[1, 2, 3] == 255
    assert px[0, 1, 3] == px[0, 2, 3] == px[1, 0, 3] == px[1, 1, 3] == 0
    doc = lot_map_json(corner, 1)
    assert (doc["lot"], doc["step"], doc["wafers"], doc["dies"]) == ("L3", "CP1", 1, 2)
    assert (doc["fail_rate_min"], doc["fail_rate_max"]) == (0.0, 1.0)
    assert doc["grid"] == {"x_min": 0, "x_max": 2, "y_min": 0, "y_max": 1, "pixels_per_die": 1}
    assert [e["fail_rate"] for e in doc["legend"]] == [i / 10 for i in range(11)]
    assert doc["legend"][0]["rgb"] == "#440154" and doc["legend"][-1]["rgb"] == "#fde725"
    assert tuple(px[0, 0, :3]) == tuple(int(doc["legend"][-1]["rgb"][i:i + 2], 16) for i in (1, 3, 5))
