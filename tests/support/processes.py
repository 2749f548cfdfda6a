"""Servers and daemons the tests start: stopped by the PID we started (SIGTERM, then
SIGKILL), never by name; S3 servers are ready once a signed request succeeds."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import boto3
from botocore.config import Config

STOP_GRACE_S = 5.0
READY_TIMEOUT_S = 30.0


# Run by a fresh interpreter between our fork and the server's exec: drop to uid:gid when
# asked, have the kernel SIGKILL this process when the thread that started it dies (so a
# crashed pytest never leaves a server behind), then become the server.
_LAUNCHER = (
    "import ctypes, os, signal, sys, warnings\n"   # execvp imports warnings: unreadable after the drop
    "a = sys.argv[1:]\n"
    "if a[0].startswith('--as='):\n"
    "    uid, gid = map(int, a.pop(0)[5:].split(':'))\n"
    "    os.setgroups([]); os.setgid(gid); os.setuid(uid)\n"
    "ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)\n"   # PR_SET_PDEATHSIG
    "os.execvp(a[0], a)\n"
)


def dying_with_parent(args: list, as_user: tuple[int, int] | None = None) -> list[str]:
    """``args`` behind a launcher that ties the server's life to the test process's thread
    (``PR_SET_PDEATHSIG``) and, with ``as_user`` (uid, gid), drops root first.

    Not a ``preexec_fn`` (nor Popen's ``user=``): both make Python ``fork()`` instead of
    ``vfork()``, and once this process has used a gRPC channel (a deployment's ping, any
    Dagster gRPC client), grpcio >= 1.80's fork handlers crash the child with ``epoll_wait``
    EBADF before it can exec (grpc/grpc#43055): a CI run saw "daemon exited (-6)"."""
    prefix = [f"--as={as_user[0]}:{as_user[1]}"] if as_user else []
    return [sys.executable, "-S", "-c", _LAUNCHER, *prefix, *(str(a) for a in args)]


def stop_process(proc: subprocess.Popen, grace_s: float = STOP_GRACE_S) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def wait_s3_ready(proc: subprocess.Popen, server, name: str) -> str | None:
    """None once a signed ListBuckets succeeds, else why not (the process died or time ran out)."""
    probe = boto3.session.Session().client(
        "s3", endpoint_url=server.endpoint_url, region_name=server.region,
        aws_access_key_id=server.access_key, aws_secret_access_key=server.secret_key,
        config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1},
                      connect_timeout=1, read_timeout=2))
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return f"{name} exited with code {proc.returncode}"
        try:
            probe.list_buckets()
            return None
        except Exception:  # not listening yet, or identities not loaded yet
            time.sleep(0.1)
    return f"{name} did not answer S3 requests within {READY_TIMEOUT_S:.0f} s"


def stop_deployment(procs: dict[str, subprocess.Popen]) -> None:
    """Stop a deployment's Dagster processes by PID: the webserver, the daemon and the
    code server, then the run workers the code server started (its children, found
    before it stops, since they outlive it)."""
    import psutil

    children = []
    grpc = procs.get("grpc")
    if grpc is not None and grpc.poll() is None:
        try:
            children = psutil.Process(grpc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            pass
    for name in ("webserver", "daemon", "grpc"):
        if name in procs:
            stop_process(procs[name])
    for child in children:
        try:
            child.terminate()
            child.wait(5)
        except psutil.NoSuchProcess:
            pass
        except psutil.TimeoutExpired:
            child.kill()
