"""A day converges: whatever batches its objects came in, in whatever order, however
many runs of it ran side by side or were killed with SIGKILL, the day after the last
run equals one clean run over the final objects into an empty output.

Each seed is one history (``tests/support/day_history.py``) delivered in random
batches, with ``failmap run-day`` in separate processes after each (see
``scenario.py``); the figures of every seed are printed at the end of the session.
The default suite runs a few seeds on local folders and on SeaweedFS; the ``slow``
ones many more.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from failmap_assets.storage.locations import open_store
from tests.convergence.scenario import converge

#: seeds that once found a bug (kept as regression cases; see the commit log)
REGRESSIONS: list[int] = []
DEFAULT_LOCAL = [1, 2, *REGRESSIONS]
DEFAULT_S3 = [3]
SLOW_LOCAL = list(range(100, 124))
SLOW_S3 = list(range(200, 208))


def _local(tmp_path: Path) -> dict:
    base = tmp_path / "buckets"
    locations = {k: str(base / k) for k in ("a", "b", "stdf", "out", "clean")}
    for path in locations.values():
        Path(path).mkdir(parents=True)
    return {"locations": locations, "local_out": base / "out"}


def _s3(bucket_url: str) -> dict:
    return {"locations": {k: f"{bucket_url}/{k}" for k in ("a", "b", "stdf", "out", "clean")}, "local_out": None}


def _converge(seed: int, backend: str, setup: dict, tmp_path: Path, figures: list, launcher: str = "fork",
              batches: tuple[int, int] = (3, 6), pauses: bool = False) -> None:
    loc = setup["locations"]
    endpoint = os.environ.get("FAILMAP_S3_ENDPOINT_URL") or None
    stores = {k: open_store(v, endpoint_url=endpoint) for k, v in loc.items()}
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAILMAP_") or k == "FAILMAP_S3_ENDPOINT_URL"}
    env.update(FAILMAP_SOURCE_A=loc["a"], FAILMAP_SOURCE_B=loc["b"], FAILMAP_SOURCE_STDF=loc["stdf"],
               FAILMAP_OUTPUT=loc["out"], FAILMAP_MAX_WORKERS="4")
    fig = converge(seed, backend=backend, sources={k: stores[k] for k in ("a", "b", "stdf")}, out=stores["out"],
                   clean=stores["clean"], env=env, clean_location=loc["clean"], logs=tmp_path / "logs",
                   launcher=launcher, batches=batches, local_out=setup["local_out"], pauses=pauses)
    figures.append(fig)


@pytest.mark.parametrize("seed", DEFAULT_LOCAL)
def test_a_day_converges_on_local_folders(seed, tmp_path, convergence_figures):
    _converge(seed, "local", _local(tmp_path), tmp_path, convergence_figures)


@pytest.mark.s3
@pytest.mark.parametrize("seed", DEFAULT_S3)
def test_a_day_converges_on_s3(seed, s3_env, tmp_path, convergence_figures):
    _converge(seed, "s3", _s3(s3_env), tmp_path, convergence_figures)


@pytest.mark.slow
@pytest.mark.parametrize("seed", SLOW_LOCAL)
def test_many_days_converge_on_local_folders(seed, tmp_path, convergence_figures):
    _converge(seed, "local", _local(tmp_path), tmp_path, convergence_figures, batches=(3, 8), pauses=True)


@pytest.mark.slow
@pytest.mark.s3
@pytest.mark.parametrize("seed", SLOW_S3)
def test_many_days_converge_on_s3(seed, s3_env, tmp_path, convergence_figures):
    _converge(seed, "s3", _s3(s3_env), tmp_path, convergence_figures, batches=(3, 8), pauses=True)


@pytest.mark.slow
def test_a_day_converges_with_the_installed_command(tmp_path, convergence_figures):
    """The same property with the ``failmap`` console script itself in each process."""
    _converge(7, "local", _local(tmp_path), tmp_path, convergence_figures, launcher="exec", batches=(3, 4))


def _seeds_from_environment() -> list[tuple[str, int]]:
    """``CONVERGENCE_SEEDS=local:300-349,s3:400-409`` runs those seeds too (bug hunting)."""
    out = []
    for part in filter(None, os.environ.get("CONVERGENCE_SEEDS", "").split(",")):
        backend, _, span = part.partition(":")
        lo, _, hi = span.partition("-")
        out += [(backend, s) for s in range(int(lo), int(hi or lo) + 1)]
    return out


@pytest.mark.parametrize(("backend", "seed"), _seeds_from_environment() or [pytest.param("local", 0, marks=pytest.mark.skip(
    reason="set CONVERGENCE_SEEDS=local:300-349,s3:400-409 to run more seeds"))])
def test_seeds_from_environment(backend, seed, tmp_path, request, convergence_figures):
    setup = _local(tmp_path) if backend == "local" else _s3(request.getfixturevalue("s3_env"))
    _converge(seed, backend, setup, tmp_path, convergence_figures, batches=(3, 8), pauses=True)
