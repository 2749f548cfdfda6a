"""Every object of a day ends somewhere: processed, rejected with a reason, or open for
a bounded number of retries. Names that look like a store's temp files, objects that
vanish or change between the listing and the GET, reads that fail, and two STDF files
of one wafer processed in any order."""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest

from failmap_assets.pipeline import day_state as st
from failmap_assets.pipeline.failmap_day import PairingRules, RunnerOptions, run_day
from failmap_assets.pipeline.stdf_day import run_stdf_day
from failmap_assets.pipeline.unit import ProcessingOptions
from failmap_assets.storage.day_manifest import read_manifest
from failmap_assets.storage.layout import json_key, png_key, safe_name
from failmap_assets.storage.local_store import LocalObjectStore
from failmap_assets.storage.locations import open_store
from failmap_assets.storage.object_store import ObjectStore
from failmap_assets.storage.versions import entry_hash
from failmap_synth.stdf_writer import make_wafer_sort_stdf
from tests.support.day_view import assert_clean, read_files
from tests.support.faulty_store import FaultyStore

DAY = date(2026, 1, 11)
NOW = datetime(2026, 1, 13)
FAB_NOW = datetime(2026, 1, 13, 12)
T0 = int(datetime(2026, 1, 11, 8, tzinfo=UTC).timestamp())


def a_file(lot: str, wafer: str, stime: str, n: int = 12, bin_: int = 1) -> bytes:
    rows = "\n".join(f"{i % 4} {i // 4} {bin_ if i % 3 else 7}" for i in range(n))
    return f"FAILMAP 1\nLOT {lot}\nWAFER {wafer}\nSTIME {stime}\nDIES {n}\n{rows}\nEND\n".encode()


def stdf(seed: int, lot: str, wafer: str, start: int) -> bytes:
    return make_wafer_sort_stdf(seed, dies=80, tests_per_die=5, lot_id=lot, wafer_id=wafer, start_time=start,
                                sites=1, retests=0)


def local(tmp_path: Path, *names: str) -> list[LocalObjectStore]:
    out = []
    for name in names:
        (tmp_path / name).mkdir(parents=True, exist_ok=True)
        out.append(LocalObjectStore(tmp_path / name))
    return out


def fm_run(a: ObjectStore, b: ObjectStore, out: ObjectStore, run_id: str, **kw):
    return run_day(day=DAY, a_store=a, b_store=b, out_store=out, now=NOW, pairing=PairingRules(),
                   processing=ProcessingOptions(), run_id=run_id, log=lambda _: None,
                   options=RunnerOptions(max_workers=4, max_in_flight=4, cpu_threads=2, **kw))


def stdf_run(src: ObjectStore, out: ObjectStore, run_id: str, workers: int = 2, **kw):
    return run_stdf_day(day=DAY, source=src, out=out, retest_rule="last", pixels_per_die=4, run_id=run_id,
                        workers=workers, log=lambda _: None, **kw)


def committed(out: ObjectStore, pipeline: str, what: str) -> pl.DataFrame:
    manifest, _ = read_manifest(out, pipeline, DAY)
    keys = manifest.tables.get(what) or ([manifest.state[what]] if what in manifest.state else [])
    return read_files(out, keys) if keys else pl.DataFrame()


# ----- names that look like temp files ------------------------------------------------------------
TMP_KEY = "20260111/.tmp-x_01P_20260111_120000.txt"


@pytest.mark.s3
@pytest.mark.parametrize("output", ["local", "s3"])
def test_a_lot_token_starting_with_tmp_is_processed_and_gets_safe_file_names(s3_env, s3_server, output,
                                                                             tmp_path: Path) -> None:
    """``.tmp-x`` fits the key grammar's lot token; here the source is S3, written by
    another tool (boto3, as a tester's uploader would)."""
    endpoint = os.environ["FAILMAP_S3_ENDPOINT_URL"]
    bucket = s3_env.removeprefix("s3://")
    s3_server.client().put_object(Bucket=bucket, Key=f"a/{TMP_KEY}", Body=a_file(".tmp-x", "01", "20260111_120000"))
    s3_server.client().put_object(Bucket=bucket, Key="a/20260111/L9_02P_20260111_130000.txt",
                                  Body=a_file("L9", "02", "20260111_130000"))
    a = open_store(f"{s3_env}/a", endpoint_url=endpoint)
    b = open_store(f"{s3_env}/b", endpoint_url=endpoint)
    out = local(tmp_path, "out")[0] if output == "local" else open_store(f"{s3_env}/out", endpoint_url=endpoint)
    report = fm_run(a, b, out, "run1")
    assert report.committed and report.units_done == 2 and report.download_errors == []
    units = committed(out, "failmap", "units")
    assert dict(units.select("unit_key", "outcome").iter_rows()) == {
        TMP_KEY: "ok", "20260111/L9_02P_20260111_130000.txt": "ok"}
    dies = committed(out, "failmap", "failmap_dies")
    assert dies.filter(pl.col("a_key") == TMP_KEY).height == 12
    png, js = png_key(DAY, ".tmp-x_01P"), json_key(DAY, ".tmp-x_01P")
    stem = safe_name(".tmp-x_01P")
    assert png == f"png/2026-01-11/{stem}.png" and not stem.startswith(".") and stem.startswith("tmp-x_01P-")
    assert out.get(png)[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads(out.get(js))["source"]["a_key"] == TMP_KEY
    manifest, _ = read_manifest(out, "failmap", DAY)
    assert {png, js} <= set(manifest.wafer_files)
    assert not manifest.open and not manifest.needs_run(entry_hash(TMP_KEY, a.head(TMP_KEY).etag), FAB_NOW)
    again = fm_run(a, b, out, "run2")  # nothing stays to do
    assert not again.committed and again.units_done == 0
    assert_clean(out, "failmap", DAY)


def test_a_tmp_lot_token_in_a_local_source_folder_is_listed_and_processed(tmp_path: Path) -> None:
    """A local folder's own temp files use a prefix no fail-map key can start with
    (``.~tmp-``: ``~`` is outside the grammar), so ``.tmp-x`` keys are ordinary objects."""
    a, b, out = local(tmp_path, "a", "b", "out")
    a.put(TMP_KEY, a_file(".tmp-x", "01", "20260111_120000"))
    assert [o.key for o in a.list("20260111/")] == [TMP_KEY]
    report = fm_run(a, b, out, "run1")
    assert report.committed and report.units_done == 1
    assert committed(out, "failmap", "failmap_dies").filter(pl.col("a_key") == TMP_KEY).height == 12
    assert out.head(json_key(DAY, ".tmp-x_01P")) is not None


def test_an_stdf_file_whose_mir_lot_is_tmp_x_is_processed(tmp_path: Path) -> None:
    src, out = local(tmp_path, "stdf", "out")
    src.put("20260111/odd-lot.stdf", stdf(1, ".tmp-x", "01", T0))
    report = stdf_run(src, out, "run1")
    assert report.committed and report.files_done == 1 and report.files_failed == 0
    events = committed(out, "stdf", "events")
    assert events["wafer_token"].to_list() == [".tmp-x_W01-stdf"] and events["outputs_written"].to_list() == [True]
    png, js = png_key(DAY, ".tmp-x_W01-stdf", "stdf"), json_key(DAY, ".tmp-x_W01-stdf", "stdf")
    assert png.startswith("png/2026-01-11/tmp-x_W01-") and png.endswith("-stdf.png")
    assert out.get(png)[:8] == b"\x89PNG\r\n\x1a\n" and json.loads(out.get(js))["lot"] == ".tmp-x"
    assert committed(out, "stdf", "units")["outcome"].to_list() == ["ok"]
    assert committed(out, "stdf", "stdf_rejects").filter(pl.col("severity") == "error").height == 0
    manifest, _ = read_manifest(out, "stdf", DAY)
    assert not manifest.open and {png, js} <= set(manifest.wafer_files)
    again = stdf_run(src, out, "run2")
    assert not again.committed and again.files_done == 0
    assert_clean(out, "stdf", DAY)


# ----- between the listing and the GET ------------------------------------------------------------
def _once(action):
    done = set()

    def hook(key: str) -> None:
        if key not in done:
            done.add(key)
            action(key)
    return hook


def test_an_object_deleted_between_listing_and_get_ends_as_a_vanished_warning(tmp_path: Path) -> None:
    a, b, out, src = local(tmp_path, "a", "b", "out", "stdf")
    gone = "20260111/L1_03P_20260111_090000.txt"
    a.put(gone, a_file("L1", "03", "20260111_090000"))
    a.put("20260111/L1_04P_20260111_091000.txt", a_file("L1", "04", "20260111_091000"))
    etag = a.head(gone).etag
    vanishing = FaultyStore(a, before_get=lambda k: a.delete(k) if k == gone else None)
    report = fm_run(vanishing, b, out, "run1")
    assert report.committed and report.units_failed == 1
    rejects = committed(out, "failmap", "failmap_rejects")
    row = rejects.filter(pl.col("key") == gone).row(0, named=True)
    assert (row["reason"], row["severity"], row["etag"]) == ("vanished", "warning", etag)
    units = committed(out, "failmap", "units")
    assert units.filter(pl.col("unit_key") == gone)["outcome"].to_list() == ["vanished"]
    manifest, _ = read_manifest(out, "failmap", DAY)
    # never read, so still open: the day is due once more, and a run takes that version if
    # it is listed again (put back with the same bytes, the same ETag)
    assert entry_hash(gone, etag) in manifest.seen and manifest.open == {entry_hash(gone, etag)}
    # the next run: the object is gone, so is its warning, and nothing is open
    fm_run(a, b, out, "run2")
    assert committed(out, "failmap", "failmap_rejects").filter(pl.col("key") == gone).height == 0
    assert not read_manifest(out, "failmap", DAY)[0].open

    # the same for an STDF file
    src.put("20260111/gone.stdf", stdf(2, "L5", "01", T0))
    src.put("20260111/stays.stdf", stdf(3, "L5", "02", T0))
    vanishing = FaultyStore(src, before_get=lambda k: src.delete(k) if k == "20260111/gone.stdf" else None)
    report = stdf_run(vanishing, out, "run1")
    assert report.committed and report.files_failed == 1 and report.files_done == 1
    rejects = committed(out, "stdf", "stdf_rejects")
    assert rejects.select("key", "reason", "severity").rows() == [("20260111/gone.stdf", "vanished", "warning")]
    assert len(read_manifest(out, "stdf", DAY)[0].open) == 1
    stdf_run(src, out, "run2")
    assert not read_manifest(out, "stdf", DAY)[0].open


def test_an_object_replaced_between_listing_and_get_is_not_processed_with_the_old_etag(tmp_path: Path) -> None:
    a, b, out, src = local(tmp_path, "a", "b", "out", "stdf")
    key = "20260111/L1_05P_20260111_100000.txt"
    a.put(key, a_file("L1", "05", "20260111_100000", n=12))
    old_etag = a.head(key).etag
    replacing = FaultyStore(a, before_get=_once(
        lambda k: a.put(k, a_file("L1", "05", "20260111_100000", n=20)) if k == key else None))
    report = fm_run(replacing, b, out, "run1")
    assert report.committed and report.units_failed == 1 and report.units_done == 0
    new_etag = a.head(key).etag
    assert new_etag != old_etag
    assert committed(out, "failmap", "failmap_dies").height == 0  # nothing of either version
    rejects = committed(out, "failmap", "failmap_rejects")
    assert rejects.select("key", "etag", "reason", "severity").rows() == [
        (key, old_etag, "changed_since_listing", "warning")]
    assert out.head(png_key(DAY, "L1_05P")) is None
    manifest, _ = read_manifest(out, "failmap", DAY)
    assert manifest.needs_run(entry_hash(key, new_etag), FAB_NOW)  # the sensors will request the new one
    assert manifest.needs_run(entry_hash(key, old_etag), FAB_NOW)  # and the old one, were it put back
    # the next run takes the new version
    report = fm_run(a, b, out, "run2")
    assert report.units_done == 1
    dies = committed(out, "failmap", "failmap_dies")
    assert dies.height == 20 and dies["a_etag"].unique().to_list() == [new_etag]
    assert committed(out, "failmap", "failmap_rejects").height == 0
    assert json.loads(out.get(json_key(DAY, "L1_05P")))["source"]["a_etag"] == new_etag

    # STDF
    skey = "20260111/replaced.stdf"
    src.put(skey, stdf(4, "L6", "01", T0))
    old_etag = src.head(skey).etag
    replacing = FaultyStore(src, before_get=_once(lambda k: src.put(k, stdf(5, "L6", "01", T0 + 60))))
    report = stdf_run(replacing, out, "run1")
    assert report.files_failed == 1 and report.files_done == 0
    assert committed(out, "stdf", "stdf_rejects").select("etag", "reason").rows() == [
        (old_etag, "changed_since_listing")]
    assert committed(out, "stdf", "events").height == 0
    report = stdf_run(src, out, "run2")
    assert report.files_done == 1
    events = committed(out, "stdf", "events")
    assert events["unit_etag"].to_list() == [src.head(skey).etag]


# ----- reads that fail ----------------------------------------------------------------------------
class _FailingReads:
    """``before_get`` that fails the GETs of one key ``times`` times (an OSError, as a
    network error would), then lets them through; counts the attempts."""

    def __init__(self, key: str, times: int) -> None:
        self.key, self.times, self.attempts = key, times, 0

    def __call__(self, key: str) -> None:
        if key == self.key:
            self.attempts += 1
            if self.attempts <= self.times:
                raise OSError(f"injected: connection reset while reading {key}")


@pytest.mark.parametrize("pipeline", ["failmap", "stdf"])
def test_a_failing_read_is_retried_up_to_max_read_attempts_and_is_open_meanwhile(pipeline, tmp_path: Path) -> None:
    a, b, src, out = local(tmp_path, "a", "b", "stdf", "out")
    if pipeline == "failmap":
        key = "20260111/L1_06P_20260111_110000.txt"
        a.put(key, a_file("L1", "06", "20260111_110000"))
        a.put("20260111/L1_07P_20260111_110500.txt", a_file("L1", "07", "20260111_110500"))
        source = a
        run = lambda store, run_id: fm_run(store, b, out, run_id)  # noqa: E731
    else:
        key = "20260111/unreadable.stdf"
        src.put(key, stdf(6, "L7", "01", T0))
        src.put("20260111/fine.stdf", stdf(7, "L7", "02", T0))
        source = src
        run = lambda store, run_id: stdf_run(store, out, run_id)  # noqa: E731
    version = entry_hash(key, source.head(key).etag)
    failing = _FailingReads(key, times=10)
    store = FaultyStore(source, before_get=failing)
    for attempt in range(1, st.MAX_READ_ATTEMPTS + 1):
        report = run(store, f"run{attempt}")
        assert report.committed and failing.attempts == attempt
        units = committed(out, pipeline, "units").filter(pl.col("unit_key") == key)
        assert units.select("outcome", "attempts").rows() == [("read_error", attempt)]
        rejects = committed(out, pipeline, "rejects").filter(pl.col("key") == key)
        assert rejects.select("reason", "severity").rows() == [("read_error", "error")]
        assert "connection reset" in rejects["detail"][0]
        manifest, _ = read_manifest(out, pipeline, DAY)
        if attempt < st.MAX_READ_ATTEMPTS:
            assert version in manifest.open and manifest.needs_run(version, FAB_NOW) and manifest.due(FAB_NOW)
        else:  # attempts exhausted: a final read_error, nothing left for the sensors to request
            assert version not in manifest.open and not manifest.needs_run(version, FAB_NOW)
            assert not manifest.due(FAB_NOW)
    report = run(store, "run-after")
    assert failing.attempts == st.MAX_READ_ATTEMPTS and not report.committed  # not retried any more
    # a forced run tries again, and a read that works now is processed
    failing.times = 0
    report = (fm_run(store, b, out, "forced", force=True) if pipeline == "failmap"
              else stdf_run(store, out, "forced", force=True))
    assert committed(out, pipeline, "units").filter(pl.col("unit_key") == key)["outcome"].to_list() == ["ok"]
    assert not read_manifest(out, pipeline, DAY)[0].open
    assert_clean(out, pipeline, DAY)


@pytest.mark.parametrize("pipeline", ["failmap", "stdf"])
def test_a_read_that_fails_once_is_processed_by_the_next_run(pipeline, tmp_path: Path) -> None:
    a, b, src, out = local(tmp_path, "a", "b", "stdf", "out")
    if pipeline == "failmap":
        key = "20260111/L1_08P_20260111_120000.txt"
        a.put(key, a_file("L1", "08", "20260111_120000"))
        store, run = FaultyStore(a, before_get=_FailingReads(key, 1)), None
        run = lambda run_id: fm_run(store, b, out, run_id)  # noqa: E731
    else:
        key = "20260111/flaky.stdf"
        src.put(key, stdf(8, "L8", "01", T0))
        store = FaultyStore(src, before_get=_FailingReads(key, 1))
        run = lambda run_id: stdf_run(store, out, run_id)  # noqa: E731
    first = run("run1")
    assert first.committed and read_manifest(out, pipeline, DAY)[0].open
    second = run("run2")
    assert second.committed
    units = committed(out, pipeline, "units")
    assert units.select("outcome", "attempts").rows() == [("ok", 0)]
    assert committed(out, pipeline, "rejects").filter(pl.col("reason") == "read_error").height == 0
    manifest, _ = read_manifest(out, pipeline, DAY)
    assert not manifest.open and manifest.next_due is None
    assert out.head(png_key(DAY, "L1_08P") if pipeline == "failmap" else png_key(DAY, "L8_W01-stdf", "stdf"))


# ----- two STDF files of one wafer ----------------------------------------------------------------
LATER = "20260111/a-later.stdf"      # sorts first, starts later: the key order must not decide
EARLIER = "20260111/b-earlier.stdf"


def _slow(key_to_delay: str):
    """``before_get`` that holds back one key until the other file has been read and parsed
    for a while, so the order of processing is the one the test wants."""
    def hook(key: str) -> None:
        if key == key_to_delay:
            time.sleep(0.8)
    return hook


@pytest.mark.parametrize("order", ["later-first", "earlier-first", "later-run-first", "earlier-run-first"])
def test_two_stdf_files_of_one_wafer_show_the_later_start_time_whatever_the_order(order, tmp_path: Path) -> None:
    src, out = local(tmp_path, "stdf", "out")
    later, earlier = stdf(11, "LW", "03", T0 + 7200), stdf(12, "LW", "03", T0)
    if order in ("later-first", "earlier-first"):
        src.put(LATER, later)
        src.put(EARLIER, earlier)
        delayed = EARLIER if order == "later-first" else LATER
        seen: list[str] = []
        lock = threading.Lock()

        def hook(key: str) -> None:
            _slow(delayed)(key)
            with lock:
                seen.append(key)
        stdf_run(FaultyStore(src, before_get=hook), out, "run1", workers=2)
        assert seen[-1] == delayed
    else:
        first, second = ((LATER, later), (EARLIER, earlier)) if order == "later-run-first" else \
            ((EARLIER, earlier), (LATER, later))
        src.put(*first)
        stdf_run(src, out, "run1")
        src.put(*second)
        stdf_run(src, out, "run2")
    events = committed(out, "stdf", "events").sort("unit_key")
    assert events.select("wafer_token", "unit_key", "latest").rows() == [
        ("LW_W03-stdf", LATER, True), ("LW_W03-stdf", EARLIER, False)]
    doc = json.loads(out.get(json_key(DAY, "LW_W03-stdf", "stdf")))
    assert doc["source"]["a_key"] == LATER
    assert_clean(out, "stdf", DAY)
    # the same bytes as a day holding only the later file
    solo_src, solo_out = local(tmp_path / "solo", "stdf", "out")
    solo_src.put(LATER, later)
    stdf_run(solo_src, solo_out, "solo")
    png = png_key(DAY, "LW_W03-stdf", "stdf")
    assert out.get(png) == solo_out.get(png)
    solo_doc = json.loads(solo_out.get(json_key(DAY, "LW_W03-stdf", "stdf")))
    # the same document but for the source's etag (another folder: another file's etag)
    assert doc["source"].pop("a_etag") == src.head(LATER).etag
    assert solo_doc["source"].pop("a_etag") == solo_src.head(LATER).etag
    assert doc == solo_doc
    parts = committed(out, "stdf", "parts")
    assert set(parts["source_key"]) == {LATER, EARLIER}  # both events keep their rows


def test_a_version_that_keeps_vanishing_stops_making_the_day_due(tmp_path: Path) -> None:
    """A store whose listing keeps naming a version it cannot serve: the day stays due for
    it for ``MAX_READ_ATTEMPTS`` runs, then no longer (the reconcile sensor must not run
    the day on every tick); a run still takes that version whenever it is listed."""
    a, b, out, _ = local(tmp_path, "a", "b", "out", "stdf")
    key = "20260111/L1_07P_20260111_090000.txt"
    a.put(key, a_file("L1", "07", "20260111_090000"))
    etag = a.head(key).etag
    ghost = FaultyStore(a, before_get=lambda k: (_ for _ in ()).throw(FileNotFoundError(k)) if k == key else None)
    for run in range(1, st.MAX_READ_ATTEMPTS + 1):
        fm_run(ghost, b, out, f"run{run}")
        manifest, _ = read_manifest(out, "failmap", DAY)
        units = committed(out, "failmap", "units")
        assert units.select("outcome", "attempts").rows() == [("vanished", run)]
        assert (entry_hash(key, etag) in manifest.open) == (run < st.MAX_READ_ATTEMPTS)
    report = fm_run(a, b, out, "served")
    assert report.units_done == 1 and not read_manifest(out, "failmap", DAY)[0].open
