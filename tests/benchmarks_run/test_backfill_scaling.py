"""benchmarks/backfill_scaling.py still runs end to end (tiny sizes; figures not
checked); a file of its own, like test_latency.py."""

from __future__ import annotations

import pytest

from tests.support.benchmark_scripts import run_benchmark


@pytest.mark.slow
@pytest.mark.deploy_bench   # ~1-2 min: not in `make test` (CI's 15 minutes), in `make test-all`
def test_backfill_scaling_benchmark_runs() -> None:
    # the queue looked at every second (5 s as shipped): the same runs, less waiting
    out = run_benchmark("benchmarks/backfill_scaling.py", "--days", "2", "--wafers", "4", "--settings", "1,2",
                        "--dequeue-interval", "1")
    assert "| 1 | 1 |" in out and "speed-up vs 1" in out and "wafers per core-day" in out
