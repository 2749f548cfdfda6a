"""The convergence figures of the session, printed at the end of the run."""

from __future__ import annotations

import pytest

FIGURES = pytest.StashKey[list]()


@pytest.fixture
def convergence_figures(request) -> list:
    return request.config.stash.setdefault(FIGURES, [])


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    figures = config.stash.get(FIGURES, [])
    if not figures:
        return
    tr = terminalreporter
    tr.section("a day converges")
    for f in figures:
        tr.write_line(f.line())
    equal = sum(f.equal for f in figures)
    tr.write_line(
        f"{len(figures)} seed runs, {sum(f.operations for f in figures)} operations in "
        f"{sum(f.batches for f in figures)} batches, {sum(f.runs for f in figures)} runs "
        f"({sum(f.forced for f in figures)} forced), {sum(f.concurrent_pairs for f in figures)} concurrent pairs, "
        f"{sum(f.kills for f in figures)} kills (+{sum(f.kills_missed for f in figures)} due after the run ended), "
        f"{sum(f.pauses for f in figures)} paused and taken over ({sum(f.paused_in_lock for f in figures)} frozen "
        f"holding a file lock), {sum(f.comparisons for f in figures)} comparisons "
        f"over {sum(f.rows for f in figures)} rows, {equal}/{len(figures)} equal, {sum(f.seconds for f in figures):.1f} s")
