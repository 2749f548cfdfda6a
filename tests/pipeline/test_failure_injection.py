"""Every write of a day run, made to fail one at a time.

A store wrapper (``tests/support/faulty_store.py``) fails the N-th PUT (and, in a
separate sweep, the N-th DELETE) of a run, for every N from 1 to the number of writes
the run makes (counted by a first, healthy run). The runs start from a day that is
already committed and then changed (a retest, a re-upload, deletions, a new file),
or force a complete day. After each injected failure:

* the committed day, read through its manifest, is exactly the old one (its files
  untouched; a PNG / JSON redrawn before the failure is not the recorded version,
  so the next run redraws it) or exactly the new one;
* the failed run raised the injected error (a failed lease release, after the
  commit, is only logged; a failed delete of garbage after the commit raises with
  the day already new);
* a plain rerun completes and leaves the day equal to a clean run over the same
  objects (die rows as a multiset, PNG and JSON bytes, rejects without first_seen,
  pairs, listings, state) with no leftover file in the day's folders.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from failmap_assets.pipeline.day_lease import LeaseOptions
from failmap_assets.pipeline.failmap_day import PairingRules, RunnerOptions, run_day
from failmap_assets.pipeline.stdf_day import run_stdf_day
from failmap_assets.pipeline.unit import ProcessingOptions
from failmap_assets.storage.day_manifest import DayManifest, read_manifest
from failmap_assets.storage.layout import lease_key, manifest_key
from failmap_assets.storage.local_store import LocalObjectStore
from failmap_assets.storage.object_store import ObjectStore
from failmap_synth.day import generate_day
from failmap_synth.stdf_writer import make_wafer_sort_stdf
from tests.support.day_view import assert_clean, day_view, diff, read_files
from tests.support.faulty_store import FaultyStore, InjectedFault

DAY = date(2026, 1, 11)
NOW = datetime(2026, 1, 13)
REPO = Path(__file__).resolve().parents[2]
# no renewal inside a run (every third of the lease time): the number of writes is fixed
SWEEP_LEASE = LeaseOptions(ttl_s=600, wait_s=60, poll_s=0.05)
# a rerun takes over a lease whose release failed (its holder, this process, is alive) after 5 s
RERUN_LEASE = LeaseOptions(ttl_s=5, wait_s=60, poll_s=0.05)


# ----- the days ---------------------------------------------------------------------------------
def a_file(wafer: str, stime: str, dies: list[tuple[int, int, int]]) -> bytes:
    rows = "\n".join(f"{x} {y} {b}" for x, y, b in dies)
    return f"FAILMAP 1\nLOT N4F658.1\nWAFER {wafer}\nSTIME {stime}\nDIES {len(dies)}\n{rows}\nEND\n".encode()


def grid(n: int, bin_of: Callable[[int], int]) -> list[tuple[int, int, int]]:
    return [(i % 7, i // 7, bin_of(i)) for i in range(n)]


# keys of the synthetic day (generate_day is deterministic; the test checks they exist)
RETESTED = "20260111/N4F658.1_17P_20260111_064856.7z"
REUPLOADED = "20260111/N4F658.1_19P_20260111_065011.7z"
DELETED = "20260111/N4F658.1_20P_20260111_065147.gz"
EARLIER = "20260111/N4F658.1_23P_20260111_065332.Z"
# added by the test
LATER_RETEST_23 = "20260111/N4F658.1_23P_20260111_180000.txt"   # committed, then deleted: 23P redrawn
RETEST_17 = "20260111/N4F658.1_17P_20260111_170000.txt"         # a retest after the commit
NEW_24 = "20260111/N4F658.1_24P_20260111_120000.txt"            # a new wafer


def failmap_old(a: ObjectStore, b: ObjectStore) -> None:
    keys = []
    for o in generate_day(DAY, 5, 7, broken=True, dies_range=(200, 800), typical_dies=400):
        if o.bucket in ("a", "b"):
            {"a": a, "b": b}[o.bucket].put(o.key, o.data)
            keys.append(o.key)
    assert {RETESTED, REUPLOADED, DELETED, EARLIER} <= set(keys), "generate_day changed: pick other keys"
    a.put(LATER_RETEST_23, a_file("23", "20260111_180000", grid(30, lambda i: 1 + i % 3)))


def failmap_changes(a: ObjectStore, b: ObjectStore) -> None:
    a.put(RETEST_17, a_file("17", "20260111_170000", grid(40, lambda i: 1 if i % 5 else 7)))
    a.put(REUPLOADED, a_file("19", "20260111_065011", grid(25, lambda i: 1 + i % 2)))
    a.delete(DELETED)
    a.delete(LATER_RETEST_23)
    a.put(NEW_24, a_file("24", "20260111_120000", grid(35, lambda i: 1)))


T0 = int(datetime(2026, 1, 11, 8, tzinfo=UTC).timestamp())


def stdf(seed: int, lot: str, wafer: str, start: int) -> bytes:
    return make_wafer_sort_stdf(seed, dies=120, tests_per_die=6, lot_id=lot, wafer_id=wafer, start_time=start,
                                sites=1, retests=1)


def stdf_old(src: ObjectStore) -> None:
    src.put("20260111/L1_W01_first.stdf", stdf(1, "L1", "01", T0 + 1000))
    src.put("20260111/L1_W01_again.stdf", stdf(2, "L1", "01", T0 + 5000))   # retest, deleted later
    src.put("20260111/L1_W02.stdf", stdf(3, "L1", "02", T0 + 2000))
    src.put("20260111/L2_W01.stdf", stdf(4, "L2", "01", T0 + 3000))        # re-uploaded later
    src.put("20260111/notes.txt", b"not an STDF file\n")                  # rejected


def stdf_changes(src: ObjectStore) -> None:
    src.put("20260111/L1_W02_retest.stdf", stdf(5, "L1", "02", T0 + 9000))
    src.put("20260111/L2_W01.stdf", stdf(6, "L2", "01", T0 + 3000))
    src.delete("20260111/L1_W01_again.stdf")
    src.put("20260111/L3_W05.stdf", stdf(7, "L3", "05", T0 + 4000))


# ----- the runs -----------------------------------------------------------------------------------
# ``serial``: one download and one processing thread, so every run of a sweep makes the
# same writes in the same order (with several threads, two events of one wafer drawn in
# either order make one or two PNG / JSON writes). Reruns and the reference run in parallel.
def failmap_runner(a: ObjectStore, b: ObjectStore) -> Callable:
    def run(out: ObjectStore, run_id: str, force: bool = False, lease: LeaseOptions = SWEEP_LEASE,
            part_rows: int = 250_000, serial: bool = True):
        threads = 1 if serial else 4
        return run_day(day=DAY, a_store=a, b_store=b, out_store=out, now=NOW, pairing=PairingRules(),
                       processing=ProcessingOptions(), run_id=run_id, log=lambda _: None,
                       options=RunnerOptions(max_workers=threads, max_in_flight=4, cpu_threads=threads,
                                             part_rows=part_rows, force=force, lease=lease))
    return run


def stdf_runner(src: ObjectStore) -> Callable:
    def run(out: ObjectStore, run_id: str, force: bool = False, lease: LeaseOptions = SWEEP_LEASE,
            serial: bool = True, **_):
        return run_stdf_day(day=DAY, source=src, out=out, retest_rule="last", pixels_per_die=4, run_id=run_id,
                            force=force, workers=1 if serial else 4, lease=lease, log=lambda _: None)
    return run


@dataclass
class Case:
    name: str
    pipeline: str
    template: Path                # an output folder with the committed day every run starts from
    run: Callable
    force: bool
    reference: dict               # what a clean run over the same objects commits
    old_manifest: bytes
    old_files: dict[str, bytes]


def _store(path: Path) -> LocalObjectStore:
    path.mkdir(parents=True, exist_ok=True)
    return LocalObjectStore(path)


def make_case(root: Path, pipeline: str, *, forced: bool) -> Case:
    """Sources, the committed day the sweep starts from, and the clean reference."""
    if pipeline == "failmap":
        a, b = _store(root / "a"), _store(root / "b")
        failmap_old(a, b)
        run = failmap_runner(a, b)
        changes = lambda: failmap_changes(a, b)  # noqa: E731
    else:
        src = _store(root / "stdf")
        stdf_old(src)
        run = stdf_runner(src)
        changes = lambda: stdf_changes(src)  # noqa: E731
    template = root / "committed"
    if not forced:
        run(_store(template), "old", part_rows=1000, serial=False)   # the old day, in several parts
        changes()
    run(_store(root / "reference"), "clean", part_rows=1000, serial=False)
    if forced:  # the complete day, forced again
        shutil.copytree(root / "reference", template, copy_function=os.link)
    old = LocalObjectStore(template)
    return Case(f"{pipeline}-{'forced' if forced else 'changed'}", pipeline, template, run, forced,
                day_view(LocalObjectStore(root / "reference"), pipeline, DAY),
                old.get(manifest_key(pipeline, DAY)), {o.key: old.get(o.key) for o in old.list()})


def snapshot(case: Case, where: Path) -> LocalObjectStore:
    """A copy of the committed day with the same ETags: hard links (every write replaces
    a file by renaming a new one over it, so the template never changes)."""
    shutil.copytree(case.template, where, copy_function=os.link)
    return LocalObjectStore(where)


def check_after_failure(case: Case, out: LocalObjectStore, raised: BaseException | None, faulty: FaultyStore,
                        kind: str) -> str:
    """'old' or 'new': which day the commit is after the failed run (see the module docstring)."""
    if raised is not None:  # the injected error itself, never one that hides it
        assert isinstance(raised, InjectedFault) or isinstance(raised.__cause__, InjectedFault), repr(raised)
    data = out.get(manifest_key(case.pipeline, DAY))
    if data == case.old_manifest:
        assert raised is not None, f"the run neither committed nor raised ({faulty.failed} failed)"
        old = DayManifest.decode(data)
        for key in {*(f for fs in old.tables.values() for f in fs), *old.state.values()}:
            assert out.get(key) == case.old_files[key], f"{key} of the old commit was changed"
        for key, etag in old.wafer_files.items():
            info = out.head(key)
            assert info is not None, f"{key} of the old commit was deleted before a commit"
            if info.etag == etag:
                assert out.get(key) == case.old_files[key]
        return "old"
    view = day_view(out, case.pipeline, DAY)
    assert view == case.reference, diff(view, case.reference)
    if kind == "put":  # the only PUT after the commit: the lease release (logged, not raised)
        assert raised is None and faulty.failed == lease_key(case.pipeline, DAY), (faulty.failed, raised)
    else:
        assert raised is not None, "a failed delete after the commit was not reported"
    return "new"


def sweep(case: Case, kind: str, tmp: Path) -> dict:
    counting = FaultyStore(snapshot(case, tmp / "count"))
    case.run(counting, "counting", case.force)
    writes = counting.puts if kind == "put" else counting.deletes
    total = len(writes)
    assert total > 0
    assert day_view(counting.inner, case.pipeline, DAY) == case.reference
    outcomes: Counter = Counter()
    for n in range(1, total + 1):
        where = tmp / f"{kind}-{n}"
        faulty = FaultyStore(snapshot(case, where), **{f"fail_{kind}": n})
        raised = None
        try:
            case.run(faulty, f"fail{n}", case.force)
        except Exception as exc:  # noqa: BLE001 - checked below
            raised = exc
        assert faulty.failed is not None, f"{kind} #{n} never happened (the run made fewer writes this time)"
        outcome = check_after_failure(case, faulty.inner, raised, faulty, kind)
        outcomes[outcome] += 1
        rerun = case.run(LocalObjectStore(where), f"rerun{n}", False, RERUN_LEASE, serial=False)
        if outcome == "old" and not case.force:  # (a forced day that failed at once has nothing to redo)
            assert rerun.committed, f"after a failed {kind} #{n} ({faulty.failed}) the rerun committed nothing"
        view = day_view(LocalObjectStore(where), case.pipeline, DAY)
        assert view == case.reference, (n, faulty.failed, diff(view, case.reference))
        assert_clean(LocalObjectStore(where), case.pipeline, DAY)
        shutil.rmtree(where)
    stats = {"case": case.name, "kind": kind, "writes_per_run": total, "tried": total, **outcomes,
             "kinds": dict(Counter(_kind_of(k) for k in writes))}
    print(stats)
    return stats


def _kind_of(key: str) -> str:
    if key.startswith("state/"):
        return key.rsplit("/", 1)[-1].split("-")[0].replace(".json", "")
    if key.startswith(("png/", "json/")):
        return key.split("/")[0]
    return key.split("/")[1] if not key.startswith("parquet/stdf/") else f"stdf/{key.split('/')[2]}"


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> dict[str, Case]:
    root = tmp_path_factory.mktemp("injection")
    return {c.name: c for c in (
        make_case(root / "fc", "failmap", forced=False),
        make_case(root / "ff", "failmap", forced=True),
        make_case(root / "sc", "stdf", forced=False),
        make_case(root / "sf", "stdf", forced=True),
    )}


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["put", "delete"])
@pytest.mark.parametrize("name", ["failmap-changed", "failmap-forced", "stdf-changed", "stdf-forced"])
def test_every_write_of_a_run_failing_leaves_the_old_or_new_day_and_a_rerun_completes(
        cases: dict[str, Case], name: str, kind: str, tmp_path: Path) -> None:
    stats = sweep(cases[name], kind, tmp_path)
    if kind == "delete":
        assert stats.get("new") == stats["tried"]  # deletes come only after the commit
    else:
        assert stats.get("old") == stats["tried"] - 1 and stats.get("new") == 1  # all but the lease release


# ----- the three cases measured in the issue ----------------------------------------------------
def _dies(store: ObjectStore):
    manifest, _ = read_manifest(store, "failmap", DAY)
    return read_files(store, manifest.tables["failmap_dies"])


@pytest.mark.parametrize(("case_name", "when", "part"), [
    ("failmap-forced", "forced-part", "-0000.parquet"),   # a forced run writes new parts only
    ("failmap-changed", "rewrite", "-1000.parquet"),      # flags flipped / units dropped: old parts rewritten
])
def test_a_run_killed_after_a_part_file_is_written_then_a_rerun_loses_no_rows(
        cases: dict[str, Case], tmp_path: Path, case_name: str, when: str, part: str) -> None:
    case = cases[case_name]
    out = snapshot(case, tmp_path / "out")
    src = case.template.parent
    proc = subprocess.run([sys.executable, "-m", "tests.support.killed_run", str(src / "a"), str(src / "b"),
                           str(tmp_path / "out"), DAY.isoformat(), NOW.isoformat(), when],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stdout, proc.stderr)
    assert "killing after" in proc.stdout and part in proc.stdout, proc.stdout
    assert read_manifest(out, "failmap", DAY)[0].generation == 1  # killed before its commit
    rerun = case.run(out, "after-kill", False, RERUN_LEASE)  # the dead holder's lease is taken at once
    assert rerun.committed and rerun.waited_s < 5
    view = day_view(out, "failmap", DAY)
    assert view == case.reference, diff(view, case.reference)
    if case_name == "failmap-forced":  # the forced run's objects are the committed day's: every row is back
        assert _dies(out).height == _dies(LocalObjectStore(case.template)).height > 0
    assert_clean(out, "failmap", DAY)


def test_a_forced_run_whose_manifest_put_fails_raises_and_a_rerun_has_every_row(
        cases: dict[str, Case], tmp_path: Path) -> None:
    case = cases["failmap-forced"]
    counting = FaultyStore(snapshot(case, tmp_path / "count"))
    case.run(counting, "counting", True)
    n = counting.puts.index(manifest_key("failmap", DAY)) + 1
    faulty = FaultyStore(snapshot(case, tmp_path / "out"), fail_put=n)
    with pytest.raises(InjectedFault, match="manifest.json"):
        case.run(faulty, "forced", True)
    out = faulty.inner
    assert out.get(manifest_key("failmap", DAY)) == case.old_manifest
    rerun = case.run(out, "rerun", False, RERUN_LEASE)
    assert rerun.committed
    assert rerun.units_failed == 0 and rerun.download_errors == []
    view = day_view(out, "failmap", DAY)
    assert view == case.reference, diff(view, case.reference)
    assert _dies(out).height == _dies(LocalObjectStore(case.template)).height
    assert_clean(out, "failmap", DAY)


@pytest.mark.parametrize("rejects_file", ["parquet/failmap_rejects/", "state/failmap/date=2026-01-11/rejects-"])
def test_a_failed_put_of_the_rejects_then_a_rerun_has_the_rejects(
        cases: dict[str, Case], rejects_file: str, tmp_path: Path) -> None:
    case = cases["failmap-changed"]
    counting = FaultyStore(snapshot(case, tmp_path / "count"))
    case.run(counting, "counting", False)
    (n,) = [i + 1 for i, k in enumerate(counting.puts) if k.startswith(rejects_file)]
    faulty = FaultyStore(snapshot(case, tmp_path / "out"), fail_put=n)
    with pytest.raises(InjectedFault, match="rejects"):
        case.run(faulty, "fails", False)
    out = faulty.inner
    assert out.get(manifest_key("failmap", DAY)) == case.old_manifest
    case.run(out, "rerun", False, RERUN_LEASE)
    manifest, _ = read_manifest(out, "failmap", DAY)
    rejects = read_files(out, manifest.tables["failmap_rejects"])
    assert rejects.height == len(case.reference["table:failmap_rejects"]) > 0
    assert {"bad_row", "truncated", "not_a_failmap_key", "corrupt_archive", "value_count"} <= set(rejects["reason"])
    view = day_view(out, "failmap", DAY)
    assert view == case.reference, diff(view, case.reference)
