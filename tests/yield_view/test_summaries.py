"""The summary kernels on hand-made wafers: rings, retests, loss bins, empty wafers."""

from __future__ import annotations

from datetime import datetime

import polars as pl
import pytest

from failmap_assets.yield_view import sources
from failmap_assets.yield_view.merged import merge_dies, merged_wafers
from failmap_assets.yield_view.summaries import (
    LOT_SUMMARY_COLUMNS,
    WAFER_SUMMARY_COLUMNS,
    lot_summary,
    schema_of,
    wafer_summary,
)

NO_NAMES = pl.DataFrame(schema=sources.BIN_NAMES_SCHEMA)


def disc(radius: int) -> list[tuple[int, int, int]]:
    """Dies of a round wafer: (x, y, squared distance from the centre die)."""
    r = radius
    return [(x, y, (x - r) ** 2 + (y - r) ** 2) for x in range(2 * r + 1) for y in range(2 * r + 1)
            if (x - r) ** 2 + (y - r) ** 2 <= r * r]


def dies_frame(rows, token="W1", key="k1", source="failmap") -> pl.DataFrame:
    return pl.DataFrame([{"source": source, "wafer_token": token, "object_key": key, "x": x, "y": y, "bin": b,
                          "pass": p} for x, y, b, p in rows], schema=sources.DIES_SCHEMA)


def event(token="W1", key="k1", *, lot="L1", latest=True, hour=8, source="failmap") -> dict:
    return {"source": source, "wafer_token": token, "object_key": key, "partner_key": None, "lot": lot,
            "wafer": token[-2:], "insertion": "P", "product": "PRD", "step": "CP1", "tester": "T1",
            "file_time": datetime(2026, 1, 11, hour), "latest": latest, "source_format": "failmap"}


def events_frame(*events: dict) -> pl.DataFrame:
    return pl.DataFrame(list(events), schema=sources.EVENTS_SCHEMA)


def test_rings_by_normalised_radius_from_the_die_grid_centre():
    # A disc of radius 3 dies: r = d / 3, so centre is d <= 1.5 (d^2 0, 1, 2: 9 dies), middle
    # d <= 2.4 (d^2 4, 5: 12 dies), edge d^2 8, 9 (8 dies). Every edge die fails, and three
    # of the middle ring's.
    wafer = disc(3)
    assert len(wafer) == 29
    failing_middle = [(x, y) for x, y, d2 in wafer if d2 == 4][:3]
    rows = [(x, y, 1 if d2 <= 5 and (x, y) not in failing_middle else 9, d2 <= 5 and (x, y) not in failing_middle)
            for x, y, d2 in wafer]
    out = wafer_summary(events_frame(event()), dies_frame(rows), NO_NAMES).row(0, named=True)
    assert (out["centre_dies"], out["middle_dies"], out["edge_dies"]) == (9, 12, 8)
    assert (out["centre_pass_dies"], out["middle_pass_dies"], out["edge_pass_dies"]) == (9, 9, 0)
    assert out["centre_yield_pct"] == 100.0
    assert out["middle_yield_pct"] == pytest.approx(75.0)
    assert out["edge_yield_pct"] == 0.0
    assert (out["dies"], out["pass_dies"]) == (29, 18)
    assert out["yield_pct"] == pytest.approx(100 * 18 / 29)


def test_rings_do_not_depend_on_where_the_grid_sits_or_which_way_it_counts():
    wafer = disc(4)
    rows = [(x, y, 1 if d2 <= 4 else 3, d2 <= 4) for x, y, d2 in wafer]
    moved = [(-x + 100, y - 50, b, p) for x, y, b, p in rows]       # mirrored and shifted
    zones = [c for c in WAFER_SUMMARY_COLUMNS if c.split("_")[0] in ("centre", "middle", "edge")]
    a = wafer_summary(events_frame(event()), dies_frame(rows), NO_NAMES).select(zones)
    b = wafer_summary(events_frame(event()), dies_frame(moved), NO_NAMES).select(zones)
    assert a.equals(b)
    # the die-grid centre is the bounding box's midpoint: a missing quarter does not move it
    # for the dies that remain, so their rings stay
    cut = [r for r in rows if not (r[0] > 4 and r[1] > 4)]
    c = wafer_summary(events_frame(event()), dies_frame(cut), NO_NAMES).row(0, named=True)
    assert c["centre_dies"] == sum(1 for x, y, d2 in wafer if d2 <= 4 and not (x > 4 and y > 4))


def test_one_die_is_centre_and_an_empty_wafer_has_no_yield():
    out = wafer_summary(events_frame(event("W1", "k1"), event("W2", "k2")),
                        dies_frame([(5, 5, 1, True)], "W1", "k1"), NO_NAMES)
    one, empty = out.row(0, named=True), out.row(1, named=True)
    assert (one["centre_dies"], one["middle_dies"], one["edge_dies"], one["yield_pct"]) == (1, 0, 0, 100.0)
    assert one["middle_yield_pct"] is None and one["edge_yield_pct"] is None
    assert (empty["dies"], empty["yield_pct"], empty["bins"]) == (0, None, [])


def test_lot_counts_each_wafers_latest_event_and_names_its_worst_bins():
    # disc(2): 13 dies in rows y = 0..4 of 1, 3, 5, 3, 1 dies and columns alike
    first = [(x, y, 7 if x <= 1 else 1, x > 1) for x, y, _ in disc(2)]       # 4 dies fail bin 7
    retest = [(x, y, 1, True) for x, y, _ in disc(2)]                         # all pass
    other = [(x, y, {0: 285, 1: 12}.get(y, 1), y > 1) for x, y, _ in disc(2)]  # 1 x bin 285, 3 x bin 12
    names = pl.DataFrame([{"source": "failmap", "wafer_token": "W2", "object_key": "k3", "bin": 285,
                           "name": "OPEN"}], schema=sources.BIN_NAMES_SCHEMA)
    events = events_frame(event("W1", "k1", latest=False, hour=8), event("W1", "k2", hour=9),
                          event("W2", "k3"), event("W3", "k4", lot="L2"))
    dies = pl.concat([dies_frame(first, "W1", "k1"), dies_frame(retest, "W1", "k2"), dies_frame(other, "W2", "k3")])
    wafers = wafer_summary(events, dies, names)
    assert wafers.schema == schema_of(WAFER_SUMMARY_COLUMNS)
    assert wafers["object_key"].to_list() == ["k1", "k2", "k3", "k4"]
    assert wafers.filter(pl.col("object_key") == "k1")["bins"].to_list()[0] == [
        {"bin": 1, "name": None, "pass": True, "dies": 9}, {"bin": 7, "name": None, "pass": False, "dies": 4}]
    assert wafers.filter(pl.col("object_key") == "k3")["bins"].to_list()[0][1:] == [
        {"bin": 12, "name": None, "pass": False, "dies": 3}, {"bin": 285, "name": "OPEN", "pass": False, "dies": 1}]

    lots = lot_summary(wafers)
    assert lots.schema == schema_of(LOT_SUMMARY_COLUMNS)
    l1 = lots.filter(pl.col("lot") == "L1").row(0, named=True)
    assert (l1["wafers"], l1["test_events"], l1["retested_wafers"], l1["dies"], l1["pass_dies"]) == (2, 3, 1, 26, 22)
    assert (l1["yield_pct_min"], l1["yield_pct_max"]) == (pytest.approx(100 * 9 / 13), 100.0)
    assert l1["yield_pct_mean"] == pytest.approx((100 + 100 * 9 / 13) / 2)
    assert l1["yield_pct"] == pytest.approx(100 * 22 / 26)
    # bin 7 was lost by the first test only: the retest (the latest event) replaced it
    assert l1["worst_bins"] == [
        {"bin": 12, "name": None, "dies": 3, "pct_of_dies": pytest.approx(100 * 3 / 26)},
        {"bin": 285, "name": "OPEN", "dies": 1, "pct_of_dies": pytest.approx(100 * 1 / 26)},
    ]
    l2 = lots.filter(pl.col("lot") == "L2").row(0, named=True)
    assert (l2["wafers"], l2["dies"], l2["yield_pct"], l2["yield_pct_mean"], l2["worst_bins"]) == (1, 0, None, None, [])
    assert (l1["merged_dies"], l1["merged_pass_dies"], l1["merged_yield_pct"]) == (None, None, None)   # not given

    # the lot's final result: its wafers merged over their insertions by the rule
    for rule, pass_dies in (("last", 22), ("first", 18), ("best", 22), ("worst", 18)):
        merged = merged_wafers(events, merge_dies(events, dies, rule), dies, rule)
        final = lot_summary(wafers, merged)
        assert final.drop("merged_dies", "merged_pass_dies", "merged_yield_pct").equals(
            lots.drop("merged_dies", "merged_pass_dies", "merged_yield_pct"))
        l1 = final.filter(pl.col("lot") == "L1").row(0, named=True)
        assert (l1["merged_dies"], l1["merged_pass_dies"]) == (26, pass_dies), rule
        assert l1["merged_yield_pct"] == pytest.approx(100 * pass_dies / 26), rule
