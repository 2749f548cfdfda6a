"""The day's summaries on local folders: every figure equals the committed die table's
(and the STDF day's own events), over generated days with retests; a rerun changes
nothing; a crash mid-write leaves the previous summaries and the next run converges."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from failmap_assets.discovery.keys import parse_failmap_key
from failmap_assets.pipeline import summary_day
from failmap_assets.pipeline.failmap_day import PairingRules, RunnerOptions, run_day
from failmap_assets.pipeline.stdf_day import run_stdf_day
from failmap_assets.pipeline.summary_day import run_summary_day
from failmap_assets.pipeline.unit import ProcessingOptions
from failmap_assets.storage.day_manifest import read_manifest
from failmap_assets.storage.layout import SUMMARY_PIPELINE, json_key, table_dir
from failmap_assets.storage.local_store import LocalObjectStore
from failmap_assets.yield_view.summaries import WORST_BINS
from failmap_synth.day import generate_day
from failmap_synth.stdf_writer import build_wafer_sort
from tests.support.days import committed

DAY = date(2026, 1, 11)
NOW = datetime(2026, 1, 13)
FAIL_BINS = (5, 7, 12, 285)


def stores_in(tmp_path: Path) -> dict[str, LocalObjectStore]:
    for name in ("a", "b", "stdf", "out"):
        (tmp_path / name).mkdir(parents=True, exist_ok=True)
    return {name: LocalObjectStore(tmp_path / name) for name in ("a", "b", "stdf", "out")}


def retest_map(key: str, rng: np.random.Generator, hours: int = 1) -> tuple[str, bytes]:
    """A later test of the wafer of A key ``key``: same wafer token, ``hours`` later, other dies."""
    k = parse_failmap_key(key)
    when = k.file_time + timedelta(hours=hours) if k.file_time.hour < 20 else k.file_time - timedelta(hours=hours)
    new_key = f"{when:%Y%m%d}/{k.wafer_token}_{when:%Y%m%d_%H%M%S}.txt"
    r = int(rng.integers(3, 9))
    dies = [(x, y) for x in range(2 * r + 1) for y in range(2 * r + 1) if (x - r) ** 2 + (y - r) ** 2 <= r * r]
    bins = rng.choice([1, 1, 1, 1, 2, *FAIL_BINS], size=len(dies))
    rows = "\n".join(f"{x} {y} {b}" for (x, y), b in zip(dies, bins))
    text = (f"FAILMAP 1\nLOT {k.token}\nWAFER {k.slot:02d}\nPRODUCT PRX\nSTEP CP2\nSTIME {when:%Y%m%d_%H%M%S}\n"
            f"BINDEF 2 P\nDIES {len(dies)}\n{rows}\nEND\n")
    return new_key, text.encode()


def stdf_file(seed: int, wafer: str, hour: int) -> tuple[str, bytes]:
    """A small wafer-sort STDF file of lot S1 (a few dies retested inside the file)."""
    when = datetime(2026, 1, 11, hour)
    data = build_wafer_sort(seed, dies=300, tests_per_die=4, lot_id="S1", wafer_id=wafer, part_type="PSX",
                            start_time=int(when.replace(tzinfo=UTC).timestamp()), retests=4).data
    return f"{when:%Y%m%d}/S1_{wafer}_{when:%Y%m%d_%H%M%S}.stdf", data


def land_day(stores, seed: int) -> list[str]:
    """A generated day of fail maps plus retests: two maps tested again an hour later
    (their keys are returned), and STDF files of two wafers, one of them tested twice."""
    rng = np.random.default_rng(seed)
    objects = list(generate_day(DAY, 6, seed, broken=False, dies_range=(150, 400), typical_dies=250))
    for o in objects:
        stores[o.bucket].put(o.key, o.data)
    retested = sorted(o.key for o in objects if o.note in ("a", "a_without_b"))[:2]
    retests = [retest_map(key, rng) for key in retested]
    for key, data in retests:
        stores["a"].put(key, data)
    for i, (wafer, hour) in enumerate([("01", 8), ("02", 9), ("01", 13)]):
        stores["stdf"].put(*stdf_file(seed * 10 + i, wafer, hour))
    return [key for key, _ in retests]


def run_days(stores, run_id: str = "r") -> None:
    run_stdf_day(day=DAY, source=stores["stdf"], out=stores["out"], retest_rule="last", pixels_per_die=1,
                 run_id=f"{run_id}-stdf", log=lambda _: None)
    run_day(day=DAY, a_store=stores["a"], b_store=stores["b"], out_store=stores["out"], now=NOW,
            pairing=PairingRules(), processing=ProcessingOptions(pixels_per_die=1), run_id=f"{run_id}-fm",
            log=lambda _: None, options=RunnerOptions(max_workers=2, max_in_flight=2))


def summaries(out: LocalObjectStore) -> tuple[pl.DataFrame, pl.DataFrame]:
    return committed(out, SUMMARY_PIPELINE, DAY, "wafer_summary"), committed(out, SUMMARY_PIPELINE, DAY, "lot_summary")


def pct(part, whole):
    return None if whole == 0 else 100.0 * part / whole


def rings(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The documented ring rule, written again with numpy: 0 centre, 1 middle, 2 edge."""
    cx, cy = (x.min() + x.max()) / 2, (y.min() + y.max()) / 2
    d = np.hypot(x - cx, y - cy)
    r = d / d.max() if d.max() > 0 else np.zeros_like(d)
    return np.where(r <= 0.5, 0, np.where(r <= 0.8, 1, 2))


def expected_failmap_events(dies: pl.DataFrame) -> dict[tuple[str, str], dict]:
    """Per (wafer_token, A key), from the committed die table alone."""
    out = {}
    for (token, key), g in dies.filter(pl.col("in_a")).group_by(["wafer_token", "a_key"]):
        ring = rings(g["x"].to_numpy().astype(float), g["y"].to_numpy().astype(float))
        ok = g["pass"].to_numpy()
        bins = g.group_by("bin").agg(pl.len(), pl.col("pass").all()).sort(["len", "bin"], descending=[True, False])
        out[(token, key)] = {
            "dies": g.height, "pass_dies": int(ok.sum()), "yield_pct": pct(int(ok.sum()), g.height),
            "latest": bool(g["latest"].all()), "lot": g["lot"][0], "step": g["step"][0],
            "bins": [{"bin": b, "name": None, "pass": p, "dies": n} for b, n, p in bins.iter_rows()],  # names apart
            **{f"{z}_dies": int((ring == i).sum()) for i, z in enumerate(("centre", "middle", "edge"))},
            **{f"{z}_pass_dies": int(((ring == i) & ok).sum()) for i, z in enumerate(("centre", "middle", "edge"))},
        }
    return out


def expected_lots(dies: pl.DataFrame) -> dict[tuple[str, str], dict]:
    """Per (lot, step) over the wafers' latest events, from the committed die table alone."""
    latest = dies.filter(pl.col("in_a") & pl.col("latest"))
    out = {}
    for (lot, step), g in latest.group_by(["lot", "step"]):
        per_wafer = g.group_by("wafer_token").agg(pl.col("pass").mean() * 100)["pass"]
        loss = (g.filter(~pl.col("pass")).group_by("bin").len().sort(["len", "bin"], descending=[True, False])
                .head(WORST_BINS))
        out[(lot, step)] = {"wafers": g["wafer_token"].n_unique(), "dies": g.height, "pass_dies": int(g["pass"].sum()),
                            "yield_pct_min": per_wafer.min(), "yield_pct_max": per_wafer.max(),
                            "yield_pct_mean": per_wafer.mean(), "worst_bins": [(b, n) for b, n in loss.iter_rows()]}
    return out


@pytest.mark.parametrize("seed", [3, 11])
def test_summary_figures_equal_the_committed_die_table(tmp_path: Path, seed: int) -> None:
    stores = stores_in(tmp_path)
    retests = land_day(stores, seed)
    run_days(stores)
    report = run_summary_day(day=DAY, out=stores["out"], run_id="s1", log=lambda _: None)
    assert report.committed
    wafers, lots = summaries(stores["out"])

    die_table = committed(stores["out"], "failmap", DAY, "failmap_dies")
    fm_events = committed(stores["out"], "failmap", DAY, "events")
    fm = wafers.filter(pl.col("source") == "failmap")
    assert fm.height == fm_events.height            # one row per test event, empty wafers included
    assert fm.filter(~pl.col("latest")).height >= 2  # the retests' earlier events are there
    expected = expected_failmap_events(die_table)
    for row in fm.iter_rows(named=True):
        want = expected.get((row["wafer_token"], row["object_key"]))
        if want is None:   # an event without dies (DIES 0)
            assert row["dies"] == 0 and row["yield_pct"] is None
            continue
        row["bins"] = [{**b, "name": None} for b in row["bins"]]   # the names: checked below
        for col, value in want.items():
            assert row[col] == (pytest.approx(value) if isinstance(value, float) else value), (row["object_key"], col)
        for z in ("centre", "middle", "edge"):
            assert row[f"{z}_yield_pct"] == (None if want[f"{z}_dies"] == 0 else
                                             pytest.approx(pct(want[f"{z}_pass_dies"], want[f"{z}_dies"])))
    again = fm.filter(pl.col("object_key").is_in(retests))
    assert again["latest"].all() and set(again["step"]) == {"CP2"} and again.height == 2
    assert set(fm.filter(pl.col("insertion").is_not_null())["insertion"]) <= {"P", "R", "C"}
    # the bin names are those of the wafer's JSON legend (its file's BINDEF lines), as for STDF
    named = 0
    for row in fm.filter(pl.col("latest") & (pl.col("dies") > 0)).iter_rows(named=True):
        legend = json.loads(stores["out"].get(json_key(DAY, row["wafer_token"])))["bins"]
        assert {b["bin"]: b["name"] for b in row["bins"]} == {b["bin"]: b.get("name") for b in legend}
        named += sum(b["name"] is not None for b in row["bins"])
    assert named > 0

    # STDF: the maps rebuilt from the committed parts equal the STDF day's own figures
    st_events = committed(stores["out"], "stdf", DAY, "events")
    st = wafers.filter(pl.col("source") == "stdf")
    assert st.height == st_events.height == 3
    assert st["wafer_token"].n_unique() == 2 and st["latest"].sum() == 2
    by_event = {(r["wafer_token"], r["unit_key"]): r for r in st_events.iter_rows(named=True)}
    for row in st.iter_rows(named=True):
        ev = by_event[(row["wafer_token"], row["object_key"])]
        assert (row["dies"], row["pass_dies"], row["latest"]) == (ev["dies"], ev["pass_dies"], ev["latest"])
        assert sorted((b["bin"], b["dies"]) for b in row["bins"]) == sorted(zip(ev["bins"], ev["bin_counts"]))
        assert any(b["name"] for b in row["bins"])  # the HBR names
        assert sum(row[f"{z}_dies"] for z in ("centre", "middle", "edge")) == row["dies"]

    fm_lots = lots.filter(pl.col("source") == "failmap")
    want_lots = expected_lots(die_table)
    assert {(r["lot"], r["step"]) for r in fm_lots.iter_rows(named=True)} == set(want_lots)
    for row in fm_lots.iter_rows(named=True):
        want = want_lots[(row["lot"], row["step"])]
        assert (row["wafers"], row["dies"], row["pass_dies"]) == (want["wafers"], want["dies"], want["pass_dies"])
        for col in ("yield_pct_min", "yield_pct_max", "yield_pct_mean"):
            assert row[col] == pytest.approx(want[col])
        assert [(b["bin"], b["dies"]) for b in row["worst_bins"]] == want["worst_bins"]
    assert lots["wafers"].sum() == wafers["latest"].sum()
    # each lot's final result: the sum of its merged wafers
    merged = committed(stores["out"], SUMMARY_PIPELINE, DAY, "merged_wafers")
    final = {(s, lot, step): (d, p) for s, lot, step, d, p in merged.group_by("source", "lot", "step").agg(
        pl.col("dies").sum(), pl.col("pass_dies").sum()).iter_rows()}
    assert final and {(r["source"], r["lot"], r["step"]): (r["merged_dies"], r["merged_pass_dies"])
                      for r in lots.iter_rows(named=True) if r["merged_dies"] is not None} == final

    totals = report.totals
    latest = wafers.filter(pl.col("latest"))
    assert totals["yield"] == pytest.approx(latest["pass_dies"].sum() / latest["dies"].sum(), abs=1e-6)
    assert totals["rows"]["wafer_summary"] == wafers.height and totals["rows"]["lot_summary"] == lots.height


def test_the_day_not_the_last_run_and_a_rerun_changes_nothing(tmp_path: Path) -> None:
    # one output gets the day in two halves (summarised after each), another all at once
    halves, whole = stores_in(tmp_path / "halves"), stores_in(tmp_path / "whole")
    land_day(whole, 5)
    keys = {b: sorted(o.key for o in whole[b].list("")) for b in ("a", "b", "stdf")}
    for bucket, all_keys in keys.items():
        for key in all_keys[: len(all_keys) // 2]:
            halves[bucket].put(key, whole[bucket].get(key))
    run_days(halves, "h1")
    run_summary_day(day=DAY, out=halves["out"], run_id="s1", log=lambda _: None)
    first = summaries(halves["out"])
    for bucket, all_keys in keys.items():
        for key in all_keys[len(all_keys) // 2:]:
            halves[bucket].put(key, whole[bucket].get(key))
    run_days(halves, "h2")
    assert run_summary_day(day=DAY, out=halves["out"], run_id="s2", log=lambda _: None).committed
    run_days(whole, "w")
    run_summary_day(day=DAY, out=whole["out"], run_id="s3", log=lambda _: None)
    after = summaries(halves["out"])
    assert not after[0].equals(first[0])
    assert after[0].equals(summaries(whole["out"])[0]) and after[1].equals(summaries(whole["out"])[1])

    # nothing new: no commit, the same files; forced: new files, the same tables
    files = sorted(o.key for o in whole["out"].list(table_dir("wafer_summary", DAY)))
    again = run_summary_day(day=DAY, out=whole["out"], run_id="s4", log=lambda _: None)
    assert not again.committed and sorted(o.key for o in whole["out"].list(table_dir("wafer_summary", DAY))) == files
    forced = run_summary_day(day=DAY, out=whole["out"], run_id="s5", force=True, log=lambda _: None)
    assert forced.committed and forced.generation == again.generation + 1
    assert sorted(o.key for o in whole["out"].list(table_dir("wafer_summary", DAY))) != files
    assert summaries(whole["out"])[0].equals(after[0]) and summaries(whole["out"])[1].equals(after[1])


def test_a_crash_mid_write_leaves_the_previous_summaries_and_the_rerun_converges(tmp_path, monkeypatch) -> None:
    stores = stores_in(tmp_path)
    retested = land_day(stores, 7)
    run_days(stores)
    run_summary_day(day=DAY, out=stores["out"], run_id="s1", log=lambda _: None)
    before = summaries(stores["out"])
    manifest_before, _ = read_manifest(stores["out"], SUMMARY_PIPELINE, DAY)

    stores["a"].put(*retest_map(retested[0], np.random.default_rng(1), hours=2))
    run_days(stores, "r2")
    real_write, writes = summary_day.write_table, []

    def crash_on_second(store, key, table):
        writes.append(key)
        if len(writes) == 2:
            raise OSError("killed while writing lot_summary")
        return real_write(store, key, table)

    monkeypatch.setattr(summary_day, "write_table", crash_on_second)
    with pytest.raises(OSError, match="killed"):
        run_summary_day(day=DAY, out=stores["out"], run_id="s2", log=lambda _: None)
    monkeypatch.setattr(summary_day, "write_table", real_write)
    # the dead run's wafer_summary file is on disk, but the commit still names the old day
    assert writes[0] in {o.key for o in stores["out"].list(table_dir("wafer_summary", DAY))}
    assert read_manifest(stores["out"], SUMMARY_PIPELINE, DAY)[0].tables == manifest_before.tables
    assert all(a.equals(b) for a, b in zip(summaries(stores["out"]), before))

    rerun = run_summary_day(day=DAY, out=stores["out"], run_id="s3", log=lambda _: None)
    assert rerun.committed
    assert sorted(o.key for o in stores["out"].list(table_dir("wafer_summary", DAY))) == \
        rerun.manifest.tables["wafer_summary"]
    assert summaries(stores["out"])[0].height == before[0].height + 1
