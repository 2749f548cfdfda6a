"""Partitioned jobs the sensors, the schedule and `failmap demo` launch."""

from __future__ import annotations

from dagster import AssetSelection, define_asset_job


FAILMAP_GROUP = "failmap"
STDF_GROUP = "stdf"

failmap_day_job = define_asset_job(
    "failmap_day_job",
    selection=AssetSelection.groups(FAILMAP_GROUP),
    tags={"failmap/pipeline": "failmap"},
    description="Fail-map A/B pipeline for one fab day: listing, pairing, die table, PNG, JSON.",
)

stdf_day_job = define_asset_job(
    "stdf_day_job",
    selection=AssetSelection.groups(STDF_GROUP),
    tags={"failmap/pipeline": "stdf"},
    description="STDF ingestion for one fab day: listing, Parquet tables, wafer maps.",
)
