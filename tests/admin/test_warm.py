"""`failmap warm` in one process, a representative day in another with the same
NUMBA_CACHE_DIR: the day compiles nothing (Numba's "numba:compile" event never fires)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from failmap_assets.admin.kernels import cached_kernels
from tests.support.numba_cache import BIN, clean_env
from tests.support.testdata import REPO

pytestmark = pytest.mark.slow


def test_warm_compiles_every_kernel_into_the_cache_dir(warm_numba_cache):
    out = warm_numba_cache.output
    done, total = map(int, re.search(r"(\d+) of (\d+) kernels compiled", out).groups())
    assert done == total == len(cached_kernels()) > 40, out
    # one index per kernel, under the directory given (never beside the sources)
    assert len(list(warm_numba_cache.path.rglob("*.nbi"))) == total
    print(f"failmap warm: {warm_numba_cache.seconds:.1f} s")


def test_a_day_of_both_pipelines_after_warm_compiles_nothing(warm_numba_cache, tmp_path):
    fab = tmp_path / "fab"
    env = clean_env(FAILMAP_HOME=str(fab), NUMBA_CACHE_DIR=str(warm_numba_cache.path))
    # another day, seed and size than warm's own: the same signatures all the same
    synth = subprocess.run([str(BIN / "failmap"), "synth", "--days", "1", "--wafers", "40", "--stdf-files", "2",
                            "--start", "2026-02-03", "--seed", "23"], env=env, capture_output=True, text=True,
                           timeout=300)
    assert synth.returncode == 0, synth.stderr[-2000:]
    report = tmp_path / "compiles.json"
    day = subprocess.run([sys.executable, "-m", "tests.support.count_compiles", str(report), "run-day", "2026-02-03",
                          "--pipeline", "both", "--as-of", "2026-02-04 12:00:00"],
                         env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert day.returncode == 0, day.stderr[-3000:]
    lines = [json.loads(line) for line in day.stdout.splitlines() if line.startswith("{")]
    assert {r["pipeline"] for r in lines} == {"failmap", "stdf"}
    assert all(r["committed"] and r["processed"] > 0 for r in lines), lines
    assert json.loads(report.read_text())["compiled"] == {}


def test_warm_refuses_a_cache_dir_it_cannot_use(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    done = subprocess.run([str(BIN / "failmap"), "warm", "--cache-dir", str(blocker / "cache")], env=clean_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "Numba ignores a cache directory it cannot write to" in done.stderr


def test_warm_again_on_a_warm_cache_passes(warm_numba_cache, tmp_path):
    """A second `failmap warm` loads every kernel from the cache: the helpers that only
    other kernels call then get no signature of their own, and still count as warm.
    (A copy of the session's cache: the others read that one meanwhile.)"""
    import shutil

    cache = tmp_path / "cache"
    shutil.copytree(warm_numba_cache.path, cache)
    done = subprocess.run([str(BIN / "failmap"), "warm", "--cache-dir", str(cache)], env=clean_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    kernels, total = map(int, re.search(r"(\d+) of (\d+) kernels compiled", done.stdout).groups())
    assert kernels == total == len(cached_kernels())
