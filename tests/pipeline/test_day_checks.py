"""The day's checks on hand-made committed days in a local folder."""

from __future__ import annotations

import io
from datetime import date

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from failmap_assets.pipeline import day_state as st
from failmap_assets.pipeline.day_checks import check_die_rows, missing_wafer_files
from failmap_assets.storage.day_manifest import DayManifest
from failmap_assets.storage.layout import json_key, png_key
from failmap_assets.storage.local_store import LocalObjectStore

DAY = date(2026, 1, 11)


def put_part(store, name, tokens, keys, xs, ys) -> str:
    buf = io.BytesIO()
    pq.write_table(pa.table({"wafer_token": tokens, "a_key": keys, "x": pa.array(xs, pa.int32()),
                             "y": pa.array(ys, pa.int32()), "bin": [1] * len(xs)}), buf)
    key = f"parquet/failmap_dies/date={DAY}/{name}.parquet"
    store.put(key, buf.getvalue())
    return key


def events(rows) -> pl.DataFrame:
    """(token, unit_key, dies, b_only, latest, png_written) -> an events table."""
    return st.conform(pl.DataFrame(
        [{"wafer_token": t, "unit_key": k, "dies": d, "b_only_dies": b, "latest": latest, "png_written": png}
         for t, k, d, b, latest, png in rows]), st.EVENTS_SCHEMA)


def test_unique_die_per_event_and_complete_rows(tmp_path):
    store = LocalObjectStore(tmp_path)
    p1 = put_part(store, "p1", ["w1", "w1", "w2"], ["a1", "a1", "a2"], [0, -1, 0], [0, 0, 0])
    # w1 tested twice (two A objects): the same die in two events is not a duplicate
    p2 = put_part(store, "p2", ["w1", "w3", "w3"], ["a9", "a3", "a3"], [0, -2**31, 2**31 - 1], [0, -5, 7])
    m = DayManifest("failmap", DAY, tables={"failmap_dies": [p1, p2]})
    ev = events([("w1", "a1", 2, 0, False, True), ("w2", "a2", 1, 0, True, True), ("w1", "a9", 1, 0, True, True),
                 ("w3", "a3", 1, 1, True, True)])
    ok = check_die_rows(store, m, ev)
    assert (ok.rows, ok.duplicated, ok.missing_events, ok.extra_events) == (6, 0, 0, 0)

    p3 = put_part(store, "p3", ["w2", "w3"], ["a2", "a3"], [0, -2**31], [0, -5])
    m.tables["failmap_dies"].append(p3)
    bad = check_die_rows(store, m, ev)
    assert bad.duplicated == 2 and ("w3", "a3", -2**31, -5) in bad.duplicate_examples
    assert bad.extra_events == 2  # w2/a2 and w3/a3 now have more rows than dies

    m.tables["failmap_dies"] = [p1]  # p2's rows lost
    lost = check_die_rows(store, m, ev)
    assert lost.missing_events == 2 and lost.duplicated == 0


def test_every_latest_event_has_its_json_and_png(tmp_path):
    store = LocalObjectStore(tmp_path)
    ev = events([("w1", "a1", 1, 0, True, True), ("w2", "a2", 1, 0, True, False), ("w1", "a0", 1, 0, False, True)])
    files = {json_key(DAY, "w1"): "", png_key(DAY, "w1"): "", json_key(DAY, "w2"): ""}
    for k in files:
        store.put(k, b"x")
    m = DayManifest("failmap", DAY, wafer_files=files)
    kw = dict(json_key=lambda t: json_key(DAY, t), png_key=lambda t: png_key(DAY, t))
    pngs, jsons, no_json, no_png = missing_wafer_files(store, m, ev, **kw)
    assert (pngs, jsons, no_json, no_png) == (1, 2, [], [])  # w2's map was too large to draw: JSON only
    store.delete(png_key(DAY, "w1"))
    assert missing_wafer_files(store, m, ev, **kw)[3] == ["w1"]


def test_a_commit_records_its_die_row_verdict_and_a_no_op_run_reuses_it(tmp_path):
    """The verdict is computed from the parts as stored and kept in the manifest; a run
    with nothing to do reports it without reading one part; a part gone means reading
    the rest again, and the verdict then says rows are missing."""
    from failmap_assets.pipeline.day_checks import DIE_ROWS_VERDICT, die_rows_verdict
    from failmap_assets.storage.day_manifest import read_manifest
    from tests.pipeline.test_every_object_ends import DAY as RUN_DAY
    from tests.pipeline.test_every_object_ends import a_file, fm_run, local
    from tests.support.faulty_store import FaultyStore

    a, b, out = local(tmp_path, "a", "b", "out")
    for wafer in ("01", "02", "03"):
        a.put(f"20260111/L1_{wafer}P_20260111_0900{wafer}.txt", a_file("L1", wafer, f"20260111_0900{wafer}", n=20))
    report = fm_run(a, b, out, "run1")
    manifest, _ = read_manifest(out, "failmap", RUN_DAY)
    recorded = manifest.totals[DIE_ROWS_VERDICT]
    fresh = check_die_rows(out, manifest, report.events)
    assert (recorded["rows"], recorded["duplicated"], recorded["missing_events"], recorded["extra_events"]) == (
        fresh.rows, 0, 0, 0) and fresh.rows == 60

    reads = []
    counting = FaultyStore(out, before_get=reads.append)
    noop = fm_run(a, b, counting, "run2")
    assert not noop.committed
    verdict = die_rows_verdict(counting, noop.manifest, noop.events)
    parts = set(manifest.tables["failmap_dies"])
    assert verdict.rows == 60 and not parts & set(reads)  # no part read for it

    out.delete(sorted(parts)[0])
    gone = die_rows_verdict(counting, noop.manifest, noop.events)
    assert gone.missing_events > 0 and gone.rows < 60 and gone.missing_parts == [sorted(parts)[0]]
