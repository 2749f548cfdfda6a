"""A Numba cache warmed by `failmap warm`, once per test session, for the tests that
need kernels loaded rather than compiled (warm, doctor, the deployment topology)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class WarmCache:
    path: Path
    output: str        # what `failmap warm` printed
    seconds: float


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any FAILMAP_*, AWS_*, NUMBA_*, DAGSTER_* setting of the
    developer's (the tests give each process exactly what it should see)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAILMAP_", "AWS_", "NUMBA_", "DAGSTER_"))}
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def warm_numba_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WarmCache]:
    """`failmap warm --cache-dir DIR` in its own process, NUMBA_CACHE_DIR unset: the
    command re-executes itself with the variable set.

    Once per test session, not once per pytest-xdist worker (warming takes ~40 s of
    CPU): the workers share the session's base folder, and the first one to take the
    lock warms while the others wait for it."""
    import fcntl
    import json
    import time

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    path, record = shared / "numba-cache", shared / "numba-cache.json"
    with open(shared / "numba-cache.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not record.exists():
            path.mkdir(exist_ok=True)
            t0 = time.monotonic()
            done = subprocess.run([str(BIN / "failmap"), "warm", "--cache-dir", str(path)], env=clean_env(),
                                  capture_output=True, text=True, timeout=300)
            seconds = time.monotonic() - t0
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
            record.write_text(json.dumps({"output": done.stdout + done.stderr, "seconds": seconds}))
        warmed = json.loads(record.read_text())
    yield WarmCache(path, warmed["output"], warmed["seconds"])
