"""One writer per pipeline and day: a lease object taken and renewed with compare-and-swap.

``state/<pipeline>/date=<day>/lease.json`` names the run that is writing the day and
until when (``expires_at``, renewed every third of the lease time by a thread of
the holder). A run that finds it held waits (bounded, with a log line naming the
holder), then takes it over with a conditional PUT on the ETag it read, so two
runs can never both take it. Works without the daemon's queue (CLI runs, several
machines) on any store that honours conditional writes: local folders, AWS S3,
MinIO, SeaweedFS (``ObjectStore.check_conditional_writes`` refuses the others).

A holder that died (``kill -9``, a lost machine) stops renewing, so its lease is
free once one of these holds:

* it was released, or it is this very run's (a retried step);
* the reader has seen the same lease version, unchanged, for a whole lease time on
  its own monotonic clock (no clock comparison between machines at all);
* its ``expires_at`` is more than ``max_clock_skew`` in the past by the reader's
  clock (so a run starting long after a crash does not wait a whole lease time);
* it was taken on this host by a process that no longer exists.

The lease body carries ``format`` (``LEASE_FORMAT``). A lease of a format this version
does not know (a newer release beside an older one, during an upgrade) is treated as
held until it has been seen unchanged for a whole lease time: none of its other
fields is trusted.

A holder that loses its lease (it stalled for longer than the lease time and
someone took over) notices at the next renewal or ``check`` and must stop writing;
its commit would fail anyway, because the manifest's compare-and-swap names a
version the new holder has replaced.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime

from failmap_assets.storage.layout import lease_key
from failmap_assets.storage.object_store import ObjectStore, PreconditionFailed


#: version of the lease body; readers rely on nothing but its ETag in one they do not know
LEASE_FORMAT = 1


class DayBusy(RuntimeError):
    """Another run held the day for longer than this run was willing to wait."""


class LeaseLost(RuntimeError):
    """This run's lease was taken over (it stalled for longer than the lease time)."""


@dataclass(frozen=True)
class LeaseOptions:
    ttl_s: float = 60.0            # a holder that stops renewing loses the lease after this long
    wait_s: float = 1800.0         # how long a run waits for the day before it gives up
    poll_s: float = 1.0            # how often a waiting run looks again
    max_clock_skew_s: float = 30.0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class DayLease:
    def __init__(self, store: ObjectStore, pipeline: str, day: date, run_id: str, options: LeaseOptions,
                 log: Callable[[str], None] = print, *, monotonic: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.store, self.pipeline, self.day, self.run_id = store, pipeline, day, run_id
        self.options, self.log = options, log
        self.key = lease_key(pipeline, day)
        self._monotonic, self._wall = monotonic, wall
        self._etag: str | None = None
        self._expires_at = 0.0
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.waited_s = 0.0

    # ----- the lease object ---------------------------------------------------------------
    def _body(self, *, released: bool = False) -> tuple[bytes, float]:
        now = self._wall()
        expires = 0.0 if released else now + self.options.ttl_s
        body = {
            "format": LEASE_FORMAT,
            "run_id": self.run_id, "host": socket.gethostname(), "pid": os.getpid(),
            "renewed_at": datetime.fromtimestamp(now, UTC).isoformat(), "expires_at": expires,
            "released": released,
        }
        return json.dumps(body).encode(), expires

    def _free(self, holder: dict, etag: str, first_seen: dict[str, float]) -> str | None:
        """Why the lease described by ``holder`` may be taken, or None while it is held."""
        now = self._monotonic()
        seen = first_seen.setdefault(etag, now)
        if now - seen >= self.options.ttl_s:
            return f"not renewed for {now - seen:.0f} s"
        if holder.get("format", LEASE_FORMAT) != LEASE_FORMAT:
            return None  # another release's lease: only the unchanged-for-a-lease-time rule applies
        if holder.get("released"):
            return "released"
        if holder.get("run_id") == self.run_id:
            return "held by this run"
        try:
            expires = float(holder.get("expires_at", 0))
        except (TypeError, ValueError):
            return "unreadable lease"
        if self._wall() > expires + self.options.max_clock_skew_s:
            return "expired"
        if holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int) \
                and not _pid_alive(holder["pid"]):
            return f"its process {holder['pid']} on this host is gone"
        return None

    # ----- take, renew, give back ----------------------------------------------------------
    def acquire(self) -> None:
        self.store.check_conditional_writes()
        started = self._monotonic()
        deadline = started + self.options.wait_s
        first_seen: dict[str, float] = {}
        last_log = -1e9
        while True:
            info = self.store.head(self.key)
            if info is None:
                if self._take(None):
                    break
                continue
            try:
                holder = json.loads(self.store.get(self.key, if_match=info.etag))
                if not isinstance(holder, dict):
                    holder = {}
            except (PreconditionFailed, FileNotFoundError):
                continue  # it changed while we read it
            except ValueError:
                holder = {}
            why = self._free(holder, info.etag, first_seen)
            if why is not None:
                if self._take(info.etag):
                    if why not in ("released", "held by this run"):
                        self.log(f"took over the {self.pipeline} lease of {self.day} from run "
                                 f"{holder.get('run_id', '?')} ({why})")
                    break
                continue
            now = self._monotonic()
            if now >= deadline:
                raise DayBusy(
                    f"{self.pipeline} day {self.day} is being written by run {holder.get('run_id', '?')} "
                    f"(host {holder.get('host', '?')}, pid {holder.get('pid', '?')}); waited "
                    f"{now - started:.0f} s, giving up. Run it again when that run has finished."
                )
            if now - last_log >= 30:
                self.log(f"waiting for run {holder.get('run_id', '?')} (host {holder.get('host', '?')}, "
                         f"pid {holder.get('pid', '?')}), which is writing {self.pipeline} {self.day}; "
                         f"up to {deadline - now:.0f} s more")
                last_log = now
            time.sleep(self.options.poll_s)
        self.waited_s = self._monotonic() - started
        self._thread = threading.Thread(target=self._renew_loop, name=f"lease-{self.day}", daemon=True)
        self._thread.start()

    def _take(self, etag: str | None) -> bool:
        body, expires = self._body()
        try:
            if etag is None:
                info = self.store.put(self.key, body, "application/json", if_none_match=True)
            else:
                info = self.store.put(self.key, body, "application/json", if_match=etag)
        except PreconditionFailed:
            return False  # someone else was faster: look again
        with self._lock:
            self._etag, self._expires_at = info.etag, expires
        return True

    def _renew_loop(self) -> None:
        interval = max(self.options.ttl_s / 3, 0.05)
        while not self._stop.wait(interval):
            try:
                self.renew()
            except LeaseLost:
                return
            except Exception as exc:  # noqa: BLE001 - a network blip: try again; check() sees expiry
                self.log(f"could not renew the {self.pipeline} lease of {self.day}: {type(exc).__name__}")

    def renew(self) -> None:
        with self._lock:
            if self._lost.is_set():
                raise LeaseLost(self._lost_message())
            body, expires = self._body()
            try:
                info = self.store.put(self.key, body, "application/json", if_match=self._etag)
            except PreconditionFailed:
                self._lost.set()
                raise LeaseLost(self._lost_message()) from None
            self._etag, self._expires_at = info.etag, expires

    def check(self) -> None:
        """Raise LeaseLost unless this run still holds the day (before every commit or
        garbage collection: a run that lost its lease must not touch the day)."""
        if self._lost.is_set() or self._wall() > self._expires_at:
            self._lost.set()
            raise LeaseLost(self._lost_message())

    def _lost_message(self) -> str:
        return (f"run {self.run_id} lost the {self.pipeline} lease of {self.day} (it could not renew it "
                f"within {self.options.ttl_s:.0f} s and another run took the day); stopping without a commit")

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            if self._etag is None or self._lost.is_set():
                return
            body, _ = self._body(released=True)
            try:
                self.store.put(self.key, body, "application/json", if_match=self._etag)
            except Exception as exc:  # noqa: BLE001 - the lease expires on its own
                self.log(f"could not release the {self.pipeline} lease of {self.day} "
                         f"({type(exc).__name__}); it expires in {self.options.ttl_s:.0f} s")
            self._etag = None

    def __enter__(self) -> DayLease:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
