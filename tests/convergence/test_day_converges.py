"""A day converges: whatever batches its objects came in, in whatever order, however
many runs of it ran side by side, were killed with SIGKILL or stalled past their lease,
the day after the last run equals one clean run over the final objects into an empty
output.

Each seed is one history (``tests/support/day_history.py``) delivered in random
batches, with ``failmap run-day`` in separate processes after each (see
``scenario.py``); a seed is the same scenario in every test here. The figures of
every seed are printed at the end of the session ("a day converges"). The default
suite runs the regression seeds (and a plain one) on local folders and on SeaweedFS;
the ``slow`` tests many more seeds, and one with the installed ``failmap`` command.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from failmap_assets.storage.locations import open_store
from tests.convergence.scenario import converge

#: seeds that caught a bug (with the fix reverted, under this generator); the deterministic
#: test of each bug is in test_regressions.py
REGRESSIONS = [
    ("local", 33),  # a run with nothing new left a killed run's old temp files (3 of 3 tries)
    ("s3", 4),      # an STDF file put back with the same bytes: stdf_objects kept the old time (also s3 7)
]
DEFAULT = [*REGRESSIONS, ("local", 1)]
SLOW = [*(("local", s) for s in range(100, 114)), *(("s3", s) for s in range(200, 206))]


def _setup(backend: str, tmp_path: Path, request) -> dict:
    if backend == "local":
        base = tmp_path / "buckets"
        locations = {k: str(base / k) for k in ("a", "b", "stdf", "out", "clean")}
        for path in locations.values():
            Path(path).mkdir(parents=True)
        return {"locations": locations, "local_out": base / "out"}
    bucket_url = request.getfixturevalue("s3_env")
    return {"locations": {k: f"{bucket_url}/{k}" for k in ("a", "b", "stdf", "out", "clean")}, "local_out": None}


def _converge(backend: str, seed: int, tmp_path: Path, request, figures: list, launcher: str = "fork") -> None:
    setup = _setup(backend, tmp_path, request)
    loc = setup["locations"]
    endpoint = os.environ.get("FAILMAP_S3_ENDPOINT_URL") or None
    stores = {k: open_store(v, endpoint_url=endpoint) for k, v in loc.items()}
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAILMAP_") or k == "FAILMAP_S3_ENDPOINT_URL"}
    env.update(FAILMAP_SOURCE_A=loc["a"], FAILMAP_SOURCE_B=loc["b"], FAILMAP_SOURCE_STDF=loc["stdf"],
               FAILMAP_OUTPUT=loc["out"], FAILMAP_MAX_WORKERS="4")
    fig = converge(seed, backend=backend, sources={k: stores[k] for k in ("a", "b", "stdf")}, out=stores["out"],
                   clean=stores["clean"], env=env, clean_location=loc["clean"], logs=tmp_path / "logs",
                   launcher=launcher, local_out=setup["local_out"])
    figures.append(fig)


def _params(cases):
    return [pytest.param(b, s, id=f"{b}-{s}", marks=[pytest.mark.s3] if b == "s3" else []) for b, s in cases]


@pytest.mark.parametrize(("backend", "seed"), _params(DEFAULT))
def test_a_day_converges(backend, seed, tmp_path, request, convergence_figures):
    _converge(backend, seed, tmp_path, request, convergence_figures)


@pytest.mark.slow
@pytest.mark.parametrize(("backend", "seed"), _params(SLOW))
def test_many_days_converge(backend, seed, tmp_path, request, convergence_figures):
    _converge(backend, seed, tmp_path, request, convergence_figures)


@pytest.mark.slow
def test_a_day_converges_with_the_installed_command(tmp_path, request, convergence_figures):
    """The same property with the ``failmap`` console script itself in every process
    (about 3 s of imports per run)."""
    _converge("local", 7, tmp_path, request, convergence_figures, launcher="exec")


def _seeds_from_environment() -> list[tuple[str, int]]:
    """``CONVERGENCE_SEEDS=local:300-349,s3:400-409`` runs those seeds too (bug hunting)."""
    out = []
    for part in filter(None, os.environ.get("CONVERGENCE_SEEDS", "").split(",")):
        backend, _, span = part.partition(":")
        lo, _, hi = span.partition("-")
        out += [(backend, s) for s in range(int(lo), int(hi or lo) + 1)]
    return out


@pytest.mark.parametrize(("backend", "seed"), _params(_seeds_from_environment()) or [pytest.param(
    "local", 0, marks=pytest.mark.skip(reason="set CONVERGENCE_SEEDS=local:300-349,s3:400-409 to run more seeds"))])
def test_seeds_from_environment(backend, seed, tmp_path, request, convergence_figures):
    _converge(backend, seed, tmp_path, request, convergence_figures)
