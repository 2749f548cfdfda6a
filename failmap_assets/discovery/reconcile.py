"""Late files: a slow sweep over the days the bucket sensors no longer look at.

The bucket sensors re-list only the last few days (their look-back). A file that
lands in an older day folder, a pending A whose grace has passed, a read that
failed, or an object deleted from a committed day (the bucket sensors request runs
for new versions only) would otherwise wait for nobody. The reconcile sweep walks
the day folders of the reconcile window (default the last 30 days), oldest first,
lists each day's own folders and compares every object version with the day's commit
(``DayManifest.needs_run``): a day with an unaccounted version, with open objects
that have fallen due, or whose commit was computed from more objects of its own
folders than are still there, gets a run. A sweep starts every ``period`` and is spread over
ticks by a time budget; its position is in the cursor, so a restart resumes it.
Between sweeps, every tick also reads the manifests of the days still in the bucket
sensors' look-back: a pending A whose grace has passed (or a failed read) gets its
run within a sensor interval, not at the next sweep.

Cost per sweep: one LIST page per 1,000 keys of every day folder in the window, in
each watched bucket, plus one manifest GET per day and pipeline.

Pure: no Dagster import; the sensor (``sensors/reconcile_sensor.py``) wires it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from failmap_assets.discovery.keys import day_prefix
from failmap_assets.storage.day_manifest import DayManifest
from failmap_assets.storage.object_store import ObjectStore
from failmap_assets.storage.versions import entry_hash

CURSOR_VERSION = 1


@dataclass
class ReconcileCursor:
    sweep_started: float | None = None   # epoch seconds; None: no sweep in progress
    position: int = 0                    # next (pipeline, day) of the sweep
    last_done: float | None = None       # when the last sweep finished
    sweeps: int = 0

    def encode(self) -> str:
        return json.dumps({"v": CURSOR_VERSION, "started": self.sweep_started, "pos": self.position,
                           "done": self.last_done, "sweeps": self.sweeps}, separators=(",", ":"))

    @classmethod
    def decode(cls, text: str | None) -> "ReconcileCursor":
        if not text:
            return cls()
        try:
            d = json.loads(text)
            if d.get("v") != CURSOR_VERSION:
                raise ValueError(f"unknown cursor version {d.get('v')!r}")
            return cls(d["started"], int(d["pos"]), d["done"], int(d.get("sweeps", 0)))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"unreadable reconcile cursor ({exc}); reset the sensor cursor") from exc


@dataclass(frozen=True)
class Watched:
    """One pipeline and the source buckets whose day folders hold its objects."""

    pipeline: str
    stores: Sequence[ObjectStore]


@dataclass
class DayVerdict:
    pipeline: str
    day: date
    listed: int                 # objects in the day's own folders
    unaccounted: int            # ... whose version the commit does not account for
    due: bool                   # open objects (pending A, failed reads) have fallen due
    committed: bool             # the day has a commit at all
    generation: int = 0         # of the commit read (run keys: one run per commit that fell due)
    swept: bool = True          # listed (a sweep) or only its manifest read (a due check)
    gone: int = 0               # objects the commit was computed from that are no longer there

    @property
    def needs_run(self) -> bool:
        return self.unaccounted > 0 or self.due or self.gone > 0


@dataclass
class ReconcilePlan:
    cursor: ReconcileCursor
    verdicts: list[DayVerdict] = field(default_factory=list)
    swept_all: bool = False

    @property
    def runs(self) -> list[DayVerdict]:
        return [v for v in self.verdicts if v.needs_run]


def sweep_days(today: date, first_day: date, window_days: int) -> list[date]:
    start = max(first_day, today - timedelta(days=window_days))
    return [start + timedelta(days=i) for i in range((today - start).days + 1)]


def verdict(watched: Watched, day: date, manifest: DayManifest | None, fab_now: datetime) -> DayVerdict:
    listed = unaccounted = 0
    versions: set[int] = set()
    for store in watched.stores:
        for obj in store.list(day_prefix(day)):
            listed += 1
            version = entry_hash(obj.key, obj.etag)
            versions.add(version)
            if manifest is None or manifest.needs_run(version, fab_now):
                unaccounted += 1
    # The commit's own objects that are no longer listed were deleted or replaced since:
    # the commit still holds their rows.
    gone = len(manifest.own - versions) if manifest is not None else 0
    return DayVerdict(watched.pipeline, day, listed, unaccounted,
                      due=manifest is not None and manifest.due(fab_now), committed=manifest is not None,
                      generation=manifest.generation if manifest else 0, gone=gone)


def due_checks(watched: Sequence[Watched], days: Sequence[date],
               read_manifest: Callable[[str, date], DayManifest | None], fab_now: datetime) -> list[DayVerdict]:
    """Days whose committed open objects have fallen due (one manifest read per day)."""
    out = []
    for d in days:
        for w in watched:
            manifest = read_manifest(w.pipeline, d)
            if manifest is not None and manifest.due(fab_now):
                out.append(DayVerdict(w.pipeline, d, 0, 0, due=True, committed=True,
                                      generation=manifest.generation, swept=False))
    return out


def plan(
    cursor: ReconcileCursor,
    watched: Sequence[Watched],
    *,
    today: date,
    first_day: date,
    window_days: int,
    period_s: float,
    time_budget_s: float,
    recent_days: int = 0,
    read_manifest: Callable[[str, date], DayManifest | None],
    fab_now: datetime,
    wall: Callable[[], float] = time.time,
    clock: Callable[[], float] = time.monotonic,
) -> ReconcilePlan:
    """Continue (or start, once ``period_s`` has passed since the last one) the sweep;
    and check the last ``recent_days`` + today for open objects that fell due."""
    nxt = ReconcileCursor(cursor.sweep_started, cursor.position, cursor.last_done, cursor.sweeps)
    now = wall()
    recent = [today - timedelta(days=i) for i in range(recent_days, -1, -1) if today - timedelta(days=i) >= first_day]
    if nxt.sweep_started is None:
        if nxt.last_done is not None and now - nxt.last_done < period_s:
            return ReconcilePlan(nxt, due_checks(watched, recent, read_manifest, fab_now))
        nxt.sweep_started, nxt.position = now, 0
    work = [(w, d) for d in sweep_days(today, first_day, window_days) for w in watched]
    deadline = clock() + time_budget_s
    result = ReconcilePlan(nxt)
    while nxt.position < len(work):
        if clock() > deadline:
            swept = {(v.pipeline, v.day) for v in result.verdicts}
            result.verdicts += [v for v in due_checks(watched, recent, read_manifest, fab_now)
                                if (v.pipeline, v.day) not in swept]
            return result
        w, d = work[nxt.position]
        result.verdicts.append(verdict(w, d, read_manifest(w.pipeline, d), fab_now))
        nxt.position += 1
    nxt.sweep_started, nxt.position, nxt.last_done = None, 0, now
    nxt.sweeps += 1
    result.swept_all = True
    return result
