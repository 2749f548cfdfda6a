"""The benchmark scripts still run end to end (tiny sizes; the figures are not checked:
timings live in BENCHMARKS.md, never in assertions)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(*args: str) -> str:
    done = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done.stdout


@pytest.mark.s3
def test_failmap_day_benchmark_runs() -> None:
    out = _run("benchmarks/failmap_day.py", "--wafers", "4", "--workers", "4")
    assert "a/b =" in out and "a/c =" in out and "peak RSS of (a)" in out
    assert "CPU bound" in out and "(b')" in out


@pytest.mark.s3
def test_s3_clients_benchmark_runs() -> None:
    out = _run("benchmarks/s3_clients.py", "--objects", "20", "--workers", "4")
    assert "boto3 put_object" in out and "obstore (S3ObjectStore.get)" in out
