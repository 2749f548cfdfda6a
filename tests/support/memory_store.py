"""Helpers for the sensor tests: an in-memory ObjectStore that records its calls, and
one pure tick (scan + finalize + flush) without Dagster."""

from __future__ import annotations

import bisect
import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import BinaryIO

from failmap_assets.storage.object_store import ObjectInfo, ObjectStore, PreconditionFailed
from failmap_assets.discovery.seen_ledger import DictKeyValueStore, LedgerStore
from failmap_assets.discovery.cursor import SensorCursor, TickPlan, finalize, scan


class MemoryStore(ObjectStore):
    """Keys in UTF-8 byte order with S3 StartAfter semantics; ETag = MD5 of the bytes.
    ``calls`` records every list/list_prefixes call (to prove what a tick listed)."""

    location = "memory://"

    def __init__(self) -> None:
        self._data: dict[str, tuple[bytes, datetime]] = {}
        self._sorted: list[bytes] = []
        self.calls: list[tuple] = []

    def _ensure(self) -> None:
        if len(self._sorted) != len(self._data):
            self._sorted = sorted(k.encode() for k in self._data)

    def put(self, key: str, data: bytes, content_type: str | None = None, *,
            if_match: str | None = None, if_none_match: bool = False) -> ObjectInfo:
        current = self._info(key).etag if key in self._data else None
        if (if_none_match and current is not None) or (if_match is not None and current != if_match):
            raise PreconditionFailed(f"{key}: condition not met")
        if key not in self._data:
            self._sorted = []
        self._data[key] = (data, datetime.now(UTC).replace(microsecond=0))
        return self._info(key)

    def delete(self, key: str) -> None:
        if self._data.pop(key, None) is not None:
            self._sorted = []

    def _info(self, key: str) -> ObjectInfo:
        data, modified = self._data[key]
        return ObjectInfo(key=key, size=len(data), etag=hashlib.md5(data).hexdigest(), last_modified=modified)

    def list(self, prefix: str = "", start_after: str | None = None, limit: int | None = None) -> Iterator[ObjectInfo]:
        self.calls.append(("list", prefix, start_after))
        self._ensure()
        p = prefix.encode()
        lo = bisect.bisect_left(self._sorted, p)
        if start_after is not None:
            lo = max(lo, bisect.bisect_right(self._sorted, start_after.encode()))
        n = 0
        for k in self._sorted[lo:]:
            if not k.startswith(p) or (limit is not None and n >= limit):
                return
            key = k.decode()
            if key in self._data:
                n += 1
                yield self._info(key)

    def list_prefixes(self, prefix: str = "", delimiter: str = "/") -> list[str]:
        self.calls.append(("list_prefixes", prefix))
        out = set()
        for key in self._data:
            if key.startswith(prefix):
                rest = key[len(prefix):]
                if delimiter in rest:
                    out.add(prefix + rest.split(delimiter, 1)[0] + delimiter)
        return sorted(out, key=str.encode)

    def head(self, key: str) -> ObjectInfo | None:
        return self._info(key) if key in self._data else None

    def get(self, key: str, *, if_match: str | None = None) -> bytes:
        if key not in self._data:
            raise FileNotFoundError(key)
        if if_match is not None and self._info(key).etag != if_match:
            raise PreconditionFailed(f"{key}: changed")
        return self._data[key][0]

    def open(self, key: str) -> BinaryIO:
        return io.BytesIO(self.get(key))

    def listed_prefixes(self) -> list[str]:
        return [c[1] for c in self.calls if c[0] == "list"]


@dataclass
class PureSensor:
    """scan + finalize + flush, the way bucket_sensors.evaluate chains them."""

    store: ObjectStore
    first_day: date = date(2026, 1, 1)
    lookback_days: int = 2
    max_objects: int = 10_000
    max_runs: int = 100
    time_budget: float = 30.0
    partner_days: object = None
    clock: object = None
    kv: DictKeyValueStore = field(default_factory=DictKeyValueStore)
    cursor: SensorCursor = field(default_factory=SensorCursor)

    def tick(self, today: date) -> TickPlan:
        ledgers = LedgerStore(self.kv, "t")
        kwargs = {"clock": self.clock} if self.clock else {}
        plan = scan(
            self.store, self.cursor, today=today, first_day=self.first_day, lookback_days=self.lookback_days,
            max_objects=self.max_objects, max_runs=self.max_runs, time_budget=self.time_budget,
            load_ledger=ledgers.load, partner_days=self.partner_days, **kwargs,
        )
        nxt = finalize(plan, self.cursor, ledgers, bump_gen=bool(plan.run_days))
        ledgers.flush()
        # what Dagster would store and hand back
        self.cursor = SensorCursor.decode(nxt.encode())
        return plan

    def ledger(self, day: date) -> set[int]:
        dc = self.cursor.days.get(day)
        return LedgerStore(self.kv, "t").load(day, dc.ledger if dc else None)


def taken(plan: TickPlan) -> list[str]:
    return [o.key for objs in plan.new_objects.values() for o in objs]
