"""Asset groups and every job: the day jobs the sensors launch and daily_close's job.

A pipeline's day is one op (the whole day is computed and committed together), so
the day jobs run in process: a run pays one process start, not one per step.
"""

from __future__ import annotations

from dagster import AssetSelection, define_asset_job, in_process_executor

FAILMAP_GROUP = "failmap"
STDF_GROUP = "stdf"

failmap_day_job = define_asset_job(
    "failmap_day_job",
    selection=AssetSelection.groups(FAILMAP_GROUP),
    tags={"failmap/pipeline": "failmap"},
    executor_def=in_process_executor,
    description="Fail-map A/B pipeline for one fab day: listing, pairing, die table, PNG, JSON.",
)

stdf_day_job = define_asset_job(
    "stdf_day_job",
    selection=AssetSelection.groups(STDF_GROUP),
    tags={"failmap/pipeline": "stdf"},
    executor_def=in_process_executor,
    description="STDF ingestion for one fab day: listing, Parquet tables, wafer maps.",
)

daily_close_job = define_asset_job(
    "daily_close_job",
    selection=AssetSelection.groups(FAILMAP_GROUP, STDF_GROUP),
    description="Yesterday's fail-map and STDF partitions, materialized once the day is closed.",
)

JOBS = [failmap_day_job, stdf_day_job, daily_close_job]
