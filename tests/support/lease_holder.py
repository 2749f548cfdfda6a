"""A day lease held by another process, for the lease tests.

``python -m tests.support.lease_holder hold LOCATION DAY RUN_ID TTL``
    takes the lease, prints ``held <pid>``, then checks it every 0.05 s until it is
    lost (prints ``lost <message>``, after confirming that ``renew`` raises LeaseLost
    too) or the process is killed.

``python -m tests.support.lease_holder race LOCATION DAY RUN_ID``
    prints ``ready`` once its store is probed, then per line on stdin:
    ``go <epoch seconds>``: at that wall-clock moment tries to take the lease without
    waiting and prints ``won`` or ``busy``; ``release``: gives back the lease it won
    (prints ``released``); ``quit``: exits.

LOCATION is a folder or ``s3://bucket/prefix`` (endpoint from FAILMAP_S3_ENDPOINT_URL,
credentials from the environment, as production gets them).
"""

from __future__ import annotations

import os
import sys
import time
from datetime import date

from failmap_assets.pipeline.day_lease import DayBusy, DayLease, LeaseLost, LeaseOptions
from failmap_assets.storage.locations import open_store


def _store(location: str):
    return open_store(location, endpoint_url=os.environ.get("FAILMAP_S3_ENDPOINT_URL") or None,
                      region=os.environ.get("AWS_REGION") or None)


def hold(location: str, day: str, run_id: str, ttl: str) -> None:
    lease = DayLease(_store(location), "failmap", date.fromisoformat(day), run_id,
                     LeaseOptions(ttl_s=float(ttl), wait_s=30, poll_s=0.05), log=lambda _: None)
    lease.acquire()
    print(f"held {os.getpid()}", flush=True)
    while True:
        time.sleep(0.05)
        try:
            lease.check()
        except LeaseLost as exc:
            try:
                lease.renew()
            except LeaseLost:
                pass
            else:
                print("renewed a lost lease", flush=True)
                return
            print(f"lost {exc}", flush=True)
            lease.release()  # must not touch the new holder's lease
            return


def race(location: str, day: str, run_id: str) -> None:
    store = _store(location)
    store.check_conditional_writes()  # probe now, not inside the race
    print("ready", flush=True)
    lease: DayLease | None = None
    for line in sys.stdin:
        cmd, *args = line.split()
        if cmd == "go":
            while time.time() < float(args[0]):
                time.sleep(0.0005)
            candidate = DayLease(store, "failmap", date.fromisoformat(day), run_id,
                                 LeaseOptions(ttl_s=600, wait_s=0, poll_s=0.01), log=lambda _: None)
            try:
                candidate.acquire()
            except DayBusy:
                print("busy", flush=True)
            else:
                lease = candidate
                print("won", flush=True)
        elif cmd == "release":
            assert lease is not None
            lease.release()
            lease = None
            print("released", flush=True)
        elif cmd == "quit":
            return


if __name__ == "__main__":
    mode, *rest = sys.argv[1:]
    {"hold": hold, "race": race}[mode](*rest)
