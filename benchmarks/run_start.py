"""A day launched from the UI against the same day run in process, and a run with
nothing to do, both ways.

The deployment of benchmarks/deployment.py (PostgreSQL, SeaweedFS, `dagster api grpc`,
`dagster-daemon run`, `dagster-webserver`, the shipped deploy/dagster-postgres.yaml:
Dagster's default run launcher, our run queue) and one synthetic day (`failmap synth`,
fail maps only) in SeaweedFS. Alternating, `--repeat` times, each with the day's
output deleted first:

  (a) UI: the webserver's GraphQL `launchRun` of `failmap_day_job` for the day's
      partition (what the Launchpad sends); the daemon dequeues it, the code server
      starts the run worker, the job's own in_process executor runs the day. Run time
      = the run's start -> end from the instance's run records; queued -> started
      (create -> start) apart.
  (b) in process: `failmap run-day DAY --pipeline failmap`, a fresh process on the same
      settings; its wall time (process start and imports included), and the day
      runner's own seconds.

Then (c) no-op runs, the day already committed: `--repeat` UI launches and `--repeat`
`failmap run-day`s. Medians; the ratio UI / in process (goal <= 1.25) and the no-op run
time (goal <= 5 s).

    .venv/bin/python benchmarks/run_start.py --wafers 300 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

from deployment import (BIN, REPO, cleanup, deployment, ensure_warm_numba, median, s3_failmap_env, servers,
                        synth)

DAY = "2026-03-02"
JOB = "failmap_day_job"


def ui_run(dep, tag: str) -> dict:
    t = time.time()
    run_id = dep.launch_run(JOB, DAY, {"failmap/trigger": tag})
    [rec] = dep.wait_runs([run_id], poll=0.2)
    if rec.dagster_run.status.value != "SUCCESS":
        raise RuntimeError(f"UI run {run_id} {rec.dagster_run.status.value}\n{dep.tails()}")
    return {"queued": rec.start_time - rec.create_timestamp.timestamp(), "run": rec.end_time - rec.start_time,
            "total": rec.end_time - t}


def in_process(dep) -> dict:
    t = time.perf_counter()
    done = subprocess.run([str(BIN / "failmap"), "run-day", DAY, "--pipeline", "failmap"], env=dep.env, cwd=REPO,
                          capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - t
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    [line] = [json.loads(x) for x in done.stdout.splitlines() if x.startswith("{")]
    return {"wall": wall, "seconds": line["seconds"], "committed": line["committed"],
            "wafers": line["totals"].get("wafers")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wafers", type=int, default=300, help="wafers (A files) in the day")
    ap.add_argument("--repeat", type=int, default=3, help="repetitions of each of (a), (b), (c)")
    ap.add_argument("--warmup", type=int, default=1, help="uncounted (a)/(b) pairs first")
    ap.add_argument("--storage", choices=("postgres", "sqlite"), default="postgres", help="Dagster's storage")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder")
    args = ap.parse_args()

    ensure_warm_numba()
    work = Path(tempfile.mkdtemp(prefix="failmap-run-start-"))
    with servers(work, postgres=args.storage == "postgres") as srv:
        fenv = s3_failmap_env(srv, FAILMAP_START_DATE="2026-01-01")
        counts = synth({**srv.env(), **fenv}, DAY, 1, args.wafers, seed=7)
        with deployment(work / "deploy", srv, fenv, storage=args.storage) as dep:
            ui, inproc = [], []
            # warm-up pairs (not counted): first reads of the code and the objects
            for i in range(args.warmup + args.repeat):
                srv.clear("out/")
                a = ui_run(dep, "run-start-benchmark")
                srv.clear("out/")
                b = in_process(dep)
                if not b["committed"]:
                    raise RuntimeError(f"run-day on a fresh output committed nothing: {b}")
                if i >= args.warmup:
                    ui.append(a)
                    inproc.append(b)
            wafers = inproc[-1]["wafers"]
            noop_ui, noop_inproc = [], []
            for _ in range(args.repeat):   # the day is committed (by the last in-process run)
                noop_ui.append(ui_run(dep, "noop-benchmark"))
                b = in_process(dep)
                if b["committed"]:
                    raise RuntimeError(f"a run of a committed day committed again: {b}")
                noop_inproc.append(b)

    def med(rows, key):
        return median([r[key] for r in rows])

    def each(rows, key):
        return " / ".join(f"{r[key]:.1f}" for r in rows)

    ratio = med(ui, "run") / med(inproc, "wall")
    print(f"\nrun start benchmark: one day, {wafers} wafers ({sum(counts.values())} objects), SeaweedFS, "
          f"{args.storage} storage, daemon + code server + webserver, shipped run queue; "
          f"medians of {args.repeat} after {args.warmup} warm-up pair(s), (a)/(b) alternated, fresh output each time")
    print("| run | queued -> started s | run s (start -> end) | launch -> end s |")
    print("|---|---:|---:|---:|")
    print(f"| (a) UI launchRun, day run | {med(ui, 'queued'):.1f} ({each(ui, 'queued')}) | "
          f"{med(ui, 'run'):.1f} ({each(ui, 'run')}) | {med(ui, 'total'):.1f} |")
    print(f"| (b) `failmap run-day`, day run | - | {med(inproc, 'wall'):.1f} ({each(inproc, 'wall')}) wall; "
          f"{med(inproc, 'seconds'):.1f} day runner | - |")
    print(f"| (c) UI launchRun, no-op | {med(noop_ui, 'queued'):.1f} ({each(noop_ui, 'queued')}) | "
          f"{med(noop_ui, 'run'):.1f} ({each(noop_ui, 'run')}) | {med(noop_ui, 'total'):.1f} |")
    print(f"| (c) `failmap run-day`, no-op | - | {med(noop_inproc, 'wall'):.1f} ({each(noop_inproc, 'wall')}) "
          f"wall; {med(noop_inproc, 'seconds'):.2f} day runner | - |")
    print(f"  UI / in process (run start -> end / run-day wall) = {ratio:.2f}   goal <= 1.25: "
          f"{'met' if ratio <= 1.25 else 'NOT met'}")
    print(f"  UI launch -> end / run-day wall = {med(ui, 'total') / med(inproc, 'wall'):.2f}; "
          f"UI run / the day runner's own seconds = {med(ui, 'run') / med(inproc, 'seconds'):.2f}")
    noop = med(noop_ui, "run")
    print(f"  no-op run via the UI: run {noop:.1f} s, launch -> end {med(noop_ui, 'total'):.1f} s; "
          f"in process {med(noop_inproc, 'wall'):.1f} s   goal <= 5 s: {'met' if noop <= 5 else 'NOT met'}")
    cleanup(work, args.keep)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
