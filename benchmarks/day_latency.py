"""Latency from a file landing to its committed outputs, with the sensors on, and the
time a run with nothing to do takes.

A real deployment shape on this machine: `dagster-daemon run` (sensors, run queue
with the shipped deploy/dagster.yaml) over local folders as buckets. A trickle of
fail maps (A files, and their B partners 0-10 s later) lands in today's folder at a
fixed rate; the script polls the day's manifest and records, for every A object,
when a commit first accounts for it (its unit processed or rejected). Then it
launches runs of the same day through the queue with nothing new in them and reads
their durations from the instance, and times a no-op day run in process.

    .venv/bin/python benchmarks/day_latency.py --minutes 3 --rate 1 --interval 30

Figures: latency p50 / p95 / max (seconds), runs the sensors launched, no-op run
duration through the daemon (queue -> start -> end) and in process.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
BIN = Path(sys.executable).parent


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))] if s else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=3.0, help="how long files keep landing")
    ap.add_argument("--rate", type=float, default=1.0, help="A files per second (each with a B partner)")
    ap.add_argument("--interval", type=int, default=30, help="sensor minimum interval, seconds")
    ap.add_argument("--noop-runs", type=int, default=3)
    ap.add_argument("--keep", action="store_true", help="keep the temp folder")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="failmap-latency-"))
    home, fab = work / "dagster", work / "fab"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    today = datetime.now(UTC).date()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAILMAP_", "DAGSTER_HOME"))}
    env.update(DAGSTER_HOME=str(home), FAILMAP_HOME=str(fab), FAILMAP_TIMEZONE="UTC",
               FAILMAP_START_DATE=f"{today.replace(day=1) if today.day > 1 else today}",
               FAILMAP_SENSOR_INTERVAL_SECONDS=str(args.interval), PYTHONPATH=str(REPO))
    os.environ.update(env)
    for sub in ("a", "b", "stdf", "out"):
        (fab / sub).mkdir(parents=True)

    from failmap_assets.discovery.keys import parse_failmap_key
    from tests.support.processes import stop_process
    from failmap_assets.storage.day_manifest import committed_files, read_manifest
    from failmap_assets.storage.local_store import LocalObjectStore
    from failmap_synth.day import generate_day

    stores = {k: LocalObjectStore(fab / k) for k in ("a", "b", "out")}
    n = max(1, int(args.minutes * 60 * args.rate))
    objects = [o for o in generate_day(today, n, 11, broken=False, dies_range=(400, 3000), typical_dies=1500)
               if o.bucket in ("a", "b") and parse_failmap_key(o.key)]
    a_objs = sorted((o for o in objects if o.bucket == "a"), key=lambda o: o.key.rsplit("_", 2)[-1])
    partner = {o.partner: o for o in objects if o.bucket == "b"}
    by_key = {o.key: o for o in objects if o.bucket == "b"}
    plan = []  # (offset seconds, object)
    for i, a in enumerate(a_objs):
        t = i / args.rate
        plan.append((t, a))
        b = by_key.get(a.partner) if a.partner else None
        if b is not None:
            delay = (parse_failmap_key(b.key).file_time - parse_failmap_key(a.key).file_time).total_seconds()
            plan.append((t + max(0.0, delay), b))
    del partner
    plan.sort(key=lambda p: p[0])
    # A files with a B partner are matched as soon as the B lands; the others stay
    # pending for the pairing grace (10 min) by the contract, and are reported apart.
    with_b = {a.key for a in a_objs if a.partner and a.partner in by_key}

    from dagster import DagsterInstance

    DagsterInstance.get().dispose()  # create the SQLite storage once, before two processes race to
    daemon = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"], cwd=REPO, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        started = subprocess.run([str(BIN / "dagster"), "sensor", "start", "--start-all", "-w", "workspace.yaml"],
                                 cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        assert started.returncode == 0, started.stderr[-2000:]
        landed: dict[str, float] = {}
        done: dict[str, float] = {}
        t0 = time.time()
        pending = list(plan)
        last_poll = 0.0
        deadline = t0 + args.minutes * 60 + 900
        while time.time() < deadline:
            now = time.time()
            while pending and now - t0 >= pending[0][0]:
                _, o = pending.pop(0)
                stores[o.bucket].put(o.key, o.data)
                if o.bucket == "a":
                    landed[o.key] = time.time()
            if now - last_poll >= 0.5:
                last_poll = now
                files = committed_files(stores["out"], "failmap", today, "units")
                if files:
                    import io

                    import polars as pl

                    units = pl.read_parquet(io.BytesIO(stores["out"].get(files[0])))
                    for key in units.filter(pl.col("outcome").is_in(["ok", "rejected"]))["unit_key"].to_list():
                        if key in landed and key not in done:
                            done[key] = now
                if not pending and all(k in done for k in with_b if k in landed):
                    break
            time.sleep(0.05)
        latencies = [done[k] - landed[k] for k in done if k in with_b]
        alone = [done[k] - landed[k] for k in done if k not in with_b]
        with __import__("dagster").DagsterInstance.get() as instance:
            sensor_runs = [r for r in instance.get_runs() if r.tags.get("failmap/trigger", "").endswith("_sensor")]
            # no-op runs through the queue and the daemon
            noop_ids = []
            for i in range(args.noop_runs):
                launched = subprocess.run(
                    [str(BIN / "dagster"), "job", "launch", "-w", "workspace.yaml", "-j", "failmap_day_job",
                     "--tags", f'{{"dagster/partition": "{today}", "failmap/trigger": "noop-benchmark"}}'],
                    cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
                assert launched.returncode == 0, launched.stderr[-2000:]
                while True:
                    runs = [r for r in instance.get_runs() if r.tags.get("failmap/trigger") == "noop-benchmark"]
                    if len(runs) > i and all(r.is_finished for r in runs):
                        break
                    time.sleep(0.5)
            noop = []
            for r in instance.get_runs():
                if r.tags.get("failmap/trigger") != "noop-benchmark":
                    continue
                rec = instance.get_run_record_by_id(r.run_id)
                noop.append((rec.start_time - rec.create_timestamp.timestamp(), rec.end_time - rec.start_time,
                             r.status.value))
                noop_ids.append(r.run_id)
    finally:
        stop_process(daemon)

    # a no-op day run in process (what the op itself costs)
    from failmap_assets.defs.failmap.assets import run_failmap_day
    from failmap_assets.resources import build_resources
    from failmap_assets.settings import Settings

    res = build_resources(Settings.from_env())
    inproc = []
    for i in range(5):
        t = time.perf_counter()
        report = run_failmap_day(today, res["storage"], res["failmap_rules"], run_id=f"noop-{i}", log=lambda _: None)
        inproc.append(time.perf_counter() - t)
        assert not report.committed
    manifest, _ = read_manifest(stores["out"], "failmap", today)

    print(f"\nday latency benchmark: {len(landed)} A files (+ B partners) at {args.rate}/s for {args.minutes} min, "
          f"sensor interval {args.interval} s, local folders, dagster-daemon + shipped run queue, 2 cores")
    print(f"  A files with B committed    {len(latencies)} of {len(with_b)} (day: {manifest.totals.get('wafers')} "
          f"wafers, generation {manifest.generation})")
    print(f"  latency landing -> commit   p50 {percentile(latencies, .5):.1f} s   p95 {percentile(latencies, .95):.1f} s"
          f"   max {max(latencies, default=float('nan')):.1f} s")
    print(f"  A files without B           {len(a_objs) - len(with_b)} (pending for the pairing grace; "
          f"{len(alone)} committed as a_only before the script stopped)")
    print(f"  runs launched by sensors    {len(sensor_runs)}")
    for wait, dur, status in noop:
        print(f"  no-op run via the daemon    queued -> started {wait:.1f} s, run {dur:.1f} s ({status})")
    print(f"  no-op day run in process    median {statistics.median(inproc) * 1000:.0f} ms "
          f"(min {min(inproc) * 1000:.0f}, max {max(inproc) * 1000:.0f})")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"  kept {work}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
