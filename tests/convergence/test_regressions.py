"""What the convergence property found, each pinned down by a small deterministic test
(the seed that found it stays in ``test_day_converges.REGRESSIONS``)."""

from __future__ import annotations

import os
import time
from datetime import date, datetime
from pathlib import Path

from failmap_assets.pipeline.day_commit import STALE_TEMP_AGE
from failmap_assets.pipeline.failmap_day import PairingRules, RunnerOptions, run_day
from failmap_assets.pipeline.stdf_day import run_stdf_day
from failmap_assets.pipeline.unit import ProcessingOptions
from failmap_assets.storage.layout import table_dir
from failmap_assets.storage.local_store import LocalObjectStore
from failmap_synth.stdf_writer import make_wafer_sort_stdf

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
    """Seed 121: a run killed while writing an STDF table left ``.tmp-`` files; every later
    run had nothing new, committed nothing and so never removed them (only a commit's
    garbage collection did), however old they got."""
    s = _local(tmp_path)
    s["a"].put(A_KEY, A_TEXT)
    s["stdf"].put(STDF_KEY, make_wafer_sort_stdf(3, dies=20, tests_per_die=4, lot_id="L1", wafer_id="07"))
    assert _failmap(s["a"], s["b"], s["out"], "r1").committed and _stdf(s["stdf"], s["out"], "r1").committed
    out = tmp_path / "out"
    left = [out / table_dir("failmap_dies", DAY) / ".tmp-0123456789abcdef",
            out / "parquet/stdf/parts/date=2026-01-11/product=SCT101A/test_type=CP1/.tmp-fedcba9876543210",
            out / "png/2026-01-11/.tmp-00112233445566aa"]
    fresh = out / "json/2026-01-11/.tmp-aa66554433221100"
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
