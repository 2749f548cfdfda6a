"""A Dagster deployment as real processes on 127.0.0.1: the user-code gRPC server
`dagster api grpc -m failmap_assets.definitions`, `dagster-daemon run` and
`dagster-webserver` (the last two on a workspace that points at the gRPC server), one
DAGSTER_HOME with the shipped instance file (deploy/dagster-postgres.yaml or
deploy/dagster.yaml, run queue adjustable). Every process is stopped by the PID we
started (SIGTERM, then SIGKILL; run workers, children of the code server, too).

The one harness for tests/deploy/test_topology.py and the deployment benchmarks
(benchmarks/deployment.py: latency, run_start, backfill_scaling). The servers it talks
to (PostgreSQL, SeaweedFS) are the caller's: their settings come in `env`.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tests.support.processes import stop_deployment
from tests.support.processes import dying_with_parent
from tests.support.s3_server import _free_ports, _log_tail

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
LOCATION = "failmap_assets"
SENSORS = ("bucket_a_sensor", "bucket_b_sensor", "stdf_sensor", "reconcile_sensor")
START_TIMEOUT_S = 180.0


def instance_yaml(storage: str, *, max_concurrent_runs: int | None = None, backfill_limit: int | None = None,
                  dequeue_interval: int | None = None) -> dict:
    """The shipped instance (deploy/dagster-postgres.yaml, or deploy/dagster.yaml for
    SQLite), with the run queue changed when asked: `max_concurrent_runs` (the fail-map
    pipeline's tag limit raised with it), a backfill's tag limit, the dequeue interval."""
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


class DeploymentError(RuntimeError):
    """A process of the deployment died, or did not answer in time (its logs' tails attached)."""


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
        return "\n".join(f"--- {name}:\n{_log_tail(path, 25)}" for name, path in self.logs.items())

    def start(self, name: str, args: list[str]) -> None:
        log = self.dir / f"{name}.log"
        self.logs[name] = log
        with open(log, "wb") as out:
            self.procs[name] = subprocess.Popen(dying_with_parent(args), env=self.env, cwd=self.dir,
                                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)

    def wait(self, what: str, ready: Callable[[], bool], timeout: float, poll: float = 0.5) -> None:
        """Until `ready()` is true; fails early when one of the processes has exited."""
        deadline = time.monotonic() + timeout
        last_error = None
        while True:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise DeploymentError(f"{name} exited ({proc.returncode}) waiting for {what}\n{self.tails()}")
            try:
                if ready():
                    return
            except Exception as exc:  # noqa: BLE001 - not up yet
                last_error = exc
            if time.monotonic() > deadline:
                raise DeploymentError(f"{what}: not within {timeout:.0f} s (last error: {last_error!r})\n"
                                      f"{self.tails()}")
            time.sleep(poll)

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        req = urllib.request.Request(self.graphql_url, body, {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:
                answer = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise DeploymentError(f"GraphQL {exc.code}: {exc.read()[:2000]!r}") from None
        if "errors" in answer:
            raise DeploymentError(f"GraphQL errors: {answer['errors']}")
        return answer["data"]

    @property
    def instance(self):
        """The deployment's instance, read from this process."""
        if self._instance is None:
            from dagster import DagsterInstance

            for k, v in self.env.items():   # the Postgres config reads DAGSTER_PG_* from this process's env
                if k.startswith("DAGSTER_PG_"):
                    os.environ[k] = v
            self._instance = DagsterInstance.from_config(str(self.home))
        return self._instance

    def repository(self) -> dict:
        data = self.graphql(REPOSITORIES)["repositoriesOrError"]
        if data["__typename"] != "RepositoryConnection":
            raise DeploymentError(f"repositories: {data}")
        [repo] = [r for r in data["nodes"] if r["location"]["name"] == LOCATION]
        return repo

    def set_sensors(self, on: bool, names: tuple[str, ...] = SENSORS) -> None:
        """startSensor / stopSensor through GraphQL, as the UI's toggle does."""
        repo = self.repository()
        for name in names:
            selector = {"repositoryName": repo["name"], "repositoryLocationName": LOCATION, "sensorName": name}
            if on:
                result = self.graphql(START_SENSOR, {"selector": selector})["startSensor"]
                ok = result.get("__typename") == "Sensor" and result["sensorState"]["status"] == "RUNNING"
            else:
                sensor = self.graphql(SENSOR_STATE, {"selector": selector})["sensorOrError"]
                result = self.graphql(STOP_SENSOR, {"id": sensor["id"]})["stopSensor"]
                ok = result.get("instigationState", {}).get("status") == "STOPPED"
            if not ok:
                raise DeploymentError(f"{'start' if on else 'stop'}Sensor {name}: {result}")

    def launch_run(self, job: str, day: str, tags: dict[str, str] | None = None) -> str:
        """launchRun of a day job for one partition, as the UI's Launchpad does."""
        repo = self.repository()
        params = {"selector": {"repositoryLocationName": LOCATION, "repositoryName": repo["name"], "jobName": job},
                  "runConfigData": {}, "mode": "default",
                  "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in
                                                 {"dagster/partition": day, **(tags or {})}.items()]}}
        result = self.graphql(LAUNCH_RUN, {"params": params})["launchRun"]
        if result["__typename"] != "LaunchRunSuccess":
            raise DeploymentError(f"launchRun: {result}")
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
            raise DeploymentError(f"launchPartitionBackfill: {result}")
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
        if self._instance is not None:
            with contextlib.suppress(Exception):
                self._instance.dispose()
        stop_deployment(self.procs)


@contextlib.contextmanager
def running_deployment(work: Path, env: dict[str, str], *, storage: str = "postgres", webserver: bool = True,
                       **queue) -> Iterator[Deployment]:
    """An instance in `work`/dagster-home (PostgreSQL from the DAGSTER_PG_* of `env`, or
    SQLite) with the code server, the daemon and (unless `webserver=False`) the webserver
    started and answering; `queue` changes the shipped run queue (see instance_yaml)."""
    work.mkdir(parents=True, exist_ok=True)
    home = work / "dagster-home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(instance_yaml(storage, **queue)))
    grpc_port, web_port = _free_ports(2)
    workspace = work / "workspace.yaml"
    workspace.write_text(yaml.safe_dump({"load_from": [{"grpc_server": {
        "host": "127.0.0.1", "port": grpc_port, "location_name": LOCATION}}]}))
    dep = Deployment(work, {**env, "DAGSTER_HOME": str(home)}, home, f"http://127.0.0.1:{web_port}/graphql")
    try:
        if storage != "postgres":  # create the SQLite storage once, before several processes race to
            subprocess.run([sys.executable, "-c", "from dagster import DagsterInstance; "
                            "DagsterInstance.get().dispose()"], env=dep.env, cwd=work, check=True)
        dep.start("grpc", [str(BIN / "dagster"), "api", "grpc", "-m", "failmap_assets.definitions",
                           "-h", "127.0.0.1", "-p", str(grpc_port)])
        from dagster._grpc.client import DagsterGrpcClient

        dep.wait("the gRPC code server", lambda: DagsterGrpcClient(port=grpc_port, host="127.0.0.1").ping("x"),
                 START_TIMEOUT_S)
        dep.start("daemon", [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)])
        if webserver:
            dep.start("webserver", [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(web_port),
                                    "-w", str(workspace)])
            dep.wait("the webserver", lambda: urllib.request.urlopen(
                f"http://127.0.0.1:{web_port}/server_info", timeout=5).status == 200, START_TIMEOUT_S)
            dep.wait("the code location in the webserver", lambda: dep.repository()["partitionSets"],
                     START_TIMEOUT_S)
        yield dep
    finally:
        dep.stop()


REPOSITORIES = """{ repositoriesOrError { __typename ... on RepositoryConnection { nodes {
    name location { name } sensors { name } partitionSets { name pipelineName } } }
    ... on PythonError { message } } }"""

START_SENSOR = """mutation($selector: SensorSelector!) { startSensor(sensorSelector: $selector) {
    __typename ... on Sensor { name sensorState { status } } ... on PythonError { message } } }"""

STOP_SENSOR = """mutation($id: String!) { stopSensor(id: $id) {
    __typename ... on StopSensorMutationResult { instigationState { status } } ... on PythonError { message } } }"""

SENSOR_STATE = """query($selector: SensorSelector!) { sensorOrError(sensorSelector: $selector) {
    __typename ... on Sensor { id sensorState { status } } } }"""

LAUNCH_RUN = """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {
    __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }
    ... on InvalidSubsetError { message } ... on RunConfigValidationInvalid { errors { message } } } }"""

BACKFILL = """mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
    __typename ... on LaunchBackfillSuccess { backfillId launchedRunIds } ... on PythonError { message }
    ... on PartitionSetNotFoundError { message } ... on InvalidSubsetError { message } } }"""
