"""The run's memory budget: objects larger than it are rejected unread, units that do
not fit beside the others are processed alone, bombs stop at the budget."""

from __future__ import annotations

import gzip
import threading
from datetime import date, datetime
from pathlib import Path

import polars as pl
import pytest

from failmap_assets.formats.compression import unpack
from failmap_assets.pipeline.failmap_day import PIPELINE, PairingRules, RunnerOptions, run_day
from failmap_assets.pipeline.memory_budget import MemoryBudget, OverBudget
from failmap_assets.pipeline.unit import ProcessingOptions
from failmap_assets.storage.local_store import LocalObjectStore
from tests.support.days import committed

DAY = date(2026, 1, 11)


def test_reservations_never_wait_and_give_everything_back():
    budget = MemoryBudget(100)
    assert budget.try_take(60)
    a = budget.reservation(60)
    charge = a.charger("a")
    charge(30)
    assert budget.used == 90
    with pytest.raises(OverBudget):
        charge(50)                    # 20 more do not fit: refused at once, no waiting
    assert budget.used == 90
    a.release()
    assert budget.used == 0
    assert not budget.try_take(101) and budget.try_take(101, force=True)


def test_many_threads_charging_one_budget_never_exceed_it():
    budget = MemoryBudget(1000)
    peak = []

    def worker(n: int) -> None:
        for _ in range(200):
            if not budget.try_take(10):
                continue
            r = budget.reservation(10)
            try:
                r.charger("a")(n)
            except OverBudget:
                pass
            peak.append(budget.used)
            r.release()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(1, 60, 7)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert max(peak) <= 1000 and budget.used == 0


def test_a_gzip_of_zeros_stops_at_the_budget_not_at_the_ratio():
    data = gzip.compress(b"\0" * (64 << 20), 9)  # ~64 KiB inflating to 64 MiB: under the 1000:1 ratio
    budget = MemoryBudget(8 << 20)
    budget.try_take(len(data))
    r = budget.reservation(len(data))
    with pytest.raises(OverBudget):
        unpack(data, charge=r.charger("a"))
    r.release()
    assert budget.used == 0


def a_text(wafer: str, stime: str, n: int) -> bytes:
    rows = "\n".join(f"{i % 300} {i // 300} 1" for i in range(n))
    return f"FAILMAP 1\nLOT L1\nWAFER {wafer}\nSTIME {stime}\nDIES {n}\n{rows}\nEND\n".encode()


def test_too_large_units_are_rejected_or_processed_alone(tmp_path: Path):
    for name in ("a", "b", "out"):
        (tmp_path / name).mkdir()
    a, b, out = (LocalObjectStore(tmp_path / n) for n in ("a", "b", "out"))
    first = gzip.compress(a_text("02", "20260111_080100", 33_000))
    second = gzip.compress(a_text("03", "20260111_080200", 33_000))
    inflated = len(a_text("02", "20260111_080100", 33_000))
    # Both fit alone; side by side, whichever inflates first finds the budget spent
    # (the other's compressed bytes are held): it is set aside and processed alone.
    budget = len(first) + len(second) + inflated - 1
    a.put("20260111/L1_02P_20260111_080100.gz", first)
    a.put("20260111/L1_03P_20260111_080200.gz", second)
    # plain text over the whole budget: rejected from its listed size, never read
    a.put("20260111/L1_01P_20260111_080000.txt", a_text("01", "20260111_080000", 2 * 33_000))
    logs: list[str] = []
    report = run_day(day=DAY, a_store=a, b_store=b, out_store=out, now=datetime(2026, 1, 13), pairing=PairingRules(),
                     processing=ProcessingOptions(), run_id="r1", log=logs.append,
                     options=RunnerOptions(max_workers=4, max_in_flight=8, memory_budget_bytes=budget))
    rejects = committed(out, PIPELINE, DAY, "failmap_rejects")
    too_large = rejects.filter(pl.col("reason") == "too_large")
    assert too_large["key"].to_list() == ["20260111/L1_01P_20260111_080000.txt"]
    assert "memory budget" in too_large["detail"][0] and too_large["severity"][0] == "error"
    assert sum("processed alone" in line for line in logs) >= 1  # both, when they inflate side by side
    assert report.totals["wafers"] == 2 and report.totals["dies"] == 66_000

    # A unit that does not fit even alone: rejected as too_large, the rest of the day stands.
    a.put("20260111/L1_04P_20260111_080300.gz", gzip.compress(a_text("04", "20260111_080300", 3 * 33_000)))
    report = run_day(day=DAY, a_store=a, b_store=b, out_store=out, now=datetime(2026, 1, 13), pairing=PairingRules(),
                     processing=ProcessingOptions(), run_id="r2", log=logs.append,
                     options=RunnerOptions(max_workers=4, max_in_flight=8, memory_budget_bytes=budget))
    too_large = committed(out, PIPELINE, DAY, "failmap_rejects").filter(pl.col("reason") == "too_large")
    assert sorted(too_large["key"].to_list()) == ["20260111/L1_01P_20260111_080000.txt",
                                                  "20260111/L1_04P_20260111_080300.gz"]
    assert report.totals["wafers"] == 2
