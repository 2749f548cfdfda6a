"""Sensor tick time vs bucket size: ours next to dagster_aws.s3.sensor.get_objects.

    .venv/bin/python benchmarks/sensor_tick.py [--local 10000,1000000] [--s3 10000,200000]
                                               [--new 1000] [--days 365] [--repeat 3]

For each bucket (local folders, and the real S3 server - SeaweedFS on 127.0.0.1,
started here with the same code as tests/s3_server.py), existing keys are spread over
``--days`` day folders ending today (fab time), the sensor is turned on over them
once (the turn-on sweep: it closes every day older than the look-back), and then,
``--repeat`` times, ``--new`` objects are written into the open days (today and
yesterday, random key order) and one tick of ``bucket_a_sensor`` is timed through
Dagster (``evaluate_tick``, a real on-disk SQLite instance, the FailmapStorage
resource, default caps). Also timed: a tick with nothing new, and on the same data:

* S3: ``dagster_aws.s3.sensor.get_objects(bucket, since_last_modified=...)``, which
  lists the whole bucket on every call;
* local folders: get_objects cannot read a folder, so its strategy (list every key,
  keep those modified after the cursor) over LocalObjectStore stands in for it.

Goal: our tick <= 2 s and flat in bucket size. Prints a markdown table with ratios.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
# a year of day folders before NOW must all be partitions (read when partitions.py is imported)
os.environ["FAILMAP_START_DATE"] = "2025-01-01"
os.environ.setdefault("FAILMAP_TIMEZONE", "UTC")

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # the fab clock the sensor sees
TODAY = NOW.date()


def existing_keys(n: int, days: int) -> list[str]:
    """``n`` fail-map keys spread evenly over ``days`` day folders ending today."""
    keys = []
    per, extra = divmod(n, days)
    for i in range(days):
        d = TODAY - timedelta(days=days - 1 - i)
        count = per + (1 if i < extra else 0)
        for j in range(count):
            s = int(j * 86400 / max(count, 1))
            keys.append(f"{d:%Y%m%d}/L{j // 25:05d}.1_{j % 25 + 1:02d}P_{d:%Y%m%d}_{s // 3600:02d}{s // 60 % 60:02d}{s % 60:02d}.Z")
    return keys


def new_keys(n: int, round_: int, rng: random.Random) -> list[str]:
    """``n`` keys in today's and yesterday's folders, shuffled (out of key order)."""
    keys = []
    for j in range(n):
        d = TODAY - timedelta(days=j % 2)
        s = rng.randrange(86400 if d < TODAY else NOW.hour * 3600)
        keys.append(f"{d:%Y%m%d}/N{round_}{j:05d}.2_{j % 25 + 1:02d}R_{d:%Y%m%d}_{s // 3600:02d}{s // 60 % 60:02d}{s % 60:02d}.Z")
    rng.shuffle(keys)
    return keys


# ----- writing the data ------------------------------------------------------------------
def write_local(root: Path, keys: list[str]) -> None:
    """Plain file writes (the store's put fsyncs each file: too slow for a million)."""
    made: set[str] = set()
    for key in keys:
        folder = key.split("/", 1)[0]
        if folder not in made:
            (root / folder).mkdir(parents=True, exist_ok=True)
            made.add(folder)
        with open(root / key, "wb") as f:
            f.write(key.encode())


def _put_part(endpoint: str, region: str, bucket: str, keys: list[str], threads: int) -> None:
    import boto3
    from botocore.config import Config

    client = boto3.session.Session().client(
        "s3", endpoint_url=endpoint, region_name=region,
        config=Config(s3={"addressing_style": "path"}, max_pool_connections=threads))
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda k: client.put_object(Bucket=bucket, Key=k, Body=k.encode()), keys))


def write_s3(server, bucket: str, keys: list[str], processes: int = 3, threads: int = 16) -> None:
    """PUTs from a few processes (one boto3 client is GIL-bound near 600 PUT/s)."""
    if len(keys) < 5000:
        _put_part(server.endpoint_url, server.region, bucket, keys, threads)
        return
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(processes) as pool:
        futures = [pool.submit(_put_part, server.endpoint_url, server.region, bucket, keys[i::processes], threads)
                   for i in range(processes)]
        for f in futures:
            f.result()


# ----- measuring ------------------------------------------------------------------------------
class OurSensor:
    def __init__(self, storage, instance_dir: Path):
        from dagster import DagsterInstance

        from failmap_assets.sensors import bucket_sensors
        from tests.support.sensor_simulation import stub_definitions

        bucket_sensors.current_time = lambda: NOW
        instance_dir.mkdir(parents=True, exist_ok=True)
        self.instance = DagsterInstance.local_temp(str(instance_dir))
        self.defs = stub_definitions()
        self.sensor = self.defs.get_sensor_def("bucket_a_sensor")
        self.storage = storage
        self.cursor: str | None = None

    def tick(self) -> tuple[float, int, int]:
        """(seconds, objects requested, run requests)."""
        from dagster import build_sensor_context

        from failmap_assets.discovery.seen_ledger import LedgerStore
        from tests.support.sensor_simulation import sensor_resources

        resources = sensor_resources(self.storage)  # as the deployment's environment says now
        t0 = time.perf_counter()
        ctx = build_sensor_context(instance=self.instance, cursor=self.cursor, definitions=self.defs,
                                   resources=resources, sensor_name="bucket_a_sensor")
        data = self.sensor.evaluate_tick(ctx)
        seconds = time.perf_counter() - t0
        if data.cursor is not None:
            self.cursor = data.cursor
        ls = LedgerStore(self.instance.daemon_cursor_storage, "failmap/sensors/bucket_a_sensor")
        objects = sum(int(rr.tags["failmap/objects_count"]) for rr in data.run_requests)
        if data.run_requests:  # the manifests are complete
            assert sum(len(ls.load_manifest(rr.tags["failmap/manifest"]).objects) for rr in data.run_requests) == objects
        return seconds, objects, len(data.run_requests)


def turn_on(sensor: OurSensor) -> tuple[float, int]:
    """First tick over the full bucket with caps lifted (setup, reported for information)."""
    caps = {"FAILMAP_SENSOR_MAX_RUNS_PER_TICK": "100000", "FAILMAP_SENSOR_MAX_OBJECTS_PER_TICK": "100000000",
            "FAILMAP_SENSOR_TIME_BUDGET_SECONDS": "3600"}
    saved = {k: os.environ.get(k) for k in caps}
    os.environ.update(caps)
    try:
        seconds, objects, _ = sensor.tick()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return seconds, objects


def run_case(label: str, n_existing: int, args, store_writer, peer, storage, work: Path) -> dict:
    rng = random.Random(n_existing)
    t0 = time.perf_counter()
    store_writer(existing_keys(n_existing, args.days))
    write_s = time.perf_counter() - t0
    sensor = OurSensor(storage, work / f"dagster-{label}-{n_existing}")
    on_s, on_objects = turn_on(sensor)
    assert on_objects == n_existing, (on_objects, n_existing)
    quiet = [sensor.tick() for _ in range(args.repeat)]
    assert all(q[1] == 0 for q in quiet)
    ours, peers = [], []
    for r in range(args.repeat):
        since = datetime.now(UTC) - timedelta(seconds=1)
        store_writer(new_keys(args.new, r, rng))
        seconds, objects, runs = sensor.tick()
        assert objects == args.new and runs == 2, (objects, runs)
        ours.append(seconds)
        t1 = time.perf_counter()
        found, listed, peer_s = peer(since)
        peers.append(peer_s)
        assert found >= args.new, (found, args.new)
    from failmap_assets.discovery.cursor import SensorCursor

    cursor = SensorCursor.decode(sensor.cursor)
    row = {
        "backend": label, "existing": n_existing, "new": args.new,
        "ours_s": statistics.median(ours), "ours_max_s": max(ours),
        "ours_quiet_s": statistics.median(q[0] for q in quiet),
        "peer_s": statistics.median(peers), "peer_listed": listed,
        "open_days": len(cursor.days), "cursor_chars": len(sensor.cursor or ""),
        "write_s": write_s, "turn_on_s": on_s,
    }
    row["ratio"] = row["peer_s"] / row["ours_s"]
    print(f"  {row}", flush=True)
    sensor.instance.dispose()
    return row


def local_cases(sizes: list[int], args, work: Path) -> list[dict]:
    from failmap_assets.storage.local_store import LocalObjectStore
    from failmap_assets.resources.storage import FailmapStorage

    rows = []
    for n in sizes:
        root = work / f"local-{n}" / "a"
        root.mkdir(parents=True)
        store = LocalObjectStore(root)
        storage = FailmapStorage(source_a=str(root), source_b=str(root.parent / "b"),
                                 source_stdf=str(root.parent / "stdf"), output=str(root.parent / "out"))

        def peer(since: datetime, store=store) -> tuple[int, int, float]:
            t = time.perf_counter()
            listed = found = 0
            for o in store.list(""):
                listed += 1
                found += o.last_modified > since
            return found, listed, time.perf_counter() - t

        print(f"local folders, {n:,} existing keys ...", flush=True)
        rows.append(run_case("local", n, args, lambda keys, root=root: write_local(root, keys), peer, storage, work))
        shutil.rmtree(root.parent, ignore_errors=True)
    return rows


def s3_cases(sizes: list[int], args, work: Path) -> list[dict]:
    from dagster_aws.s3.sensor import get_objects

    from failmap_assets.resources.storage import FailmapStorage
    from tests.support.s3_server import start_server, stop_server

    (work / "seaweed").mkdir()
    proc, server = start_server(work / "seaweed")
    rows = []
    try:
        os.environ.update(AWS_ACCESS_KEY_ID=server.access_key, AWS_SECRET_ACCESS_KEY=server.secret_key,
                          AWS_REGION=server.region)
        client = server.client()
        for n in sizes:
            bucket = server.make_bucket(f"bench-{n}")
            storage = FailmapStorage(source_a=f"s3://{bucket}", source_b=f"s3://{bucket}/b",
                                     source_stdf=f"s3://{bucket}/stdf", output=f"s3://{bucket}/out",
                                     s3_endpoint_url=server.endpoint_url, aws_region=server.region)

            def peer(since: datetime, bucket=bucket) -> tuple[int, int, float]:
                # since_last_modified is exclusive and LastModified has 1 s resolution
                t = time.perf_counter()
                objs = get_objects(bucket, since_last_modified=since - timedelta(seconds=1), client=client)
                seconds = time.perf_counter() - t
                return len(objs), _count(client, bucket), seconds

            print(f"S3 (SeaweedFS on loopback), {n:,} existing keys ...", flush=True)
            rows.append(run_case("s3", n, args, lambda keys, bucket=bucket: write_s3(server, bucket, keys), peer,
                                 storage, work))
    finally:
        stop_server(proc, server)
    return rows


def _count(client, bucket: str) -> int:
    """Keys in the bucket (what get_objects listed)."""
    n = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        n += page.get("KeyCount", 0)
    return n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--local", default="10000,1000000", help="existing keys in local-folder runs ('' to skip)")
    p.add_argument("--s3", default="10000,200000", help="existing keys in S3 runs ('' to skip)")
    p.add_argument("--new", type=int, default=1000)
    p.add_argument("--days", type=int, default=365)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--workdir", default=None, help="scratch folder (default: a temp folder, removed at the end)")
    args = p.parse_args()

    work = Path(tempfile.mkdtemp(prefix="failmap-sensor-bench-", dir=args.workdir))
    rows = []
    try:
        if args.local:
            rows += local_cases([int(x) for x in args.local.split(",")], args, work)
        if args.s3:
            rows += s3_cases([int(x) for x in args.s3.split(",")], args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print()
    print(f"sensor tick with {args.new:,} new objects (median of {args.repeat}); existing keys over {args.days} day folders;"
          f" our sensor = bucket_a_sensor through Dagster evaluate_tick, default caps")
    print()
    print("| backend | existing keys | our tick (s) | our tick, max (s) | our tick, nothing new (s) "
          "| get_objects (s)* | keys it listed | get_objects / ours | open days | cursor (chars) | turn-on sweep (s) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['backend']} | {r['existing']:,} | {r['ours_s']:.3f} | {r['ours_max_s']:.3f} | {r['ours_quiet_s']:.3f} "
              f"| {r['peer_s']:.3f} | {r['peer_listed']:,} | {r['ratio']:.1f}x | {r['open_days']} | {r['cursor_chars']} "
              f"| {r['turn_on_s']:.1f} |")
    for backend in ("local", "s3"):
        mine = [r for r in rows if r["backend"] == backend]
        if len(mine) >= 2:
            lo, hi = mine[0], mine[-1]
            print(f"\n{backend}: bucket x{hi['existing'] / lo['existing']:.0f} -> our tick x{hi['ours_s'] / lo['ours_s']:.2f},"
                  f" peer x{hi['peer_s'] / lo['peer_s']:.1f}")
    if any(r["backend"] == "local" for r in rows):
        print("\n* s3 rows: dagster_aws.s3.sensor.get_objects itself. local rows: get_objects cannot read a folder; its strategy (list every key, keep those"
              " modified after the cursor) over LocalObjectStore stands in for it.")
    worst = max((r["ours_max_s"] for r in rows), default=0.0)
    print(f"\ngoal: our tick <= 2 s: {'met' if worst <= 2.0 else 'NOT met'} (worst {worst:.3f} s)")


if __name__ == "__main__":
    main()
