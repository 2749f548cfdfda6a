"""Merged retests and stacked lot maps through the summaries' day: on a generated day
with retests (fail maps P then R of the same step, an STDF wafer tested twice), the
merged dies follow the rule die for die, the lot maps are committed with the tables,
and a rerun converges."""

from __future__ import annotations

import io
import json
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
from PIL import Image

from failmap_assets.pipeline.summary_day import run_summary_day
from failmap_assets.storage.day_manifest import read_manifest
from failmap_assets.maps.palette import bin_rgb
from failmap_assets.storage.layout import SUMMARY_PIPELINE, SUMMARY_TABLES, lot_map_dir, merged_map_dir, merged_map_key
from tests.pipeline.test_summary_day import DAY, land_day, run_days, stores_in
from tests.support.day_outputs import folder_problems
from tests.support.days import committed

FAIL_BIN = 285


def hand_map(lot: str, slot: str, insertion: str, when: datetime, fails: set[tuple[int, int]]) -> tuple[str, bytes]:
    """A 5 x 5 fail map of step CP1 whose dies ``fails`` fail."""
    rows = "\n".join(f"{x} {y} {FAIL_BIN if (x, y) in fails else 1}" for y in range(5) for x in range(5))
    text = (f"FAILMAP 1\nLOT {lot}\nWAFER {slot}\nSTEP CP1\nSTIME {when:%Y%m%d_%H%M%S}\nBINDEF 1 P PASS\n"
            f"BINDEF {FAIL_BIN} F IDDQ\nDIES 25\n{rows}\nEND\n")
    return f"{when:%Y%m%d}/{lot}_{slot}{insertion}_{when:%Y%m%d_%H%M%S}.txt", text.encode()


def expected_merge(dies: pl.DataFrame, rule: str) -> dict[tuple, tuple[int, str]]:
    """Per (lot, wafer, step, x, y): (bin, object key), by the documented rule, in plain Python."""
    tests: dict[tuple, list] = {}
    for r in dies.sort("file_time", "object_key", "wafer_token").iter_rows(named=True):
        tests.setdefault((r["lot"], r["wafer"], r["step"], r["x"], r["y"]), []).append(r)
    out = {}
    for die, ts in tests.items():
        if rule in ("best", "worst"):
            preferred = [t for t in ts if t["pass"] == (rule == "best")]
            win = (preferred or ts)[-1]
        else:
            win = ts[-1] if rule == "last" else ts[0]
        out[die] = (win["bin"], win["object_key"])
    return out


def test_merged_dies_follow_the_rule_and_the_lot_maps_converge(tmp_path: Path) -> None:
    stores = stores_in(tmp_path)
    land_day(stores, 3)
    # lot M1: wafer 01 prime, then retest R of the same step; wafer 02 prime only
    for lot, slot, ins, hour, fails in [("M1", "01", "P", 8, {(0, 0), (1, 0), (2, 2)}),
                                        ("M1", "01", "R", 10, {(1, 0), (3, 3)}),
                                        ("M1", "02", "P", 9, {(0, 0), (4, 4)})]:
        stores["a"].put(*hand_map(lot, slot, ins, datetime(2026, 1, 11, hour), fails))
    run_days(stores)
    out = stores["out"]
    report = run_summary_day(day=DAY, out=out, run_id="s1", merge_rule="worst", pixels_per_die=2,
                             log=lambda _: None)
    assert report.committed and report.totals["merge_rule"] == "worst"
    t = {name: committed(out, SUMMARY_PIPELINE, DAY, name) for name in SUMMARY_TABLES}
    assert report.totals["rows"] == {name: t[name].height for name in SUMMARY_TABLES}
    merged, wafers = t["merged_dies"], t["wafer_summary"]
    key = ["source", "lot", "wafer", "step", "x", "y"]
    assert merged.select(key).is_unique().all()

    # every die of every test event is in exactly one merged die
    assert merged["tests"].sum() == wafers.filter(pl.col("lot").is_not_null() & pl.col("wafer").is_not_null())[
        "dies"].sum()

    # fail maps: die for die, the rule written again over the committed die table
    die_table = committed(out, "failmap", DAY, "failmap_dies").filter(pl.col("in_a"))
    events = wafers.filter(pl.col("source") == "failmap").select(
        "wafer_token", "object_key", "lot", "wafer", "step", "file_time")
    fm_dies = die_table.select("wafer_token", pl.col("a_key").alias("object_key"), "x", "y",
                               pl.col("bin").cast(pl.Int64), "pass").join(events, on=["wafer_token", "object_key"])
    want = expected_merge(fm_dies.filter(pl.col("lot").is_not_null() & pl.col("wafer").is_not_null()), "worst")
    fm = merged.filter(pl.col("source") == "failmap")
    assert {tuple(r[c] for c in key[1:]): (r["bin"], r["object_key"]) for r in fm.iter_rows(named=True)} == want
    m1 = fm.filter((pl.col("lot") == "M1") & (pl.col("wafer") == "01"))
    assert m1.height == 25 and set(m1.filter(~pl.col("pass")).select("x", "y").iter_rows()) == {
        (0, 0), (1, 0), (2, 2), (3, 3)}                 # worst: a fail in either insertion
    assert set(m1.filter(pl.col("x") == 1)["insertion"]) == {"R"}    # (1,y): R is the latest, fail or not

    # STDF: wafer 01 of lot S1 came in two files and is one merged wafer
    s1 = t["merged_wafers"].filter((pl.col("source") == "stdf") & (pl.col("wafer") == "01")).row(0, named=True)
    assert s1["test_events"] == 2 and s1["retested_dies"] > 0 and s1["merge_rule"] == "worst"

    # stacked lot maps: M1 over its two wafers, exact rates
    m1_map = t["stacked_lot_maps"].filter(pl.col("lot") == "M1")
    rates = {(r["x"], r["y"]): (r["wafers"], r["fails"]) for r in m1_map.iter_rows(named=True)}
    assert rates[(0, 0)] == (2, 2) and rates[(3, 3)] == (2, 1) and rates[(4, 4)] == (2, 1) and rates[(2, 0)] == (2, 0)
    assert len(rates) == 25 and m1_map["fail_rate"].sum() == sum(f / w for w, f in rates.values())

    # the lot maps: one PNG and one JSON per lot map, named by the commit with their ETags
    manifest, _ = read_manifest(out, SUMMARY_PIPELINE, DAY)
    lot_maps = t["stacked_lot_maps"].select("source", "lot", "step").unique().height
    lot_files = {k: e for k, e in manifest.wafer_files.items() if k.startswith(lot_map_dir(DAY))}
    assert len(lot_files) == 2 * lot_maps == 2 * report.totals["lot_maps"]
    on_disk = {o.key: o.etag for o in out.list(lot_map_dir(DAY))}
    assert on_disk == lot_files and folder_problems(out, DAY) == []
    doc_key = next(k for k in on_disk if k.endswith("/M1/CP1.json"))
    doc = json.loads(out.get(doc_key))
    png = np.asarray(Image.open(io.BytesIO(out.get(doc_key[:-4] + "png"))))
    assert png.shape == (5 * 2, 5 * 2, 4) and doc["grid"]["pixels_per_die"] == 2 and doc["wafers"] == 2
    assert tuple(png[0, 0, :3]) == tuple(int(doc["legend"][-1]["rgb"][i:i + 2], 16) for i in (1, 3, 5))  # rate 1
    assert tuple(png[0, 4, :3]) == tuple(int(doc["legend"][0]["rgb"][i:i + 2], 16) for i in (1, 3, 5))   # (2,0): 0
    assert tuple(png[4, 4, :3]) == tuple(int(doc["legend"][5]["rgb"][i:i + 2], 16) for i in (1, 3, 5))   # (2,2): 0.5

    # the merged maps: a PNG and a JSON per physical wafer, named by the commit with their ETags
    merged_files = {o.key: o.etag for o in out.list(merged_map_dir(DAY))}
    assert {k: e for k, e in manifest.wafer_files.items() if k.startswith(merged_map_dir(DAY))} == merged_files
    assert sum(k.endswith(".json") for k in merged_files) == t["merged_wafers"].height == report.totals["merged_maps"]
    assert set(manifest.wafer_files) == set(lot_files) | set(merged_files)
    m1_doc = json.loads(out.get(merged_map_key(DAY, "failmap", "M1", "CP1", "01", "json")))
    assert (m1_doc["format"], m1_doc["flat"], m1_doc["lot"], m1_doc["wafer"]) == ("merged", "D", "M1", "01")
    assert m1_doc["source"]["merge_rule"] == "worst" and m1_doc["source"]["a_key"] is None
    assert [e["insertion"] for e in m1_doc["source"]["merged_events"]] == ["P", "R"]
    assert {(c["x_abs"], c["y_abs"]): (int(c["b"]), c["pass"]) for c in m1_doc["chips"]} == {
        (r["x"], r["y"]): (r["bin"], r["pass"]) for r in m1.iter_rows(named=True)}
    assert {b["bin"]: b["name"] for b in m1_doc["bins"]} == {1: "PASS", FAIL_BIN: "IDDQ"}
    m1_png = Image.open(io.BytesIO(out.get(merged_map_key(DAY, "failmap", "M1", "CP1", "01", "png")))).convert("RGB")
    grid = m1_doc["grid"]
    assert m1_png.size == ((grid["x_max"] - grid["x_min"] + 1) * 2, (grid["y_max"] - grid["y_min"] + 1) * 2)
    assert m1_png.getpixel((2 * 3, 2 * 3)) == bin_rgb(FAIL_BIN, False)   # (3, 3): failed in R only
    assert m1_png.getpixel((2 * 2, 2 * 0)) == bin_rgb(1, True)           # (2, 0): passed in both

    # nothing new: no commit, same files; forced: the same tables and the same images
    again = run_summary_day(day=DAY, out=out, run_id="s2", merge_rule="worst", pixels_per_die=2, log=lambda _: None)
    assert not again.committed and {o.key: o.etag for o in out.list(lot_map_dir(DAY))} == on_disk
    images = {k: out.get(k) for k in manifest.wafer_files}
    forced = run_summary_day(day=DAY, out=out, run_id="s3", merge_rule="worst", pixels_per_die=2, force=True,
                             log=lambda _: None)
    assert forced.committed
    assert all(committed(out, SUMMARY_PIPELINE, DAY, n).equals(t[n]) for n in SUMMARY_TABLES)
    assert {k: out.get(k) for k in read_manifest(out, SUMMARY_PIPELINE, DAY)[0].wafer_files} == images

    # a lot map changed behind the commit's back (a crashed run drew it): the next run draws it again
    out.put(doc_key[:-4] + "png", b"half a png")
    repaired = run_summary_day(day=DAY, out=out, run_id="s4", merge_rule="worst", pixels_per_die=2,
                               log=lambda _: None)
    assert repaired.committed and out.get(doc_key[:-4] + "png") == images[doc_key[:-4] + "png"]
    assert folder_problems(out, DAY) == []

    # another rule is another day's result: committed, and the merged dies follow it
    best = run_summary_day(day=DAY, out=out, run_id="s5", merge_rule="best", pixels_per_die=2, log=lambda _: None)
    assert best.committed
    m1_best = committed(out, SUMMARY_PIPELINE, DAY, "merged_dies").filter(
        (pl.col("lot") == "M1") & (pl.col("wafer") == "01") & ~pl.col("pass"))
    assert set(m1_best.select("x", "y").iter_rows()) == {(1, 0)}   # best: failed in both insertions
