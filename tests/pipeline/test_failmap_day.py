"""The fail-map day runner on local folders: parts, commits, retests across runs in
either order, deletions, no-op runs, and a failed write that leaves the old day."""

from __future__ import annotations

import io
import json
from datetime import date, datetime
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from failmap_assets.pipeline.failmap_day import DIES_TABLE, PIPELINE, PairingRules, RunnerOptions, run_day
from failmap_assets.pipeline.unit import ProcessingOptions
from failmap_assets.storage.day_manifest import read_manifest
from failmap_assets.storage.layout import json_key, png_key, table_dir
from failmap_assets.storage.local_store import LocalObjectStore
from failmap_assets.wafer.model import DIE_TABLE_SCHEMA
from failmap_synth.day import generate_day
from tests.support.days import committed, globbed

DAY = date(2026, 1, 11)
NOW = datetime(2026, 1, 13)


def stores_in(tmp_path: Path) -> dict[str, LocalObjectStore]:
    for name in ("a", "b", "out"):
        (tmp_path / name).mkdir(parents=True, exist_ok=True)
    return {name: LocalObjectStore(tmp_path / name) for name in ("a", "b", "out")}


def synthetic_day(stores, wafers: int = 12) -> None:
    for o in generate_day(DAY, wafers, 7, broken=False, dies_range=(300, 3000), typical_dies=1500):
        if o.bucket in ("a", "b"):
            stores[o.bucket].put(o.key, o.data)


def run(stores, *, part_rows: int = 250_000, run_id: str = "run1", force: bool = False):
    return run_day(day=DAY, a_store=stores["a"], b_store=stores["b"], out_store=stores["out"], now=NOW,
                   pairing=PairingRules(), processing=ProcessingOptions(), run_id=run_id, log=lambda _: None,
                   options=RunnerOptions(max_workers=4, max_in_flight=4, part_rows=part_rows, force=force))


def a_file(wafer: str, stime: str, dies: list[tuple[int, int, int]]) -> bytes:
    rows = "\n".join(f"{x} {y} {b}" for x, y, b in dies)
    return f"FAILMAP 1\nLOT L1\nWAFER {wafer}\nSTIME {stime}\nDIES {len(dies)}\n{rows}\nEND\n".encode()


def test_rows_spread_over_parts_each_unit_in_exactly_one(tmp_path: Path) -> None:
    stores = stores_in(tmp_path)
    synthetic_day(stores)
    report = run(stores, part_rows=4000)
    assert report.committed and report.download_errors == []
    parts = report.manifest.tables[DIES_TABLE]
    assert len(parts) >= 3  # small parts: the writer thread really took turns
    # after a successful run the folder holds exactly the committed parts
    assert sorted(o.key for o in stores["out"].list(table_dir(DIES_TABLE, DAY))) == sorted(parts)

    units = committed(stores["out"], PIPELINE, DAY, "units")
    done = units.filter(pl.col("outcome") == "ok")
    rows_per_key = {}
    for part in parts:
        table = pq.read_table(io.BytesIO(stores["out"].get(part)))
        assert [(f.name, f.type) for f in table.schema] == [(f.name, f.type) for f in DIE_TABLE_SCHEMA]
        frame = pl.from_arrow(table)
        for a_key, n in frame.group_by("a_key").len().iter_rows():
            assert a_key not in rows_per_key, f"{a_key} in two parts"
            rows_per_key[a_key] = n
            assert units.filter(pl.col("unit_key") == a_key)["files"].item().to_list() == [part]
    assert set(rows_per_key) == set(done.filter(pl.col("dies") > 0)["unit_key"])
    events = committed(stores["out"], PIPELINE, DAY, "events")
    assert sum(rows_per_key.values()) == int((events["dies"] + events["b_only_dies"]).sum())


def test_retests_across_runs_in_either_order_give_the_same_day(tmp_path: Path) -> None:
    early = ("20260111/L1_07P_20260111_080000.txt", a_file("07", "20260111_080000", [(0, 0, 1), (1, 0, 1)]))
    late = ("20260111/L1_07P_20260111_150000.txt", a_file("07", "20260111_150000", [(0, 0, 2), (1, 0, 1), (2, 0, 1)]))
    results = []
    for order in ((early, late), (late, early)):
        stores = stores_in(tmp_path / f"order{len(results)}")
        for key, data in order:
            stores["a"].put(key, data)
            run(stores, run_id=f"r{key[-10:-4]}")
        dies = globbed(stores["out"], table_dir(DIES_TABLE, DAY))
        # every event keeps its rows; only the later one is the wafer's latest
        assert dies.height == 5
        assert dies.filter(pl.col("latest"))["a_key"].unique().to_list() == [late[0]]
        assert dies.group_by("wafer_token", "a_key", "x", "y").len()["len"].max() == 1
        doc = json.loads(stores["out"].get(json_key(DAY, "L1_07P")))
        assert doc["source"]["a_key"] == late[0] and len(doc["chips"]) == 3
        results.append((dies.drop("a_etag").sort("a_key", "x", "y"), stores["out"].get(png_key(DAY, "L1_07P")), doc))
    (d1, p1, j1), (d2, p2, j2) = results
    assert d1.equals(d2) and p1 == p2
    assert {k: v for k, v in j1.items() if k != "source"} == {k: v for k, v in j2.items() if k != "source"}


def test_a_deleted_object_loses_its_rows_and_the_earlier_event_is_redrawn(tmp_path: Path) -> None:
    stores = stores_in(tmp_path)
    early = "20260111/L1_07P_20260111_080000.txt"
    late = "20260111/L1_07P_20260111_150000.txt"
    stores["a"].put(early, a_file("07", "20260111_080000", [(0, 0, 1), (1, 0, 1)]))
    stores["a"].put(late, a_file("07", "20260111_150000", [(0, 0, 2)]))
    run(stores)
    assert json.loads(stores["out"].get(json_key(DAY, "L1_07P")))["source"]["a_key"] == late
    stores["a"].delete(late)
    report = run(stores, run_id="r2")
    assert report.units_dropped == 1 and report.wafers_redrawn == 1
    dies = globbed(stores["out"], table_dir(DIES_TABLE, DAY))
    assert dies["a_key"].unique().to_list() == [early] and dies["latest"].all()
    assert json.loads(stores["out"].get(json_key(DAY, "L1_07P")))["source"]["a_key"] == early
    stores["a"].delete(early)
    run(stores, run_id="r3")
    assert globbed(stores["out"], table_dir(DIES_TABLE, DAY)) is None
    assert stores["out"].head(json_key(DAY, "L1_07P")) is None and stores["out"].head(png_key(DAY, "L1_07P")) is None


def test_a_run_with_nothing_new_commits_nothing(tmp_path: Path) -> None:
    stores = stores_in(tmp_path)
    synthetic_day(stores, wafers=4)
    first = run(stores)
    again = run(stores, run_id="r2")
    assert not again.committed and again.units_done == 0 and again.generation == first.generation
    assert again.totals == first.totals
    forced = run(stores, run_id="r3", force=True)
    assert forced.committed and forced.units_done == first.units_done
    assert forced.totals == first.totals


class _PartUploadFails(LocalObjectStore):
    def put(self, key, data, content_type=None, **kw):
        if "/failmap_dies/" in key:
            raise OSError("injected: disk full while writing a part")
        return super().put(key, data, content_type, **kw)


def test_a_failed_part_upload_fails_the_run_and_leaves_the_old_day(tmp_path: Path) -> None:
    stores = stores_in(tmp_path)
    synthetic_day(stores, wafers=6)
    stores["out"] = _PartUploadFails(tmp_path / "out")
    with pytest.raises(OSError, match="disk full"):
        run(stores, part_rows=2000)
    assert read_manifest(stores["out"], PIPELINE, DAY) == (None, None)
    # The rerun on a healthy store completes everything.
    stores["out"] = LocalObjectStore(tmp_path / "out")
    report = run(stores, part_rows=2000, run_id="run2")
    assert report.committed and report.units_skipped_done == 0
    units = committed(stores["out"], PIPELINE, DAY, "units")
    assert units["outcome"].to_list() == ["ok"] * units.height


def test_temp_files_of_dead_writers_are_removed_even_by_a_run_with_nothing_new(tmp_path: Path) -> None:
    import os
    import time

    stores = stores_in(tmp_path)
    synthetic_day(stores, wafers=2)
    run(stores)
    folder = tmp_path / "out" / "json" / DAY.isoformat()
    dead, live = folder / ".~tmp-0123456789abcdef", folder / ".~tmp-fedcba9876543210"
    dead.write_bytes(b"half a JSON")   # left by a writer killed an hour ago
    live.write_bytes(b"being written")  # a writer busy right now
    an_hour_ago = time.time() - 3600
    os.utime(dead, (an_hour_ago, an_hour_ago))
    again = run(stores, run_id="r2")
    assert not again.committed
    assert not dead.exists() and live.exists()


def test_a_forced_run_writes_each_part_once(tmp_path: Path) -> None:
    stores = stores_in(tmp_path)
    synthetic_day(stores, wafers=6)
    first = run(stores, part_rows=4000)
    forced = run(stores, part_rows=4000, run_id="r2", force=True)
    assert forced.parts_rewritten == 0 and len(forced.part_files) == len(first.part_files)
    assert forced.totals == first.totals


def test_the_true_aspect_map_beside_the_contract_png_follows_the_latest_event(tmp_path: Path) -> None:
    from PIL import Image

    from failmap_assets.formats.failmap_text import parse_failmap_a
    from failmap_assets.maps.render import render_wafer_png
    from failmap_assets.storage.layout import true_aspect_png_key
    from tests.maps.test_true_aspect import drawn_box

    def round_map(stime: str, die_w: float, die_h: float) -> bytes:
        dies = [(x, y, 1 if (x + y) % 5 else 7) for x in range(-25, 26) for y in range(-10, 11)
                if (x * die_w) ** 2 + (y * die_h) ** 2 <= 50.0 ** 2]
        text = a_file("07", stime, dies).decode().replace("STIME", f"DIE_SIZE {die_w} {die_h}\nSTIME", 1)
        return text.encode()

    stores = stores_in(tmp_path)
    early = "20260111/L1_07P_20260111_080000.txt"
    stores["a"].put(early, round_map("20260111_080000", 2.0, 5.0))
    run(stores)
    aspect, contract = true_aspect_png_key(DAY, "L1_07P"), png_key(DAY, "L1_07P")
    assert aspect.startswith("png_true_aspect/2026-01-11/")
    manifest, _ = read_manifest(stores["out"], PIPELINE, DAY)
    assert {aspect, contract} <= set(manifest.wafer_files)
    assert manifest.wafer_files[aspect] == stores["out"].head(aspect).etag
    w, h = drawn_box(stores["out"].get(aspect))
    assert w / h == pytest.approx(1.0, abs=0.05)                        # round, as the wafer is
    assert stores["out"].get(contract) == render_wafer_png(parse_failmap_a(stores["a"].get(early)), 4)  # as ever
    cw, ch = drawn_box(stores["out"].get(contract))
    assert cw / ch == pytest.approx(2.5, rel=0.1)                       # the contract's square dies
    assert Image.open(io.BytesIO(stores["out"].get(aspect))).mode == "P"

    # a later test event with square dies replaces both; deleting every event removes both
    late = "20260111/L1_07P_20260111_150000.txt"
    stores["a"].put(late, round_map("20260111_150000", 3.0, 3.0))
    run(stores, run_id="r2")
    assert stores["out"].get(aspect) == stores["out"].get(contract)    # square dies: the same picture
    stores["a"].delete(late)
    stores["a"].delete(early)
    run(stores, run_id="r3")
    assert stores["out"].head(aspect) is None and stores["out"].head(contract) is None
