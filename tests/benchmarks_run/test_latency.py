"""benchmarks/latency.py still runs end to end (tiny sizes; figures not checked). A file
of its own so that pytest-xdist can run it beside the other deployment benchmarks:
each starts PostgreSQL, SeaweedFS, the code server, the daemon and the webserver
(benchmarks/deployment.py), and most of its time is that start-up."""

from __future__ import annotations

import pytest

from tests.support.benchmark_scripts import run_benchmark


@pytest.mark.slow
@pytest.mark.deploy_bench   # ~1 min: not in `make test` (CI's 15 minutes), in `make test-all`
def test_latency_benchmark_runs() -> None:
    out = run_benchmark("benchmarks/latency.py", "--minutes", "0.1", "--rate", "1", "--interval", "3",
                        "--drain-minutes", "2")
    assert "latency landing -> visible" in out and "goal p95 <= 60 s" in out and "runs launched by sensors" in out
