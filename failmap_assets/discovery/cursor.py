"""Cursor + look-back listing over day folders. Pure: no Dagster imports.

Object keys start with a day folder ``YYYYMMDD/``. A sensor tick:

1. lists the *day folders* only (``list_prefixes``: one short call, O(days), never the
   objects of the bucket), keeps the valid dates between the partitions' start and
   today (fab time) that are not closed;
2. visits those days and the days its cursor still tracks, **oldest first**. Per day it
   continues the current *pass*: ``list(prefix="YYYYMMDD/", start_after=pos)``, where
   ``pos`` is the last key the previous tick handled in that day (None: the pass starts
   at the day's first key). Every listed (key, etag) not in the day's ledger is *new*
   and taken (it goes into this tick's run request for the day); the ledger gets it.
3. stops the whole tick at the first new object that would exceed the per-tick object
   cap or the per-tick run (= day) cap, or when the time budget is spent; ``pos``
   records exactly where, so the next tick resumes there (a backlog is worked off
   across ticks, days in order).

When a pass reaches the end of its day:

* an *open* day (``day >= today - lookback``) starts a new pass at its first key on the
  next tick: open days are re-listed every tick, because objects arrive in any key
  order (the key carries the tester's clock, not the upload time), and re-uploads keep
  their key;
* a day older than the look-back is *closed* when a pass that **began** after the day
  left the look-back completes (for a day that was open, that is one last full sweep
  after it aged out; for a backlog day, its first and only pass). Closed days are
  never listed again and their ledger is dropped; the cursor keeps them as compact
  date ranges, so a day folder that appears late for an old date is still found and
  swept once.

A pass that began and ended within one tick saw every object of the day, so the
day's ledger is pruned to what it listed: deleted objects leave the ledger (an
identical re-upload after a delete is a new arrival), and a re-uploaded key keeps
only its current etag.

Cost per tick: one ``list_prefixes`` + the objects of the open days (bounded by the
look-back) + the new objects, independent of how many closed days the bucket holds.
Not seen by design: objects added to a day after it closed (re-run such a day with a
backfill or the ``daily_close`` schedule).
"""

from __future__ import annotations

import bisect
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import TYPE_CHECKING

from failmap_assets.discovery.keys import day_prefix, parse_day, parse_day_folder
from failmap_assets.discovery.seen_ledger import LedgerStore, entry_hash

if TYPE_CHECKING:  # the stores come in as arguments; no import of the resources package at runtime
    from failmap_assets.storage.object_store import ObjectInfo, ObjectStore

CURSOR_VERSION = 1


# ----- cursor --------------------------------------------------------------------------
@dataclass
class DayCursor:
    ledger: str | None = None   # reference of the day's ledger in the LedgerStore; None = empty
    count: int = 0              # entries in that ledger (for logs)
    pos: str | None = None      # StartAfter of the pass in progress; None = next pass starts at the top
    closing: bool = False       # the pass in progress began after the day left the look-back


@dataclass
class SensorCursor:
    """Small JSON state committed by Dagster with each tick's run requests."""

    gen: int = 0                                                     # ticks that requested runs
    closed: list[tuple[int, int]] = field(default_factory=list)     # merged [first, last] ordinals
    days: dict[date, DayCursor] = field(default_factory=dict)       # open days being tracked
    garbage: list[str] = field(default_factory=list)                # "<YYYYMMDD>/<ref>" to blank next tick

    # closed days as merged ordinal ranges: a year of daily folders is one range
    def is_closed(self, day: date) -> bool:
        o = day.toordinal()
        i = bisect.bisect_right(self.closed, (o, float("inf"))) - 1
        return i >= 0 and self.closed[i][0] <= o <= self.closed[i][1]

    def close(self, day: date) -> None:
        if self.is_closed(day):
            return
        o = day.toordinal()
        ranges = sorted([*self.closed, (o, o)])
        merged: list[tuple[int, int]] = []
        for a, b in ranges:
            if merged and a <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(merged[-1][1], b))
            else:
                merged.append((a, b))
        self.closed = merged

    def copy(self) -> "SensorCursor":
        return SensorCursor(
            gen=self.gen,
            closed=list(self.closed),
            days={d: replace(c) for d, c in self.days.items()},
            garbage=list(self.garbage),
        )

    def encode(self) -> str:
        def ymd(o: int) -> str:
            return f"{date.fromordinal(o):%Y%m%d}"

        return json.dumps(
            {
                "v": CURSOR_VERSION,
                "gen": self.gen,
                "closed": [[ymd(a), ymd(b)] for a, b in self.closed],
                "days": {
                    f"{d:%Y%m%d}": [c.ledger, c.count, c.pos, int(c.closing)]
                    for d, c in sorted(self.days.items())
                },
                "garbage": self.garbage,
            },
            separators=(",", ":"),
        )

    @classmethod
    def decode(cls, text: str | None) -> "SensorCursor":
        """Empty or None: a fresh cursor. Anything unreadable raises: silently starting
        over would re-request every object of the bucket."""
        if not text:
            return cls()
        try:
            data = json.loads(text)
            if data.get("v") != CURSOR_VERSION:
                raise ValueError(f"unknown cursor version {data.get('v')!r}")

            def day(s: str) -> date:
                d = parse_day(s)
                if d is None:
                    raise ValueError(f"bad day {s!r}")
                return d

            return cls(
                gen=int(data["gen"]),
                closed=[(day(a).toordinal(), day(b).toordinal()) for a, b in data["closed"]],
                days={
                    day(k): DayCursor(ledger=v[0], count=int(v[1]), pos=v[2], closing=bool(v[3]))
                    for k, v in data["days"].items()
                },
                garbage=[str(g) for g in data["garbage"]],
            )
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise ValueError(f"unreadable failmap sensor cursor ({exc}); reset the sensor cursor") from exc


# ----- one tick -----------------------------------------------------------------------
@dataclass
class ScanStats:
    prefixes: int = 0           # top-level prefixes listed
    ignored_prefixes: int = 0   # not a YYYYMMDD/ date folder
    ignored_examples: list[str] = field(default_factory=list)
    before_start: int = 0       # date folders before the first partition
    future_days: int = 0        # date folders after today (fab time): left for later
    days_visited: int = 0
    listed: int = 0             # objects listed this tick
    new: int = 0                # objects taken this tick
    pruned: int = 0             # ledger entries of objects no longer listed (deleted/replaced)
    passes_completed: int = 0
    closed_days: list[date] = field(default_factory=list)
    days_left: int = 0          # days not visited because the tick stopped early
    stopped_by: str | None = None   # "objects" / "runs" / "time" cap, or None
    seconds: float = 0.0

    def summary(self) -> str:
        s = (
            f"listed {self.listed} objects in {self.days_visited} day folders "
            f"({self.prefixes} top-level prefixes); {self.new} new; {self.pruned} deleted or replaced; "
            f"{len(self.closed_days)} days closed"
        )
        if self.ignored_prefixes:
            s += f"; {self.ignored_prefixes} prefixes that are not day folders ignored (e.g. {self.ignored_examples})"
        if self.before_start:
            s += f"; {self.before_start} day folders before the first partition ignored"
        if self.future_days:
            s += f"; {self.future_days} day folders after today left for later"
        if self.stopped_by:
            s += f"; stopped by the per-tick {self.stopped_by} cap with {self.days_left} more days to visit"
        return s + f"; {self.seconds:.3f}s"


@dataclass
class TickPlan:
    cursor: SensorCursor                          # next cursor (ledger references resolved by finalize)
    new_objects: dict[date, list[ObjectInfo]]     # day -> objects taken this tick, in key order
    partners: dict[date, list[tuple[ObjectInfo, date]]]  # day to re-run -> (object, its own day)
    ledgers: dict[date, set[int]]                 # changed ledgers of days still open
    released: list[tuple[date, str]]              # ledger references no longer used
    stats: ScanStats

    @property
    def run_days(self) -> list[date]:
        return sorted(set(self.new_objects) | set(self.partners))


def scan(
    store: ObjectStore,
    cursor: SensorCursor,
    *,
    today: date,
    first_day: date,
    lookback_days: int,
    max_objects: int,
    max_runs: int,
    time_budget: float,
    load_ledger: Callable[[date, str | None], set[int]],
    partner_days: Callable[[ObjectInfo, date], Sequence[date]] | None = None,
    clock: Callable[[], float] = time.monotonic,
    last_day: date | None = None,
) -> TickPlan:
    """Plan one tick (see the module docstring). Reads the store; writes nothing.

    ``today`` is the fab day now (the look-back counts back from it); day folders after
    ``last_day`` (default: today), the last existing partition, are left for later."""
    t0 = clock()
    deadline = t0 + time_budget
    stats = ScanStats()
    nxt = cursor.copy()
    horizon = today - timedelta(days=lookback_days)  # days >= horizon are open
    if last_day is None:
        last_day = today

    found: set[date] = set()
    for prefix in store.list_prefixes(""):
        stats.prefixes += 1
        d = parse_day_folder(prefix)
        if d is None:
            stats.ignored_prefixes += 1
            if len(stats.ignored_examples) < 3:
                stats.ignored_examples.append(prefix)
        elif d < first_day:
            stats.before_start += 1  # no partition to run
        elif d > last_day:
            stats.future_days += 1
        elif not nxt.is_closed(d):
            found.add(d)
    days = sorted(found | {d for d in nxt.days if first_day <= d <= last_day})

    new_objects: dict[date, list[ObjectInfo]] = {}
    partners: dict[date, list[tuple[ObjectInfo, date]]] = {}
    ledgers: dict[date, set[int]] = {}
    released: list[tuple[date, str]] = []
    run_days: set[date] = set()
    taken = 0

    for i, day in enumerate(days):
        if stats.stopped_by:
            stats.days_left = len(days) - i
            break
        stats.days_visited += 1
        dc = nxt.days.get(day) or DayCursor()
        fresh = dc.pos is None
        if fresh:
            dc.closing = day < horizon
        ledger = load_ledger(day, dc.ledger)
        before = len(ledger)
        observed: set[int] | None = set() if fresh else None
        changed = False
        complete = True
        for obj in store.list(prefix=day_prefix(day), start_after=dc.pos):
            if clock() > deadline:
                stats.stopped_by = "time"
                complete = False
                break
            stats.listed += 1
            h = entry_hash(obj.key, obj.etag)
            if h not in ledger:
                extra = [p for p in (partner_days(obj, day) if partner_days else ()) if first_day <= p <= last_day]
                if taken + 1 > max_objects:
                    stats.stopped_by = "objects"
                elif len(run_days | {day, *extra}) > max_runs:
                    stats.stopped_by = "runs"
                if stats.stopped_by:
                    complete = False
                    break
                ledger.add(h)
                changed = True
                taken += 1
                run_days.update((day, *extra))
                new_objects.setdefault(day, []).append(obj)
                for p in extra:
                    partners.setdefault(p, []).append((obj, day))
            if observed is not None:
                observed.add(h)
            dc.pos = obj.key
        stats.new += len(new_objects.get(day, ()))

        if complete:
            stats.passes_completed += 1
            if observed is not None:
                kept = ledger & observed
                stats.pruned += len(ledger) - len(kept)
                if len(kept) != len(ledger):
                    ledger, changed = kept, True
            if dc.closing:
                # a full pass that began after the day left the look-back: close it
                stats.closed_days.append(day)
                nxt.days.pop(day, None)
                nxt.close(day)
                if dc.ledger is not None:
                    released.append((day, dc.ledger))
                continue
            dc.pos = None
            dc.closing = False
        if changed or len(ledger) != before:
            ledgers[day] = ledger
        nxt.days[day] = dc

    stats.seconds = clock() - t0
    return TickPlan(
        cursor=nxt,
        new_objects=new_objects,
        partners=partners,
        ledgers=ledgers,
        released=released,
        stats=stats,
    )


def finalize(plan: TickPlan, previous: SensorCursor, ledger_store: LedgerStore, *, bump_gen: bool) -> SensorCursor:
    """Stage the changed ledgers, blank the previous tick's garbage, and return the
    cursor to commit. Call ``ledger_store.flush()`` afterwards, before handing the
    cursor to Dagster."""
    nxt = plan.cursor
    superseded: list[tuple[date, str]] = list(plan.released)
    for day, hashes in plan.ledgers.items():
        dc = nxt.days[day]
        old = dc.ledger
        dc.ledger = ledger_store.stage(day, hashes)
        dc.count = len(hashes)
        if old is not None and old != dc.ledger:
            superseded.append((day, old))
    referenced = [(d, c.ledger) for d, c in nxt.days.items() if c.ledger is not None]
    ledger_store.release(previous.garbage, referenced)
    nxt.garbage = [f"{d:%Y%m%d}/{ref}" for d, ref in superseded]
    if bump_gen:
        nxt.gen = previous.gen + 1
    return nxt


def cursor_changed(a: SensorCursor, b: SensorCursor) -> bool:
    return a.encode() != b.encode()


def iter_days(first: date, last: date) -> Iterable[date]:
    d = first
    while d <= last:
        yield d
        d += timedelta(days=1)
