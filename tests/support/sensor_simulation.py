"""A fab dropping files into buckets A, B and STDF while the three sensors tick.

The world generates upload events (random arrival order, same-second bursts, late B
partners, B files just after midnight, re-uploads, deletes, junk keys), applies them
to real object stores between ticks, evaluates the sensors through Dagster's
``evaluate_tick`` with a real instance, and keeps an oracle of every object version
so the test can check exactly-once coverage from the run requests' manifests.
"""

from __future__ import annotations

import json
import random
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dagster import DagsterInstance, Definitions, RunRequest, asset, build_sensor_context

from failmap_assets.defs.jobs import failmap_day_job, stdf_day_job
from failmap_assets.defs.partitions import daily_partitions
from failmap_assets.storage.object_store import ObjectStore
from failmap_assets.resources.storage import FailmapStorage
from failmap_assets.sensors import SENSORS
from failmap_assets.sensors import bucket_sensors as bs
from failmap_assets.discovery.seen_ledger import LedgerStore, entry_hash
from failmap_assets.discovery.cursor import SensorCursor
from failmap_assets.resources import build_resources
from failmap_assets.settings import Settings
from failmap_assets.discovery.keys import key_day, key_time

BUCKET_OF_SENSOR = {"bucket_a_sensor": "a", "bucket_b_sensor": "b", "stdf_sensor": "stdf"}
SENSOR_OF_BUCKET = {v: k for k, v in BUCKET_OF_SENSOR.items()}
JUNK = ["README.txt", "incoming/x.Z", "2026-06-02/x.Z", "20261399/x.Z", "20251231/before-start.Z"]


@asset(group_name="failmap", partitions_def=daily_partitions)
def failmap_stub() -> None: ...


@asset(group_name="stdf", partitions_def=daily_partitions)
def stdf_stub() -> None: ...


def stub_definitions() -> Definitions:
    """The real jobs and sensors over stand-in assets of the same groups and partitions
    (the sensors only need the jobs to resolve partitioned run requests)."""
    return Definitions(assets=[failmap_stub, stdf_stub], jobs=[failmap_day_job, stdf_day_job], sensors=SENSORS)


@dataclass(order=True)
class Event:
    time: datetime
    seq: int
    op: str = field(compare=False)       # "put" or "delete"
    bucket: str = field(compare=False)
    key: str = field(compare=False)


def fm_key(t: datetime, token: str, ext: str) -> str:
    return f"{t:%Y%m%d}/{token}_{t:%Y%m%d_%H%M%S}.{ext}"


def make_events(seed: int, start: datetime, span: timedelta, n_wafers: int, n_stdf: int,
                quiet: list[tuple[datetime, datetime]]) -> list[Event]:
    """Upload/delete events. Delays keep every arrival within a day of its key's day
    folder (days within the look-back), and no event falls into a ``quiet`` window."""
    rng = random.Random(seed)
    raw: list[tuple[datetime, str, str, str]] = []
    span_s = int(span.total_seconds()) - 24 * 3600

    def when(base: datetime, lo_s: float, hi_s: float) -> datetime:
        return base + timedelta(seconds=rng.uniform(lo_s, hi_s))

    burst_seconds = [start + timedelta(seconds=rng.randrange(span_s)) for _ in range(max(4, n_wafers // 120))]
    for w in range(n_wafers):
        token = f"L{w // 25:05d}.{w % 3}_{w % 25 + 1:02d}{'PRC'[w % 3]}"
        r = rng.random()
        if r < 0.25:        # same-second burst: many A keys share one second, uploaded together
            t_a = rng.choice(burst_seconds)
            up_a = t_a + timedelta(seconds=30)
        elif r < 0.30:      # written just before midnight: the B partner lands in the next day's folder
            day = (start + timedelta(seconds=rng.randrange(span_s))).replace(hour=0, minute=0, second=0)
            t_a = day + timedelta(days=1) - timedelta(seconds=rng.randint(1, 9))
            up_a = when(t_a, 1, 3 * 3600)
        else:
            t_a = start + timedelta(seconds=rng.randrange(span_s))
            up_a = when(t_a, 1, 6 * 3600)  # out of key order across ticks
        t_b = t_a + timedelta(seconds=rng.randint(0, 10))
        up_b = when(t_b, 8 * 3600, 20 * 3600) if rng.random() < 0.15 else when(t_b, 1, 4 * 3600)
        for bucket, key, up in (("a", fm_key(t_a, token, "Z"), up_a), ("b", fm_key(t_b, token, "gz"), up_b)):
            raw.append((up, "put", bucket, key))
            if rng.random() < 0.08:
                raw.append((when(up, 600, 10 * 3600), "put", bucket, key))     # re-upload, new bytes
            if rng.random() < 0.03:
                raw.append((when(up, 1, 5 * 3600), "delete", bucket, key))
    for i in range(n_stdf):
        t = start + timedelta(seconds=rng.randrange(span_s))
        key = f"{t:%Y%m%d}/lot{i // 20:04d}/w{i % 20:02d} {t:%H%M%S}.stdf"  # nested, with a space
        up = when(t, 1, 6 * 3600)
        raw.append((up, "put", "stdf", key))
        if rng.random() < 0.1:
            raw.append((when(up, 600, 8 * 3600), "put", "stdf", key))
        if rng.random() < 0.03:
            raw.append((when(up, 1, 5 * 3600), "delete", "stdf", key))
    for bucket in ("a", "b", "stdf"):
        for key in JUNK:
            raw.append((start + timedelta(seconds=rng.randrange(span_s)), "put", bucket, key))

    def shift(t: datetime) -> datetime:
        for lo, hi in quiet:
            if lo <= t < hi:
                return hi + (t - lo) / 50 + timedelta(seconds=1)
        return t

    return sorted(Event(shift(t), i, op, b, k) for i, (t, op, b, k) in enumerate(raw))


@dataclass
class TickRecord:
    tick: int
    now: datetime
    sensor: str
    run_requests: list[RunRequest]
    skip: str | None
    cursor_len: int
    changed: bool          # events touched this sensor's bucket since its previous tick



def sensor_resources(storage: FailmapStorage) -> dict:
    """What a sensor evaluation gets: ``storage``, and the rules as the environment sets
    them now (tests change FAILMAP_SENSOR_* between ticks, as a deployment would)."""
    return {**build_resources(Settings.from_env()), "storage": storage}


class World:
    def __init__(self, stores: dict[str, ObjectStore], storage: FailmapStorage, instance_dir: Path,
                 monkeypatch, workers: int = 8):
        self.stores = stores
        self.storage = storage
        self.instance_dir = instance_dir
        self.monkeypatch = monkeypatch
        self.workers = workers
        self.defs = stub_definitions()
        instance_dir.mkdir(parents=True, exist_ok=True)
        self.instance = DagsterInstance.local_temp(str(instance_dir))
        self.cursors: dict[str, str | None] = {name: None for name in BUCKET_OF_SENSOR}
        self.live: dict[tuple[str, str], str] = {}                   # (bucket, key) -> etag
        self.first_visible: dict[tuple[str, str, str], int] = {}     # version -> first tick it was listable
        self.puts = 0
        self.deletes = 0
        self.content_n = 0
        self.covered: dict[tuple[str, str, str], list[int]] = defaultdict(list)
        self.partner_hits: dict[tuple[str, str], list[tuple[int, str]]] = defaultdict(list)
        self.records: list[TickRecord] = []
        self.run_keys: Counter[str] = Counter()
        self.dirty = {b: True for b in BUCKET_OF_SENSOR.values()}
        self.now = datetime(2026, 1, 1, tzinfo=UTC)
        monkeypatch.setattr(bs, "current_time", lambda: self.now)

    # ----- the fab ---------------------------------------------------------------------
    def apply(self, events: list[Event]) -> None:
        """Apply events in time order per key; keys in parallel (the server sees the
        same per-key order as the oracle)."""
        by_key: dict[tuple[str, str], list[Event]] = defaultdict(list)
        for e in events:
            by_key[(e.bucket, e.key)].append(e)
            self.dirty[e.bucket] = True

        def run(item: tuple[tuple[str, str], list[Event]]) -> tuple[tuple[str, str], str | None, int, int]:
            (bucket, key), evs = item
            store = self.stores[bucket]
            etag, puts, deletes = None, 0, 0
            for e in evs:
                if e.op == "put":
                    etag = store.put(key, f"{key} v{e.seq}".encode()).etag
                    puts += 1
                else:
                    store.delete(key)
                    etag = None
                    deletes += 1
            return (bucket, key), etag, puts, deletes

        with ThreadPoolExecutor(self.workers) as pool:
            for bk, etag, puts, deletes in pool.map(run, by_key.items()):
                self.puts += puts
                self.deletes += deletes
                if etag is None:
                    self.live.pop(bk, None)
                else:
                    self.live[bk] = etag

    # ----- the sensors -------------------------------------------------------------------
    def restart(self) -> None:
        """Stop everything, keep only what Dagster persists (its storage folder, the
        cursors), and come back with a fresh instance object."""
        saved = json.dumps(self.cursors)
        self.instance.dispose()
        self.instance = DagsterInstance.local_temp(str(self.instance_dir))
        self.cursors = json.loads(saved)

    def ledger_store(self, sensor: str) -> LedgerStore:
        return LedgerStore(self.instance.daemon_cursor_storage, f"{bs.KV_NAMESPACE}/{sensor}")

    def tick(self, tick: int, now: datetime) -> list[TickRecord]:
        self.now = now
        for (bucket, key), etag in self.live.items():
            self.first_visible.setdefault((bucket, key, etag), tick)
        out = []
        for name, bucket in BUCKET_OF_SENSOR.items():
            ctx = build_sensor_context(instance=self.instance, cursor=self.cursors[name], definitions=self.defs,
                                       resources=sensor_resources(self.storage), sensor_name=name)
            data = self.defs.get_sensor_def(name).evaluate_tick(ctx)
            if data.cursor is not None:
                self.cursors[name] = data.cursor
            rec = TickRecord(tick, now, name, list(data.run_requests or []), data.skip_message,
                             len(self.cursors[name] or ""), self.dirty[bucket])
            self.dirty[bucket] = False
            self._record(rec, bucket)
            out.append(rec)
        self.records.extend(out)
        return out

    def _record(self, rec: TickRecord, bucket: str) -> None:
        ls = self.ledger_store(rec.sensor)
        for rr in rec.run_requests:
            self.run_keys[rr.run_key] += 1
            m = ls.load_manifest(rr.tags["failmap/manifest"])
            assert m.sensor == rec.sensor and m.day == rr.partition_key
            assert int(rr.tags["failmap/objects_count"]) == len(m.objects)
            assert int(rr.tags.get("failmap/partners_count", "0")) == len(m.partners)
            assert m.objects or m.partners, "a run request that covers nothing"
            for key, etag in m.objects:
                assert str(key_day(key)) == rr.partition_key, (key, rr.partition_key)
                self.covered[(bucket, key, etag)].append(rec.tick)
            for key, etag, own_day in m.partners:
                self.partner_hits[(key, etag)].append((rec.tick, rr.partition_key))
                assert str(key_day(key)) == own_day

    def open_day_ledgers_match_live(self) -> None:
        """Every open day's ledger is exactly the live objects of that day."""
        for name, bucket in BUCKET_OF_SENSOR.items():
            cursor = SensorCursor.decode(self.cursors[name])
            ls = self.ledger_store(name)
            for day, dc in cursor.days.items():
                expected = {entry_hash(k, e) for (b, k), e in self.live.items() if b == bucket and key_day(k) == day}
                assert ls.load(day, dc.ledger) == expected, (name, day)


def run_simulation(world: World, events: list[Event], ticks: list[datetime], *,
                   on_tick: Callable[[int], None] | None = None) -> None:
    i = 0
    for n, now in enumerate(ticks):
        if on_tick:
            on_tick(n)
        j = i
        while j < len(events) and events[j].time <= now:
            j += 1
        world.apply(events[i:j])
        i = j
        world.tick(n, now)


def is_midnight_b(key: str, window_s: int = 10) -> bool:
    """A B file written within the pairing window after midnight."""
    t = key_time(key)
    return t is not None and t.hour == 0 and t.minute == 0 and t.second < window_s


def is_midnight_a(key: str, window_s: int = 10) -> bool:
    """An A file written within the pairing window before midnight."""
    t = key_time(key)
    return t is not None and t.hour == 23 and t.minute == 59 and t.second >= 60 - window_s
