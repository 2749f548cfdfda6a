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


@pytest.mark.s3
def test_sensor_tick_benchmark_runs() -> None:
    out = _run("benchmarks/sensor_tick.py", "--local", "300", "--s3", "0", "--new", "10", "--repeat", "1")
    assert "our tick" in out and "| local | 300 |" in out


# The deployment benchmarks (latency, run_start, backfill_scaling) are in
# tests/benchmarks_run/, a file each: pytest-xdist can then run them side by side.


def test_postgres_sink_benchmark_runs() -> None:
    out = _run("benchmarks/postgres_sink.py", "--wafers", "20", "--repeat", "1")
    assert "(a) ours, run_sink_day: first load of the day" in out and "a' / b" in out and "(c) execute_values" in out
    assert "first load with the pattern tables" in out and "also wafer_signatures" in out


def test_patterns_eval_benchmark_runs(tmp_path) -> None:
    out = _run("benchmarks/patterns_eval.py", "--per-class", "2", "--dev", str(tmp_path / "absent.jsonl"))
    assert "true \\ label" in out and "patterns: accuracy_macro=" in out and "(b) skipped" in out


def test_patterns_knn_benchmark_runs(tmp_path) -> None:
    out = _run("benchmarks/patterns_knn.py", "--sizes", "4", "--held-per-class", "2",
               "--dev", str(tmp_path / "absent.jsonl"))
    assert "dev figures skipped" in out and "| 6 single models (mean) |" in out   # 6 seeds x 1 size
    assert "rule A: over 6 singles" in out and "bag seeds 1/4/5, rule A" in out


def test_patterns_benchmark_runs() -> None:
    out = _run("benchmarks/patterns.py", "--wafers", "12", "--index", "3000", "--queries", "3")
    assert "ours   wafer_signatures" in out and "peer   parse_failmap_a" in out
    assert "ratio  plain scan / ours" in out and "exact: 3/3" in out


def test_stdf_parse_benchmark_runs() -> None:
    out = _run("benchmarks/stdf_parse.py", "--files", "makechip_x,spreadsheet14,in_v3", "--mb", "0.3",
               "--rounds", "1", "--fixed-rounds", "1", "--both")
    assert "| makechip_x.stdf |" in out and "| spreadsheet14.stdf |" in out
    assert "| in_v3.std | excluded: stdf-convert cannot read it" in out
    assert "WORST ratio ours / stdf-convert" in out and "fixed cost per small file" in out
    assert "into a fresh output tree (its folders made too), CPU: ours" in out
    # --both: the peer also timed writing with pyarrow's defaults, a ratio column and a headline for it
    assert "stdf-convert, pyarrow defaults, MB/s" in out and "WORST ratio with the peer on pyarrow's default" in out


def test_stdf_ptr_benchmark_runs() -> None:
    out = _run("benchmarks/stdf_ptr.py", "--files", "sn269", "--mb", "0.3", "--rounds", "1")
    assert "ns/PTR" in out and "sn269_m40c.stdf" in out


def test_stdf_parse_benchmark_profile_runs() -> None:
    out = _run("benchmarks/stdf_parse.py", "--profile", "spreadsheet14", "--mb", "0.3", "--top", "5")
    assert "phase" in out and "parquet_ptr_results" in out and "cProfile" in out
