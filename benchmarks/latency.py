"""Latency from a fail map landing to its outputs being visible, with the sensors on.

The deployment of benchmarks/deployment.py: PostgreSQL as Dagster's storage
(deploy/dagster-postgres.yaml, the shipped run queue), `dagster api grpc`,
`dagster-daemon run` and `dagster-webserver` as separate processes, the four sensors
turned on through the webserver's GraphQL API (`FAILMAP_SENSOR_INTERVAL_SECONDS`,
`--interval`, 30 s as shipped), SeaweedFS as the source buckets and the output
(`--store local`: local folders instead). A trickle of fail maps lands in today's
prefix: `--rate` A files per second for `--minutes`, each with its B partner 0-10 s
later (the partner's key time). Every second the script reads the day's committed
manifest; an A object is *visible* once a commit accounts for its unit (processed or
rejected: its rows are in the committed Parquet) and, when processed, its wafers' PNG
and JSON are present in the output. Latency = visible - landed (the PUT returned).

    .venv/bin/python benchmarks/latency.py --minutes 10 --rate 2

Figures: latency p50 / p95 / max (goal: p95 <= 60 s), runs the sensors launched.
"""

from __future__ import annotations

import argparse
import io
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from deployment import cleanup, deployment, ensure_warm_numba, percentile, s3_failmap_env, servers


def trickle_plan(day, rate: float, minutes: float, seed: int = 11):
    """(offset seconds, object) for every A object and its B partner, in landing order,
    and the keys of the A objects that have a partner."""
    from failmap_assets.discovery.keys import parse_failmap_key
    from failmap_synth.day import generate_day

    n = max(1, int(minutes * 60 * rate))
    objects = [o for o in generate_day(day, n, seed, broken=False, dies_range=(400, 3000), typical_dies=1500)
               if o.bucket in ("a", "b") and parse_failmap_key(o.key)]
    a_objs = sorted((o for o in objects if o.bucket == "a"), key=lambda o: o.key.rsplit("_", 2)[-1])
    b_by_key = {o.key: o for o in objects if o.bucket == "b"}
    plan = []
    for i, a in enumerate(a_objs):
        t = i / rate
        plan.append((t, a))
        b = b_by_key.get(a.partner) if a.partner else None
        if b is not None:
            delay = (parse_failmap_key(b.key).file_time - parse_failmap_key(a.key).file_time).total_seconds()
            plan.append((t + max(0.0, delay), b))
    plan.sort(key=lambda p: p[0])
    # A files with a B partner are matched as soon as the B lands; the others stay
    # pending for the pairing grace (10 min) by the contract, and are reported apart.
    with_b = {a.key for a in a_objs if a.partner and a.partner in b_by_key}
    return plan, with_b, len(a_objs)


class Visibility:
    """When each A object's unit became visible in the committed output."""

    def __init__(self, out, day) -> None:
        self.out, self.day = out, day
        self.etag = None
        self.committed: dict[str, list[str]] = {}   # unit key -> wafer tokens (empty: rejected)
        self.manifest = None

    def poll(self, landed: dict[str, float], done: dict[str, float]) -> None:
        import polars as pl

        from failmap_assets.storage.day_manifest import read_manifest
        from failmap_assets.storage.layout import json_key, png_key, wafer_dirs

        manifest, etag = read_manifest(self.out, "failmap", self.day)
        if manifest is None:
            return
        if etag != self.etag:
            self.etag, self.manifest = etag, manifest
            units = pl.read_parquet(io.BytesIO(self.out.get(manifest.state["units"])))
            events = pl.read_parquet(io.BytesIO(self.out.get(manifest.state["events"])))
            tokens: dict[str, list[str]] = {}
            for key, token in events.select("unit_key", "wafer_token").iter_rows():
                tokens.setdefault(key, []).append(token)
            self.committed = {key: (tokens.get(key, []) if outcome == "ok" else [])
                              for key, outcome in units.select("unit_key", "outcome").iter_rows()
                              if outcome in ("ok", "rejected")}
        waiting = [k for k in self.committed if k in landed and k not in done]
        if not waiting:
            return
        now = time.time()
        png_dir, json_dir, _true_aspect_dir = wafer_dirs(self.day)
        present = {o.key for o in self.out.list(png_dir)} | {o.key for o in self.out.list(json_dir)}
        for k in waiting:
            if all(png_key(self.day, t) in present and json_key(self.day, t) in present for t in self.committed[k]):
                done[k] = now


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="how long files keep landing")
    ap.add_argument("--rate", type=float, default=2.0, help="A files per second (each with a B partner)")
    ap.add_argument("--interval", type=int, default=30, help="sensor minimum interval, seconds")
    ap.add_argument("--store", choices=("s3", "local"), default="s3", help="buckets and output: SeaweedFS or folders")
    ap.add_argument("--storage", choices=("postgres", "sqlite"), default="postgres", help="Dagster's storage")
    ap.add_argument("--drain-minutes", type=float, default=5.0, help="how long to wait for the last files")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder")
    args = ap.parse_args()

    ensure_warm_numba()
    work = Path(tempfile.mkdtemp(prefix="failmap-latency-"))
    today = datetime.now(UTC).date()
    start = today.replace(day=1) if today.day > 1 else today
    plan, with_b, n_a = trickle_plan(today, args.rate, args.minutes)
    with servers(work, s3=args.store == "s3", postgres=args.storage == "postgres") as srv:
        extra = {"FAILMAP_START_DATE": start.isoformat(), "FAILMAP_SENSOR_INTERVAL_SECONDS": str(args.interval)}
        if args.store == "s3":
            fenv = s3_failmap_env(srv, **extra)
        else:
            fab = work / "fab"
            fenv = {"FAILMAP_SOURCE_A": str(fab / "a"), "FAILMAP_SOURCE_B": str(fab / "b"),
                    "FAILMAP_SOURCE_STDF": str(fab / "stdf"), "FAILMAP_OUTPUT": str(fab / "out"),
                    "FAILMAP_TIMEZONE": "UTC", **extra}
            for sub in ("a", "b", "stdf", "out"):
                (fab / sub).mkdir(parents=True)
        stores = {b: srv.store(fenv[f"FAILMAP_SOURCE_{b.upper()}"]) for b in ("a", "b")}
        seen = Visibility(srv.store(fenv["FAILMAP_OUTPUT"]), today)
        with deployment(work / "deploy", srv, fenv, storage=args.storage) as dep:
            dep.set_sensors(on=True)
            landed: dict[str, float] = {}
            done: dict[str, float] = {}
            t0 = time.time()

            def land() -> None:
                for offset, o in plan:
                    time.sleep(max(0.0, t0 + offset - time.time()))
                    stores[o.bucket].put(o.key, o.data)
                    if o.bucket == "a":
                        landed[o.key] = time.time()

            lander = threading.Thread(target=land, daemon=True)
            lander.start()
            deadline = t0 + args.minutes * 60 + args.drain_minutes * 60
            while time.time() < deadline:
                for proc_name, proc in dep.procs.items():
                    if proc.poll() is not None:
                        raise RuntimeError(f"{proc_name} exited ({proc.returncode})\n{dep.tails()}")
                seen.poll(landed, done)
                if not lander.is_alive() and all(k in done for k in with_b):
                    break
                time.sleep(1.0)
            runs = [r for r in dep.instance.get_runs() if r.tags.get("failmap/trigger", "").endswith("_sensor")]
            failed = [r for r in runs if r.status.value == "FAILURE"]

    latencies = [done[k] - landed[k] for k in done if k in with_b]
    alone = [k for k in done if k not in with_b]
    p95 = percentile(latencies, .95)
    manifest = seen.manifest
    where = "SeaweedFS" if args.store == "s3" else "local folders"
    print(f"\nlatency benchmark: {len(landed)} A files (+ B partners) at {args.rate}/s for {args.minutes} min, "
          f"sensor interval {args.interval} s, {where}, {args.storage} storage, dagster-daemon + code server + "
          f"webserver, shipped run queue, {today}")
    print(f"  A files with B visible        {len(latencies)} of {len(with_b)} (day: "
          f"{manifest.totals.get('wafers') if manifest else 0} wafers, generation "
          f"{manifest.generation if manifest else 0})")
    print(f"  latency landing -> visible    p50 {percentile(latencies, .5):.1f} s   p95 {p95:.1f} s"
          f"   max {max(latencies, default=float('nan')):.1f} s")
    print(f"  goal p95 <= 60 s              {'met' if p95 <= 60 else 'NOT met'}")
    print(f"  A files without B             {n_a - len(with_b)} (pending for the pairing grace; "
          f"{len(alone)} visible as a_only before the script stopped)")
    print(f"  runs launched by sensors      {len(runs)} ({len(failed)} failed)")
    cleanup(work, args.keep)
    return 0 if len(latencies) == len(with_b) else 1


if __name__ == "__main__":
    raise SystemExit(main())
