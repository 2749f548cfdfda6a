"""How a backfill scales with the run slots: days per minute and wafers per second with
`max_concurrent_runs` 1, 2, 4.

The deployment of benchmarks/deployment.py (PostgreSQL storage, SeaweedFS buckets and
output, `dagster api grpc`, `dagster-daemon run`, `dagster-webserver` as separate
processes, Dagster's default run launcher: one process per run) and `--days` synthetic
days of `--wafers` wafers each (`failmap synth`, fail maps only, broken objects
included). For each setting, a new instance (a fresh PostgreSQL database) whose run
queue is deploy/dagster-postgres.yaml with `max_concurrent_runs`, the fail-map
pipeline's limit and the backfill's own limit (`dagster/backfill`) all set to the
setting, code server and daemon started anew, output into a fresh prefix; a backfill
of every day of `failmap_day_job` launched through the webserver's GraphQL
(`launchPartitionBackfill`, as the UI does). Wall time from the launch to the last
run's end.

    .venv/bin/python benchmarks/backfill_scaling.py --days 8 --wafers 150 --settings 1,2,4
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from deployment import cleanup, deployment, ensure_warm_numba, s3_failmap_env, servers, synth

JOB = "failmap_day_job"
FIRST = date(2026, 3, 2)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=8)
    ap.add_argument("--wafers", type=int, default=150, help="wafers (A files) per day")
    ap.add_argument("--settings", default="1,2,4", help="max_concurrent_runs values, in order")
    ap.add_argument("--dequeue-interval", type=int, default=None,
                    help="seconds between the queue's dequeues (default: Dagster's, as shipped)")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder")
    args = ap.parse_args()
    settings = [int(x) for x in args.settings.split(",")]
    days = [(FIRST + timedelta(days=i)).isoformat() for i in range(args.days)]

    ensure_warm_numba()
    work = Path(tempfile.mkdtemp(prefix="failmap-backfill-"))
    rows = []
    with servers(work) as srv:
        t = time.perf_counter()
        counts = synth({**srv.env(), **s3_failmap_env(srv)}, days[0], args.days, args.wafers, seed=3)
        synth_s = time.perf_counter() - t
        from failmap_assets.storage.day_manifest import read_manifest

        for k in settings:
            fenv = s3_failmap_env(srv, out=f"out-k{k}", FAILMAP_START_DATE="2026-01-01")
            with deployment(work / f"k{k}", srv, fenv, max_concurrent_runs=k, backfill_limit=k,
                            dequeue_interval=args.dequeue_interval) as dep:
                from dagster import RunsFilter

                t0 = time.time()
                backfill = dep.launch_backfill(JOB, days)

                def runs():
                    return dep.instance.get_run_records(RunsFilter(tags={"dagster/backfill": backfill}))

                dep.wait(f"the backfill of {len(days)} days with {k} run slot(s)",
                         lambda: len(runs()) == len(days) and all(r.dagster_run.is_finished for r in runs()),
                         3600, poll=0.5)
                recs = runs()
            bad = [r.dagster_run.status.value for r in recs if r.dagster_run.status.value != "SUCCESS"]
            if bad:
                raise RuntimeError(f"{len(bad)} backfill run(s) did not succeed with {k} slot(s): {bad}")
            wall = max(r.end_time for r in recs) - t0
            # the most runs that were seen running at once
            edges = sorted([(r.start_time, 1) for r in recs] + [(r.end_time, -1) for r in recs])
            busy = peak = 0
            for _, d in edges:
                busy += d
                peak = max(peak, busy)
            out = srv.store(fenv["FAILMAP_OUTPUT"])
            wafers = 0
            for d in days:
                manifest, _ = read_manifest(out, "failmap", date.fromisoformat(d))
                if manifest is None:
                    raise RuntimeError(f"{d} not committed with {k} slot(s)")
                wafers += int(manifest.totals.get("wafers") or 0)
            run_s = sorted(r.end_time - r.start_time for r in recs)
            rows.append({"k": k, "wall": wall, "wafers": wafers, "peak": peak,
                         "run_median": run_s[len(run_s) // 2]})

    base = rows[0]
    print(f"\nbackfill scaling: {args.days} days x {args.wafers} A files ({sum(counts.values())} objects, "
          f"synth {synth_s:.0f} s), failmap_day_job backfill via GraphQL, PostgreSQL + SeaweedFS, "
          f"daemon + code server + webserver, {os.cpu_count()} cores")
    print("| max_concurrent_runs | most runs at once | wall s | days/min | wafers/s | median run s | speed-up vs "
          f"{base['k']} |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['k']} | {r['peak']} | {r['wall']:.1f} | {args.days / r['wall'] * 60:.2f} | "
              f"{r['wafers'] / r['wall']:.2f} | {r['run_median']:.1f} | {base['wall'] / r['wall']:.2f}x |")
    best = max(rows, key=lambda r: r["wafers"] / r["wall"])
    per_core = best["wafers"] / best["wall"] / (os.cpu_count() or 1)
    print(f"  wafers per day committed: {rows[0]['wafers'] // args.days}; best {best['wafers'] / best['wall']:.2f} "
          f"wafers/s with {best['k']} slot(s) = {per_core:.2f} wafers/s per core = "
          f"{per_core * 86400:,.0f} wafers per core-day")
    cleanup(work, args.keep)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
