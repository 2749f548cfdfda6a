"""The run queue that knows fab days: every run of a day carries ``failmap/day``.

Dagster's runs name their partition in different tags: sensor, schedule, UI and job
backfill runs carry ``dagster/partition``; asset backfill runs (one day each, by our
backfill policy) carry ``dagster/asset_partition_range_start`` / ``_end``. A tag
limit keyed on one of them does not see the others, so a backfill run and a sensor
run of the same day ran side by side. This coordinator is Dagster's
``QueuedRunCoordinator`` plus one step at submission: it writes ``failmap/day`` (the
day, whatever tag named it) on the run, so one ``tag_concurrency_limits`` entry on
``failmap/day`` holds for every kind of run (deploy/dagster.yaml). The day lease
(``pipeline/day_lease.py``) still guards runs that bypass the queue (CLI, other
instances); the queue only saves them from waiting for each other.
"""

from __future__ import annotations

from collections.abc import Mapping

from dagster import DagsterRun
from dagster._core.run_coordinator import QueuedRunCoordinator, SubmitRunContext
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_NAME_TAG,
)

DAY_TAG = "failmap/day"


def day_of(tags: Mapping[str, str]) -> str | None:
    """The fab day a run works on, from whichever tag names it; None for runs of no
    single day (unpartitioned, or a range of several days)."""
    if tags.get(PARTITION_NAME_TAG):
        return tags[PARTITION_NAME_TAG]
    start, end = tags.get(ASSET_PARTITION_RANGE_START_TAG), tags.get(ASSET_PARTITION_RANGE_END_TAG)
    if start and start == end:
        return start
    return None


class DayRunCoordinator(QueuedRunCoordinator):
    def submit_run(self, context: SubmitRunContext) -> DagsterRun:
        run = context.dagster_run
        day = day_of(run.tags)
        if day is not None and run.tags.get(DAY_TAG) != day:
            self._instance.add_run_tags(run.run_id, {DAY_TAG: day})
            run = self._instance.get_run_by_id(run.run_id) or run
            context = SubmitRunContext(run, context.workspace)
        return super().submit_run(context)
