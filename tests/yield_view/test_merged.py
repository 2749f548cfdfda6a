"""Merging a wafer's retests, by each rule, on hand-made wafers."""

from __future__ import annotations

from datetime import datetime

import polars as pl
import pytest

from failmap_assets.resources import build_resources
from failmap_assets.settings import Settings
from failmap_assets.yield_view import sources
from failmap_assets.yield_view.merged import (
    MERGED_DIES_COLUMNS,
    MERGED_WAFERS_COLUMNS,
    merge_dies,
    merged_wafers,
)
from failmap_assets.yield_view.summaries import schema_of

PASS, FAIL = (1, True), (7, False)


def ev(key: str, token: str, insertion: str | None, hour: int, *, wafer="01", step="CP1", source="failmap",
       lot: str | None = "L1") -> dict:
    return {"source": source, "wafer_token": token, "object_key": key, "partner_key": None, "lot": lot,
            "wafer": wafer, "insertion": insertion, "product": "PRD", "step": step, "tester": "T1",
            "file_time": datetime(2026, 1, 11, hour), "latest": True, "source_format": "failmap"}


def dies(key: str, token: str, results: dict[tuple[int, int], tuple[int, bool]], source="failmap") -> list[dict]:
    return [{"source": source, "wafer_token": token, "object_key": key, "x": x, "y": y, "bin": b, "pass": p}
            for (x, y), (b, p) in results.items()]


# Wafer L1/01 tested three times (P at 8h, R at 10h, R again at 9h: test order is by time,
# not by insertion letter), four dies:
#   die (0,0): P pass, R@9 fail, R@10 pass     -> last pass(10)  first pass(8)  best pass(10) worst fail(9)
#   die (1,0): P fail, R@9 pass, R@10 fail     -> last fail(10)  first fail(8)  best pass(9)  worst fail(10)
#   die (2,0): P fail only                     -> fail(8) by every rule
#   die (3,0): P pass, R@10 pass (bin 2)       -> last/best/worst 2 @10, first 1 @8
EVENTS = pl.DataFrame([ev("p8", "L1_01P", "P", 8), ev("r10", "L1_01R", "R", 10), ev("r9", "L1_01R", "R", 9)],
                      schema=sources.EVENTS_SCHEMA)
DIES = pl.DataFrame(
    dies("p8", "L1_01P", {(0, 0): PASS, (1, 0): FAIL, (2, 0): FAIL, (3, 0): PASS})
    + dies("r9", "L1_01R", {(0, 0): FAIL, (1, 0): PASS})
    + dies("r10", "L1_01R", {(0, 0): PASS, (1, 0): FAIL, (3, 0): (2, True)}),
    schema=sources.DIES_SCHEMA)

EXPECTED = {  # rule -> die x -> (bin, object key it comes from)
    "last": {0: (1, "r10"), 1: (7, "r10"), 2: (7, "p8"), 3: (2, "r10")},
    "first": {0: (1, "p8"), 1: (7, "p8"), 2: (7, "p8"), 3: (1, "p8")},
    "best": {0: (1, "r10"), 1: (1, "r9"), 2: (7, "p8"), 3: (2, "r10")},
    "worst": {0: (7, "r9"), 1: (7, "r10"), 2: (7, "p8"), 3: (2, "r10")},
}


@pytest.mark.parametrize("rule", list(EXPECTED))
def test_each_rule_picks_the_documented_test_of_each_die(rule: str) -> None:
    merged = merge_dies(EVENTS, DIES, rule)
    assert merged.schema == schema_of(MERGED_DIES_COLUMNS)
    assert merged.height == 4 and merged.select("lot", "wafer", "x", "y").is_unique().all()
    got = {r["x"]: (r["bin"], r["object_key"]) for r in merged.iter_rows(named=True)}
    assert got == EXPECTED[rule]
    insertion = {"p8": "P", "r9": "R", "r10": "R"}
    for r in merged.iter_rows(named=True):
        assert r["pass"] == (r["bin"] != 7) and r["insertion"] == insertion[r["object_key"]]
    assert dict(zip(merged["x"], merged["tests"])) == {0: 3, 1: 3, 2: 1, 3: 2}


def test_merged_wafer_row_beside_its_latest_event() -> None:
    merged = merge_dies(EVENTS, DIES, "best")
    wafers = merged_wafers(EVENTS, merged, DIES, "best")
    assert wafers.schema == schema_of(MERGED_WAFERS_COLUMNS)
    assert wafers.to_dicts() == [{
        "source": "failmap", "lot": "L1", "wafer": "01", "step": "CP1", "merge_rule": "best", "test_events": 3,
        "insertions": "P,R,R", "dies": 4, "pass_dies": 3, "yield_pct": 75.0, "retested_dies": 3,
        "latest_pass_dies": 2,  # r10 alone: (0,0) and (3,0)
    }]


def test_other_steps_sources_wafers_and_unknown_lots_stay_apart() -> None:
    events = pl.concat([EVENTS, pl.DataFrame([
        ev("cp2", "L1_01P", "P", 11, step="CP2"),                       # another step of the same wafer
        ev("w2", "L1_02P", "P", 11, wafer="02"),                        # another wafer of the lot
        ev("st", "S", None, 12, source="stdf"),                         # the same wafer in an STDF file
        ev("nolot", "X_01P", "P", 12, lot=None),                        # no lot: cannot be matched
    ], schema=sources.EVENTS_SCHEMA)])
    more = pl.DataFrame(dies("cp2", "L1_01P", {(0, 0): FAIL}) + dies("w2", "L1_02P", {(0, 0): FAIL})
                        + dies("st", "S", {(0, 0): FAIL}, source="stdf") + dies("nolot", "X_01P", {(0, 0): FAIL}),
                        schema=sources.DIES_SCHEMA)
    merged = merge_dies(events, pl.concat([DIES, more]), "last")
    at_origin = merged.filter((pl.col("x") == 0) & (pl.col("y") == 0))
    assert sorted(at_origin.select("source", "wafer", "step", "object_key").iter_rows()) == [
        ("failmap", "01", "CP1", "r10"), ("failmap", "01", "CP2", "cp2"), ("failmap", "02", "CP1", "w2"),
        ("stdf", "01", "CP1", "st")]
    assert "nolot" not in set(merged["object_key"])


def test_the_rule_comes_from_failmap_merge_rule_and_an_unknown_one_is_refused() -> None:
    with pytest.raises(ValueError, match="merge rule"):
        merge_dies(EVENTS, DIES, "newest")
    with pytest.raises(ValueError, match="FAILMAP_MERGE_RULE='newest' is not one of last, first, best, worst"):
        Settings.from_env({"FAILMAP_MERGE_RULE": "newest"})
    assert Settings.from_env({}).merge_rule == "last"
    assert build_resources(Settings.from_env({"FAILMAP_MERGE_RULE": "best"}))["failmap_rules"].merge_rule == "best"
