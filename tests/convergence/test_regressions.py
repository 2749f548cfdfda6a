"""What the convergence property found, each pinned down by a small deterministic test.

The seeds that found them ran under an earlier version of the history generator; the
seeds that catch them under the current one (with the fix reverted) are in
``test_day_converges.REGRESSIONS``. The third bug is a race between a run's listing
and its reads that no seed hits reliably: only its test here pins it."""

from __future__ import annotations

import os
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from failmap_assets.pipeline.day_commit import STALE_TEMP_AGE
from failmap_assets.pipeline.failmap_day import PairingRules, RunnerOptions, run_day
from failmap_assets.pipeline.stdf_day import run_stdf_day
from failmap_assets.pipeline.unit import ProcessingOptions
from failmap_assets.storage.layout import json_key, table_dir
from failmap_assets.storage.local_store import LocalObjectStore
from failmap_assets.storage.object_store import PreconditionFailed
from failmap_synth.stdf_writer import make_wafer_sort_stdf
from tests.support.days import committed
from tests.support.memory_store import MemoryStore

DAY = date(2026, 1, 11)
NOW = datetime(2026, 1, 13)
A_KEY = "20260111/L1_07P_20260111_080000.txt"
STDF_KEY = "20260111/L1_07_20260111_080000.stdf"
A_TEXT = b"FAILMAP 1\nLOT L1\nWAFER 07\nSTIME 20260111_080000\nDIES 2\n0 0 1\n1 0 7\nEND\n"


def _failmap(a, b, out, run_id: str):
    return run_day(day=DAY, a_store=a, b_store=b, out_store=out, now=NOW, pairing=PairingRules(),
                   processing=ProcessingOptions(), options=RunnerOptions(max_workers=2, max_in_flight=2),
                   run_id=run_id, log=lambda _: None)


def _stdf(source, out, run_id: str):
    return run_stdf_day(day=DAY, source=source, out=out, retest_rule="last", pixels_per_die=4, run_id=run_id,
                        log=lambda _: None)


def _local(tmp_path: Path) -> dict[str, LocalObjectStore]:
    for name in ("a", "b", "stdf", "out"):
        (tmp_path / name).mkdir()
    return {name: LocalObjectStore(tmp_path / name) for name in ("a", "b", "stdf", "out")}


def test_a_run_with_nothing_new_still_removes_a_killed_runs_old_temporaries(tmp_path: Path) -> None:
    """Found by seed 121 (now local 33): a run killed while writing an STDF table left
    temp files; every later run had nothing new, committed nothing and so never
    removed them (only a commit's garbage collection did), however old they got."""
    s = _local(tmp_path)
    s["a"].put(A_KEY, A_TEXT)
    s["stdf"].put(STDF_KEY, make_wafer_sort_stdf(3, dies=20, tests_per_die=4, lot_id="L1", wafer_id="07"))
    assert _failmap(s["a"], s["b"], s["out"], "r1").committed and _stdf(s["stdf"], s["out"], "r1").committed
    out = tmp_path / "out"
    left = [out / table_dir("failmap_dies", DAY) / ".~tmp-0123456789abcdef",
            out / "parquet/stdf/parts/date=2026-01-11/product=SCT101A/test_type=CP1/.~tmp-fedcba9876543210",
            out / "png/2026-01-11/.~tmp-00112233445566aa"]
    fresh = out / "json/2026-01-11/.~tmp-aa66554433221100"
    for path in [*left, fresh]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half a file")
    old = time.time() - STALE_TEMP_AGE.total_seconds() - 60
    for path in left:
        os.utime(path, (old, old))  # left by a run killed more than STALE_TEMP_AGE ago

    assert not _failmap(s["a"], s["b"], s["out"], "r2").committed
    assert not _stdf(s["stdf"], s["out"], "r2").committed
    assert [p for p in left if p.exists()] == []
    assert fresh.exists()  # a writer that may still be at it: not touched


def _put_again_later(store: MemoryStore, key: str, seconds: int) -> datetime:
    """The same bytes put again ``seconds`` later: on S3 the ETag (the MD5) stays, the
    time does not."""
    data, modified = store._data[key]
    store._data[key] = (data, modified + timedelta(seconds=seconds))
    return store._data[key][1]


def test_the_same_bytes_put_again_refresh_the_committed_listings(tmp_path: Path) -> None:
    """Found by seed 413 (now s3 4 and 7): an STDF file deleted and put back with the same
    bytes kept its ETag, so its unit stood and the run saw nothing new; the committed
    stdf_objects listing kept the old last_modified, while a clean run lists the new
    one. The fail-map runner had the same gap: its inputs digest left last_modified out."""
    out = _local(tmp_path)["out"]
    a, b, stdf = MemoryStore(), MemoryStore(), MemoryStore()
    a.put(A_KEY, A_TEXT)
    stdf.put(STDF_KEY, make_wafer_sort_stdf(3, dies=20, tests_per_die=4, lot_id="L1", wafer_id="07"))
    assert _failmap(a, b, out, "r1").committed and _stdf(stdf, out, "r1").committed

    a_time, stdf_time = _put_again_later(a, A_KEY, 5), _put_again_later(stdf, STDF_KEY, 5)
    f, s = _failmap(a, b, out, "r2"), _stdf(stdf, out, "r2")
    assert f.committed and f.units_done == 0  # nothing to process, but a listing to commit
    assert s.committed and s.files_done == 0
    for pipeline, table, when in (("failmap", "bucket_a_objects", a_time), ("failmap", "failmap_pairs", a_time),
                                  ("stdf", "stdf_objects", stdf_time)):
        assert committed(out, pipeline, DAY, table)["last_modified"].to_list() == [when], table
    assert not _failmap(a, b, out, "r3").committed and not _stdf(stdf, out, "r3").committed


class _GoneOnce(MemoryStore):
    """The first GET of ``key`` finds it deleted (or replaced), as if it went between the
    run's listing and its read; then it is back with the very same bytes (same ETag)."""

    def __init__(self, key: str, error: type[Exception]) -> None:
        super().__init__()
        self.key, self.error, self.fired = key, error, False

    def get(self, key: str, *, if_match: str | None = None) -> bytes:
        if key == self.key and not self.fired:
            self.fired = True
            raise self.error(key)
        return super().get(key, if_match=if_match)


@pytest.mark.parametrize(("error", "outcome"), [(FileNotFoundError, "vanished"), (PreconditionFailed, "changed")])
def test_an_object_that_went_between_listing_and_reading_is_read_when_it_is_back(tmp_path, error, outcome):
    """Found by seed 437 (S3, a race): an A file was deleted between a run's listing and its
    read, then put back with the same bytes. The unit was recorded ``vanished`` with its
    attempts used up, and a unit with attempts used up counted as done: the same (key,
    ETag) listed again was kept, with no rows, events or files, forever. Likewise a
    partner or STDF file replaced and then put back as it was (``changed``)."""
    out = _local(tmp_path)["out"]
    a, b, stdf = _GoneOnce(A_KEY, error), MemoryStore(), _GoneOnce(STDF_KEY, error)
    a.put(A_KEY, A_TEXT)
    stdf.put(STDF_KEY, make_wafer_sort_stdf(3, dies=20, tests_per_die=4, lot_id="L1", wafer_id="07"))
    _failmap(a, b, out, "r1"), _stdf(stdf, out, "r1")
    for pipeline in ("failmap", "stdf"):
        assert committed(out, pipeline, DAY, "units")["outcome"].to_list() == [outcome]

    f, s = _failmap(a, b, out, "r2"), _stdf(stdf, out, "r2")
    assert f.units_done == 1 and s.files_done == 1
    for pipeline in ("failmap", "stdf"):
        assert committed(out, pipeline, DAY, "units")["outcome"].to_list() == ["ok"]
        assert committed(out, pipeline, DAY, "events")["latest"].to_list() == [True]
    assert committed(out, "failmap", DAY, "failmap_dies").height == 2
    assert out.head(json_key(DAY, "L1_07P")) is not None
