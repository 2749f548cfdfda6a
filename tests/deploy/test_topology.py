"""The deployment a fab runs, as separate processes on this machine: PostgreSQL (Dagster's
storage, deploy/dagster-postgres.yaml with DAGSTER_PG_* from the environment), SeaweedFS
(the buckets), the user-code gRPC server `dagster api grpc -m failmap_assets.definitions`,
`dagster-daemon run` and `dagster-webserver`, the last two on a workspace that points at
the gRPC server, every process with a Numba cache warmed by `failmap warm`.

1. `failmap doctor` passes with this environment (PostgreSQL reached) and fails, without
   printing it, with a wrong PostgreSQL password.
2. The sensors are turned on through the webserver's GraphQL API (startSensor, selector
   from the repositories query); synthetic files for two days land in SeaweedFS; both
   days of both pipelines get committed by sensor runs.
3. The sensors are turned off (stopSensor), files for three more days land, and a
   backfill of all five days of both jobs is launched through GraphQL
   (launchPartitionBackfill). The queue of deploy/dagster-postgres.yaml is used as
   shipped, except that a backfill may take both run slots (its `dagster/backfill` limit
   raised from 1 to 2) and the queue is looked at every second, so fail-map days run two
   at a time: checked from the runs' start and end times.
4. Nothing is duplicated or lost: every run succeeded and carries `failmap/day` (its
   partition); each day of each pipeline equals, table by table and file by file, a
   clean `failmap run-day` of the same objects into another output prefix; the day's
   folders hold exactly what its commit names; no die appears twice.

Every process is stopped by the PID the test started (run workers, children of the
gRPC server, included) in teardown.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import date, timedelta

import pytest

from failmap_assets.defs.run_coordinator import DAY_TAG
from failmap_assets.storage.day_manifest import committed_files, read_manifest
from failmap_assets.storage.locations import open_store
from tests.support.day_view import assert_clean, day_view, diff, read_files
from tests.support.deployment import Deployment, running_deployment
from tests.support.numba_cache import BIN, clean_env
from tests.support.postgres_server import postgres  # noqa: F401

pytestmark = [pytest.mark.slow, pytest.mark.s3]

FIRST = date(2026, 3, 2)
DAYS = [FIRST + timedelta(days=i) for i in range(5)]   # sensors: the first two; backfill: all five
PIPELINES = ("failmap", "stdf")
JOBS = ("failmap_day_job", "stdf_day_job")


@pytest.fixture
def deployment(tmp_path, s3_server, s3_env, postgres, warm_numba_cache, monkeypatch) -> Iterator[Deployment]:  # noqa: F811
    """deploy/dagster-postgres.yaml, with a backfill allowed both run slots, and queued
    runs dequeued every second (5 s by default) so that two of them start together."""
    bucket = s3_env.removeprefix("s3://")   # a fresh bucket; this process has the credentials too
    env = clean_env(
        **postgres.env(), NUMBA_CACHE_DIR=str(warm_numba_cache.path),
        AWS_ACCESS_KEY_ID=s3_server.access_key, AWS_SECRET_ACCESS_KEY=s3_server.secret_key,
        AWS_REGION=s3_server.region, AWS_CONFIG_FILE=str(tmp_path / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-aws-credentials"),
        FAILMAP_S3_ENDPOINT_URL=s3_server.endpoint_url,
        FAILMAP_SOURCE_A=f"s3://{bucket}/a/", FAILMAP_SOURCE_B=f"s3://{bucket}/b/",
        FAILMAP_SOURCE_STDF=f"s3://{bucket}/stdf/", FAILMAP_OUTPUT=f"s3://{bucket}/out/",
        FAILMAP_START_DATE="2026-01-01", FAILMAP_TIMEZONE="UTC", FAILMAP_SENSOR_INTERVAL_SECONDS="5",
        FAILMAP_MAX_WORKERS="4",
        # The test's days lie months back: the sensors would list such a day once and
        # close it (late files are the reconcile sweep's, hourly); keep them open.
        FAILMAP_SENSOR_LOOKBACK_DAYS="400",
    )
    # This process reads the same instance (runs, tags, times): the Postgres config loads here too.
    for k, v in postgres.env().items():
        monkeypatch.setenv(k, v)
    with running_deployment(tmp_path / "deployment", env, storage="postgres", backfill_limit=2,
                            dequeue_interval=1) as dep:
        yield dep


def _store(dep: Deployment, prefix: str):
    bucket = dep.env["FAILMAP_OUTPUT"].removeprefix("s3://").split("/")[0]
    return open_store(f"s3://{bucket}/{prefix}/", endpoint_url=dep.env["FAILMAP_S3_ENDPOINT_URL"],
                      region=dep.env["AWS_REGION"])


# ---------------------------------------------------------------------------- helpers

def _synth(dep: Deployment, first: date, days: int, seed: int, wafers: int) -> None:
    done = subprocess.run([str(BIN / "failmap"), "synth", "--days", str(days), "--wafers", str(wafers), "--stdf-files", "1",
                           "--start", first.isoformat(), "--seed", str(seed)],
                          env=dep.env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def _runs(instance) -> list:
    return instance.get_run_records()


def _settled(instance) -> bool:
    from dagster import DagsterRunStatus

    busy = {DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
            DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING}
    return not any(r.dagster_run.status in busy for r in _runs(instance))


def _failures(instance) -> str:
    from dagster import DagsterEventType

    out = []
    for r in _runs(instance):
        if r.dagster_run.status.value != "SUCCESS":
            errors = [e.message or "" for e in instance.all_logs(r.dagster_run.run_id)
                      if e.dagster_event and e.dagster_event.event_type in (DagsterEventType.STEP_FAILURE,
                                                                             DagsterEventType.RUN_FAILURE)]
            out.append(f"{r.dagster_run.job_name} {r.dagster_run.tags.get('dagster/partition')} "
                       f"{r.dagster_run.status.value}: {' | '.join(errors)[:1500]}")
    return "\n".join(out)


def _backfill_runs(instance) -> list:
    return [r for r in _runs(instance) if r.dagster_run.tags.get("dagster/backfill")]


def _committed(out, days, pipelines=PIPELINES) -> bool:
    return all(read_manifest(out, p, d)[0] is not None for d in days for p in pipelines)


# ---------------------------------------------------------------------------- the test

def test_sensors_then_a_parallel_backfill_on_postgres_and_seaweedfs(deployment, postgres):  # noqa: F811
    from dagster import DagsterInstance

    dep = deployment
    t0 = time.monotonic()

    # 1. the health check, as the image runs it
    doctor = subprocess.run([str(BIN / "failmap"), "doctor", "--expect-start", "2026-01-01", "--expect-timezone",
                             "UTC"], env=dep.env, capture_output=True, text=True, timeout=120)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "PostgreSQL 16" in doctor.stdout or "PostgreSQL" in doctor.stdout
    wrong = "wrong-" + uuid.uuid4().hex
    doctor = subprocess.run([str(BIN / "failmap"), "doctor"], env={**dep.env, "DAGSTER_PG_PASSWORD": wrong},
                            capture_output=True, text=True, timeout=120)
    assert doctor.returncode == 1
    assert "FAIL  PostgreSQL" in doctor.stdout and "password authentication failed" in doctor.stdout
    assert wrong not in doctor.stdout + doctor.stderr and postgres.password not in doctor.stdout + doctor.stderr

    out = _store(dep, "out")
    with DagsterInstance.from_config(str(dep.home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"

        # 2. sensors on, two days land, both get committed by sensor runs
        dep.set_sensors(on=True)
        _synth(dep, DAYS[0], 2, seed=5, wafers=8)
        dep.wait(f"sensor runs committing {DAYS[0]} and {DAYS[1]}",
              lambda: _committed(out, DAYS[:2]) and _settled(instance), 240)
        sensor_runs = _runs(instance)
        assert sensor_runs and all(r.dagster_run.tags.get("failmap/trigger") for r in sensor_runs)
        t_sensors = time.monotonic() - t0

        # 3. sensors off, three more days land, a backfill of all five days of both jobs
        dep.set_sensors(on=False)
        time.sleep(1)  # a tick already under way when the sensor was stopped finishes
        dep.wait("the sensors' last runs", lambda: _settled(instance), 120)
        # days big enough (a few seconds of work each) for two runs to be seen overlapping
        _synth(dep, DAYS[2], 3, seed=6, wafers=60)
        for job in JOBS:
            # the new days first: two of them at the head of the queue start together
            dep.launch_backfill(job, [d.isoformat() for d in DAYS[2:] + DAYS[:2]])
        dep.wait("the backfill runs", lambda: len(_backfill_runs(instance)) == 2 * len(DAYS)
              and _settled(instance), 360)
        t_backfill = time.monotonic() - t0 - t_sensors

        # 4. every run succeeded and names its day; backfill days of fail maps overlapped
        runs = _runs(instance)
        assert all(r.dagster_run.status.value == "SUCCESS" for r in runs), _failures(instance)
        for r in runs:
            assert r.dagster_run.tags.get(DAY_TAG) == r.dagster_run.tags["dagster/partition"], r.dagster_run.tags
        backfill = _backfill_runs(instance)
        assert sorted((r.dagster_run.job_name, r.dagster_run.tags[DAY_TAG]) for r in backfill) == sorted(
            (job, d.isoformat()) for job in JOBS for d in DAYS)
        failmap_runs = [r for r in backfill if r.dagster_run.job_name == "failmap_day_job"]
        overlaps = [(a.dagster_run.tags[DAY_TAG], b.dagster_run.tags[DAY_TAG]) for a in failmap_runs
                    for b in failmap_runs if a.dagster_run.run_id < b.dagster_run.run_id
                    and max(a.start_time, b.start_time) < min(a.end_time, b.end_time)]
        assert overlaps, [(r.dagster_run.tags[DAY_TAG], r.start_time, r.end_time) for r in failmap_runs]

    # 5. each day equals a clean run-day of the same objects into another prefix
    # (`failmap run-day DAY` for each day, in one process: the same command, one start-up)
    clean_env_ = {**dep.env, "FAILMAP_OUTPUT": dep.env["FAILMAP_OUTPUT"].replace("/out/", "/clean/")}
    script = ("import sys; from failmap_assets.cli import main\n"
              "for day in sys.argv[1:]:\n    assert main(['run-day', day]) == 0, day\n")
    done = subprocess.run([str(BIN / "python"), "-c", script, *(d.isoformat() for d in DAYS)], env=clean_env_,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    clean = _store(dep, "clean")
    for d in DAYS:
        for pipeline in PIPELINES:
            ours, reference = day_view(out, pipeline, d), day_view(clean, pipeline, d)
            assert ours == reference, f"{pipeline} {d}: " + "; ".join(diff(ours, reference))
            assert_clean(out, pipeline, d)
        dies = read_files(out, committed_files(out, "failmap", d, "failmap_dies"))
        assert dies is not None and dies.height > 0
        assert dies.select("wafer_token", "a_key", "x", "y").is_unique().all(), f"{d}: a die appears twice"
    print(f"topology: sensors {t_sensors:.0f} s, backfill {t_backfill:.0f} s, total {time.monotonic() - t0:.0f} s; "
          f"{len(runs)} runs, fail-map backfill days overlapping: {sorted(set(overlaps))}")
