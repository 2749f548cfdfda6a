"""benchmarks/run_start.py still runs end to end (tiny sizes; figures not checked); a
file of its own, like test_latency.py."""

from __future__ import annotations

import pytest

from tests.support.benchmark_scripts import run_benchmark


@pytest.mark.slow
@pytest.mark.deploy_bench   # ~1 min: not in `make test` (CI's 15 minutes), in `make test-all`
def test_run_start_benchmark_runs() -> None:
    out = run_benchmark("benchmarks/run_start.py", "--wafers", "4", "--repeat", "1", "--warmup", "0")
    assert "UI / in process" in out and "(c) UI launchRun, no-op" in out and "no-op run via the UI" in out
