"""The order in which `make test` hands test files to its workers: the long ones first.

`--dist loadfile` keeps a file on one worker and hands files out in a queue, each to
the first worker that runs low. pytest-xdist orders that queue by the number of tests in
a file, so a file of one long test (the deployment topology, ~3 min) came last and ran
alone at the end while the other worker sat idle. Here the queue is the collection order
(`--no-loadscope-reorder`, set below), and that order starts with the file that warms
the session's Numba cache (FIRST), then the long files, longest first (LONGEST,
measured), then the other files holding `slow` tests, then every other file by its
number of tests, as pytest-xdist would have ordered them.
Only the order changes: every test runs, each file still on one worker, in its own order.
"""

from __future__ import annotations

import os

import pytest

#: Before all: the cheap file whose first test waits for the session's `failmap warm`
#: (~1 min of compiling), so that the warm is done when the topology test starts: its
#: fixtures need it, and pytest-timeout counts a test's fixtures in its 600 s.
FIRST = ("tests/admin/test_warm.py",)

#: The files that take minutes, with their seconds in one `make test` on 2 busy cores
#: (per-file sums of `--durations=0`, load average ~8; only the order matters): they go
#: first, longest first, so that no long file starts late and ends the run alone.
LONGEST = {
    "tests/pipeline/test_failure_injection.py": 427,
    "tests/convergence/test_day_converges.py": 421,
    "tests/deploy/test_topology.py": 352,
    "tests/stdf/test_pystdf_equality.py": 157,
    "tests/admin/test_doctor.py": 133,            # mostly the session's `failmap warm`
    "tests/patterns/test_training.py": 126,
    "tests/benchmarks_run/test_backfill_scaling.py": 124,
    "tests/defs/test_failmap_assets.py": 115,
    "tests/sensors/test_sensors.py": 100,
    "tests/stdf/test_kernels.py": 95,
    "tests/benchmarks_run/test_run_start.py": 94,
    "tests/test_benchmarks_run.py": 78,
    "tests/defs/test_backfill_cli.py": 77,
    "tests/benchmarks_run/test_latency.py": 71,
    "tests/defs/test_pattern_assets.py": 100,     # stop 22's CI: 39 s + a pool-slot wait of 61 s
}


def pytest_configure(config: pytest.Config) -> None:
    # Read by pytest-xdist's controller when it builds the queue of files.
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


def _file(item: pytest.Item) -> str:
    return item.nodeid.split("::", 1)[0]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return   # one process: the order does not matter, keep pytest's
    by_file: dict[str, list[pytest.Item]] = {}
    for item in items:
        by_file.setdefault(_file(item), []).append(item)
    slow = {f for f, its in by_file.items() if any(i.get_closest_marker("slow") for i in its)}

    def rank(entry: tuple[int, str]) -> tuple:
        position, f = entry
        if f in FIRST:
            return (0, FIRST.index(f), 0)
        if f in LONGEST:
            return (1, -LONGEST[f], 0)
        if f in slow:
            return (2, position, 0)
        return (3, -len(by_file[f]), position)

    order = sorted(enumerate(by_file), key=rank)
    items[:] = [item for _, f in order for item in by_file[f]]
