"""One seed of the convergence property: deliver a day's history in batches, run the day
after each batch (sometimes twice at once, sometimes killed), then compare the day with
one clean run over the final objects into an empty output.

Batch modes (``MODES``):

``run``        deliver the batch, then one run (sometimes with ``--force``)
``pair``       deliver, then two runs of the day started at the same moment: they must
               take turns through the lease, and both exit 0
``kill``       deliver, start a run, SIGKILL it at one of ``KILL_POINTS``: soon after it
               took the fail-map lease, while processing, right after a part file or
               a wafer file appeared, right after its manifest PUT (while it removes
               garbage), in the STDF pipeline, or 0.05..1.5 s after it took the day
               (possibly after it ended: then it must have exited 0)
``pair_kill``  two runs at once; the one holding the day is killed, the other (waiting on
               the lease) takes over from the dead holder and must exit 0
``overlap``    start a run, deliver the batch while it works (objects replaced or deleted
               between its listing and its reads), wait for it
``pause``      (with ``pauses``) deliver, start a run, SIGSTOP it at a kill point; a second
               run takes the day over once the lease is not renewed (3 s), and finishes;
               then SIGCONT the first: it must stop writing (exit 1, lease lost) or
               have nothing left to write; the next run repairs whatever it did. (Frozen
               inside a conditional write of a local folder, it holds that file's flock:
               no run can take the day until it runs again, so it is resumed earlier.)

The run after a kill gets a lease time of 3 s (``FAILMAP_LEASE_SECONDS``), so a dead
holder would lose the day quickly even if its PID were not checked.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from failmap_assets.pipeline.day_commit import STALE_TEMP_AGE
from failmap_assets.storage.layout import manifest_key, table_dir, wafer_dirs
from failmap_assets.storage.object_store import ObjectStore
from tests.support import day_outputs as outputs
from tests.support.day_history import History, Op, make_history, plan_batches
from tests.support.day_runs import DayRuns, RunProc, lease_holder, wait_until

DAY = date(2026, 1, 11)
MODES = ("run", "pair", "kill", "pair_kill", "overlap", "pause")
_MODE_WEIGHTS = (0.30, 0.22, 0.22, 0.10, 0.16, 0.10)
SUCCESSOR_LEASE_S = 3.0


@dataclass
class Figures:
    seed: int
    backend: str
    launcher: str
    as_of: str = ""
    wafers: int = 0
    operations: int = 0
    objects: int = 0
    batches: int = 0
    modes: Counter = field(default_factory=Counter)
    runs: int = 0
    forced: int = 0             # runs with --force (everything processed again)
    concurrent_pairs: int = 0
    kills: int = 0              # SIGKILLs sent
    kills_missed: int = 0       # the run had finished before the kill (or pause) was due
    pauses: int = 0             # runs stopped (SIGSTOP), taken over, resumed
    paused_lost: int = 0        # ... which then stopped with their lease lost
    paused_at: Counter = field(default_factory=Counter)
    paused_in_lock: int = 0     # ... frozen while holding a local file lock: resumed before the takeover
    killed_at: Counter = field(default_factory=Counter)   # what the killed run had logged last
    temporaries_aged: int = 0
    comparisons: int = 0        # tables, PNG and JSON files and manifests compared
    rows: int = 0
    equal: bool = False
    seconds: float = 0.0

    def line(self) -> str:
        return (f"seed {self.seed} {self.backend}/{self.launcher} (as of {self.as_of}): {self.wafers} wafers, "
                f"{self.operations} ops -> {self.objects} objects, {self.batches} batches {dict(self.modes)}, "
                f"{self.runs} runs ({self.forced} forced), "
                f"{self.concurrent_pairs} concurrent pairs, {self.kills} kills ({self.kills_missed} after the end; "
                f"{dict(self.killed_at)}), "
                + (f"{self.pauses} paused ({self.paused_lost} lost the day, {self.paused_in_lock} frozen holding a "
                   f"file lock; {dict(self.paused_at)}), " if self.pauses else "")
                + f"{self.comparisons} comparisons over {self.rows} rows, "
                f"{'all equal' if self.equal else 'DIFFERENT'}, {self.seconds:.1f} s")


def fab_times(rng: random.Random, batches: int) -> list[str]:
    """The ``--as-of`` of each batch's runs, then of the final and the clean run: mostly
    two days later (every A past its grace), or a fixed time of the day (some A files
    stay pending), or time passing from batch to batch (pending A files fall due
    between runs; the final and clean runs see the last time)."""
    def at(minute: int) -> str:
        return str(datetime(2026, 1, 11) + timedelta(minutes=minute))

    r = rng.random()
    if r < 0.55:
        return ["2026-01-13 00:00:00"] * (batches + 1)
    if r < 0.75:
        return [at(rng.randint(8 * 60, 22 * 60))] * (batches + 1)
    times = sorted(rng.randint(8 * 60, 26 * 60) for _ in range(batches + 1))
    return [at(m) for m in times]


def choose_modes(rng: random.Random, n: int, pauses: bool = False) -> list[str]:
    modes = rng.choices(MODES, _MODE_WEIGHTS, k=n)
    if not pauses:
        modes = [rng.choice(("run", "kill")) if m == "pause" else m for m in modes]
    # every seed has at least one concurrent pair and one kill when it has room for them
    free = [i for i, m in enumerate(modes) if m in ("run", "overlap")]
    rng.shuffle(free)
    if not any(m in ("pair", "pair_kill") for m in modes) and free:
        modes[free.pop()] = "pair"
    if not any(m in ("kill", "pair_kill") for m in modes) and free:
        modes[free.pop()] = "kill"
    return modes


def deliver(stores: dict[str, ObjectStore], ops: list[Op], rng: random.Random | None = None) -> None:
    """Apply ``ops`` in order; with ``rng``, a few ms apart (while a run reads the day)."""
    for op in ops:
        if op.data is None:
            stores[op.bucket].delete(op.key)
        else:
            stores[op.bucket].put(op.key, op.data)
        if rng is not None:
            time.sleep(rng.uniform(0.0, 0.04))


def _last_words(run: RunProc) -> str:
    """Where a killed run was, from what it had logged."""
    err, out = run.stderr(), run.stdout()
    if '"pipeline": "stdf"' in out:
        return "after both"
    if "committed STDF generation" in err:
        return "stdf: after the manifest"
    if '"pipeline": "failmap"' in out:
        return "stdf: before its commit"
    if "committed generation" in err:
        return "failmap: after the manifest"
    if "unit(s) to process" in err or "progress" in err:
        return "failmap: processing / writing"
    return "failmap: listing / pairing"


def _holder(store: ObjectStore, pipeline: str, runs: list[RunProc], timeout: float = 60.0) -> RunProc | None:
    """Which of ``runs`` holds ``pipeline``'s lease of the day (None: all ended first)."""
    deadline = time.monotonic() + timeout
    by_id = {r.run_id: r for r in runs}
    while time.monotonic() < deadline:
        if all(r.poll() is not None for r in runs):
            return None
        run = by_id.get(lease_holder(store, pipeline, DAY))
        if run is not None and run.poll() is None:
            return run
        time.sleep(0.003)
    raise AssertionError(f"none of {list(by_id)} took the {pipeline} lease within {timeout:.0f} s")


KILL_POINTS = ("lease", "processing", "part", "wafer_file", "manifest", "stdf", "stdf_manifest", "random")


def kill_point(rng: random.Random, run: RunProc, out: ObjectStore) -> tuple[str, Callable[[], bool], float]:
    """Where to kill ``run``: (name, an event to wait for, the delay after it)."""
    point = rng.choice(KILL_POINTS)
    holds = lambda pipeline: lease_holder(out, pipeline, DAY) == run.run_id  # noqa: E731

    def appeared(prefixes: tuple[str, ...]) -> Callable[[], bool]:
        before = {o.key: o.etag for p in prefixes for o in out.list(p)}
        return lambda: any(before.get(o.key) != o.etag for p in prefixes for o in out.list(p))

    if point == "lease":
        return point, lambda: holds("failmap"), rng.uniform(0.0, 0.05)
    if point == "processing":
        return point, lambda: "unit(s) to process" in run.stderr(), rng.uniform(0.0, 0.1)
    if point == "part":
        return point, appeared((table_dir("failmap_dies", DAY),)), rng.uniform(0.0, 0.02)
    if point == "wafer_file":
        return point, appeared(wafer_dirs(DAY)), rng.uniform(0.0, 0.03)
    if point == "manifest":
        return point, appeared((manifest_key("failmap", DAY),)), rng.uniform(0.0, 0.02)
    if point == "stdf":
        return point, lambda: holds("stdf"), rng.uniform(0.0, 0.1)
    if point == "stdf_manifest":
        return point, appeared((manifest_key("stdf", DAY),)), rng.uniform(0.0, 0.01)
    return point, lambda: holds("failmap"), rng.uniform(0.05, 1.5)


def converge(seed: int, *, backend: str, sources: dict[str, ObjectStore], out: ObjectStore, clean: ObjectStore,
             env: dict[str, str], clean_location: str, logs: Path, launcher: str = "fork",
             batches: tuple[int, int] = (3, 8), local_out: Path | None = None, pauses: bool = True) -> Figures:
    """Run one seed (see the module docstring); raises AssertionError with the details
    when a run fails or the day differs from the clean run."""
    started = time.monotonic()
    history: History = make_history(DAY, seed)
    rng = random.Random(f"delivery-{seed}")
    plan = plan_batches(history, rng, rng.randint(*batches))
    modes = choose_modes(rng, len(plan), pauses)
    as_ofs = fab_times(rng, len(plan))
    as_of = as_ofs[-1]
    fig = Figures(seed, backend, launcher, as_of=as_of if len(set(as_ofs)) == 1 else f"{as_ofs[0]} .. {as_of}",
                  wafers=history.wafers, operations=len(history.ops),
                  objects=len(history.final()), batches=len(plan), modes=Counter(modes))
    runs = DayRuns(DAY, as_of, env, logs, launcher)
    lease_next: float | None = None

    def after_success(i: int) -> None:
        # after every successful run (the last one of a batch, when none was killed after
        # it) a plain listing of each folder shows exactly what the manifests name
        problems = outputs.folder_problems(out, DAY)
        assert not problems, f"seed {seed} ({backend}), after batch {i} ({modes[i]}):\n  " + "\n  ".join(problems)

    try:
        for i, (ops, mode) in enumerate(zip(plan, modes)):
            name = f"s{seed}b{i}"
            runs.as_of = as_ofs[i]
            lease = lease_next
            lease_next = None
            if mode == "overlap":
                run = runs.start(f"{name}o", lease_s=lease)
                time.sleep(rng.uniform(0.0, 0.4))
                deliver(sources, ops, rng)
                runs.finish(run)
                fig.runs += 1
                after_success(i)
                continue
            deliver(sources, ops)
            if mode == "run":
                force = rng.random() < 0.15
                fig.forced += force
                runs.finish(runs.start(f"{name}{'f' if force else 'r'}", lease_s=lease, force=force))
                fig.runs += 1
                after_success(i)
            elif mode == "pair":
                pair = [runs.start(f"{name}p1", lease_s=lease), runs.start(f"{name}p2", lease_s=lease)]
                for run in pair:
                    runs.finish(run)
                fig.runs += 2
                fig.concurrent_pairs += 1
                after_success(i)
            elif mode == "kill":
                force = rng.random() < 0.15
                fig.forced += force
                run = runs.start(f"{name}k", lease_s=lease, force=force)
                point, event, delay = kill_point(rng, run, out)
                if runs.kill_when(run, event, delay):
                    fig.kills += 1
                    fig.killed_at[f"{point} -> {_last_words(run)}"] += 1
                    lease_next = SUCCESSOR_LEASE_S
                else:
                    fig.kills_missed += 1
                    runs.finish(run)
                    after_success(i)
                fig.runs += 1
            elif mode == "pair_kill":
                pair = [runs.start(f"{name}q1", lease_s=lease), runs.start(f"{name}q2", lease_s=lease)]
                victim = _holder(out, "failmap", pair)
                if victim is not None:
                    point, event, delay = kill_point(rng, victim, out)
                    if runs.kill_when(victim, event, delay):
                        fig.kills += 1
                        fig.killed_at[f"{point} -> {_last_words(victim)} (pair)"] += 1
                    else:
                        victim = None
                if victim is None:
                    fig.kills_missed += 1
                for run in pair:
                    if run is not victim:
                        runs.finish(run)
                fig.runs += 2
                fig.concurrent_pairs += 1
                after_success(i)
            elif mode == "pause":
                # both with the same short lease time, as runs of one deployment have
                stalled = runs.start(f"{name}s", lease_s=SUCCESSOR_LEASE_S)
                point, event, delay = kill_point(rng, stalled, out)
                if runs.kill_when(stalled, event, delay, pause=True):
                    fig.pauses += 1
                    fig.paused_at[f"{point} -> {_last_words(stalled)}"] += 1
                    successor = runs.start(f"{name}t", lease_s=SUCCESSOR_LEASE_S)
                    try:
                        if wait_until(successor, lambda: False, SUCCESSOR_LEASE_S + 15, kill=False) is None:
                            runs.finish(successor)  # it took the day over and finished
                        else:
                            # Still going: the stopped run froze inside a conditional write
                            # of the local store, holding that file's flock, so nobody can
                            # write that file (the lease, the manifest) until it runs again.
                            # Let it run. If it froze inside its manifest PUT (its lease
                            # checked just before), its commit wins the compare-and-swap and
                            # the successor must lose with ManifestConflict: both are safe.
                            fig.paused_in_lock += 1
                            stalled.resume()
                            code = successor.wait(180)
                            lost = "ManifestConflict" in successor.stderr() or "LeaseLost" in successor.stderr()
                            assert code == 0 or code == 1 and lost, \
                                f"the successor exited with {code}\n{successor.tail()}"
                    finally:
                        stalled.resume()
                    code = stalled.wait(180)
                    # it lost the day: it stops (LeaseLost, ManifestConflict, or a file
                    # of its own that the new holder removed as garbage), or it had
                    # nothing left to write; either way the next run repairs the day
                    assert code in (0, 1), f"the resumed run exited with {code}\n{stalled.tail()}"
                    fig.paused_lost += code == 1
                    fig.runs += 1
                else:
                    fig.kills_missed += 1
                    runs.finish(stalled)
                    after_success(i)
                fig.runs += 1
        runs.as_of = as_of
        # Time passes: left-over temporaries of killed runs are now old enough to be removed.
        if local_out is not None:
            fig.temporaries_aged = outputs.age_temporaries(local_out, STALE_TEMP_AGE.total_seconds() + 60)
        runs.finish(runs.start(f"s{seed}final", lease_s=lease_next))
        fig.runs += 1
        problems = outputs.folder_problems(out, DAY)
        if local_out is not None:
            old = outputs.temporaries(local_out, datetime.now(UTC) - STALE_TEMP_AGE)
            if old:
                problems.append(f"temporaries older than {STALE_TEMP_AGE} left: {old}")
        runs.finish(runs.start(f"s{seed}clean", output=clean_location))
        fig.runs += 1
        got, want = outputs.read_day(out, DAY), outputs.read_day(clean, DAY)
        problems += outputs.differences(got, want)
        fig.comparisons = len(want.tables) + len(want.png) + len(want.json) + len(want.manifests)
        fig.rows = sum(want.figures().values())
        fig.equal = not problems
        fig.seconds = time.monotonic() - started
        assert not problems, (
            f"seed {seed} ({backend}): the day after its history is not the clean run's day\n  "
            + "\n  ".join(problems) + f"\n{fig.line()}\nbatches:\n"
            + "\n".join(f"  {i} {m}: {ops}" for i, (ops, m) in enumerate(zip(plan, modes)))
            + f"\nrun logs in {logs}")
        return fig
    finally:
        runs.stop_all()
