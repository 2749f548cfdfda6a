"""Asset groups and every job: the day jobs the sensors launch and daily_close's job.

A pipeline's day is one op (the whole day is computed and committed together), so
the day jobs run in process: a run pays one process start, not one per step.
"""

from __future__ import annotations

from dagster import AssetSelection, define_asset_job, in_process_executor

from failmap_assets.defs.owners import TEST_ENGINEERING, YIELD_ENGINEERING

FAILMAP_GROUP = "failmap"
STDF_GROUP = "stdf"
YIELD_GROUP = "yield"
TRENDS_GROUP = "yield_trends"
PATTERNS_GROUP = "patterns"
SINKS_GROUP = "sinks"

failmap_day_job = define_asset_job(
    "failmap_day_job",
    selection=AssetSelection.groups(FAILMAP_GROUP),
    tags={"failmap/pipeline": "failmap"},
    executor_def=in_process_executor,
    owners=TEST_ENGINEERING,
    description="Fail-map A/B pipeline for one fab day: listing, pairing, die table, PNG, JSON.",
)

stdf_day_job = define_asset_job(
    "stdf_day_job",
    selection=AssetSelection.groups(STDF_GROUP),
    tags={"failmap/pipeline": "stdf"},
    executor_def=in_process_executor,
    owners=TEST_ENGINEERING,
    description="STDF ingestion for one fab day: listing, Parquet tables, wafer maps.",
)

yield_summaries_job = define_asset_job(
    "yield_summaries_job",
    selection=AssetSelection.groups(YIELD_GROUP),
    tags={"failmap/pipeline": "summaries"},
    executor_def=in_process_executor,
    owners=YIELD_ENGINEERING,
    description="wafer_summary, lot_summary, merged retests and stacked lot maps of one fab day, from its "
                "committed fail-map and STDF days.",
)

# The summaries depend on both day ops, so within this job they run after them.
daily_close_job = define_asset_job(
    "daily_close_job",
    selection=AssetSelection.groups(FAILMAP_GROUP, STDF_GROUP, YIELD_GROUP, TRENDS_GROUP, SINKS_GROUP),
    owners=TEST_ENGINEERING + YIELD_ENGINEERING,
    description="Yesterday's fail-map and STDF partitions, their summaries, the yield trends ending "
    "yesterday and the PostgreSQL sink, materialized once the day is closed.",
)

yield_trends_job = define_asset_job(
    "yield_trends_job",
    selection=AssetSelection.groups(TRENDS_GROUP),
    tags={"failmap/pipeline": "trends"},
    executor_def=in_process_executor,
    owners=YIELD_ENGINEERING,
    description="yield_trends of one fab day: the window of days ending there, from their committed wafer_summary.",
)

# Patterns: the daily signatures, the per-product index (not partitioned: a job of its
# own) and the daily matches; a day's matches read the index the last rebuild switched to.
wafer_signatures_job = define_asset_job(
    "wafer_signatures_job",
    selection=AssetSelection.assets("wafer_signatures"),
    tags={"failmap/pipeline": "patterns"},
    owners=YIELD_ENGINEERING,
    executor_def=in_process_executor,
    description="Pattern signatures (raster, embedding, WM-811K label) of one fab day's committed test events.",
)

pattern_index_job = define_asset_job(
    "pattern_index_job",
    selection=AssetSelection.assets("pattern_index"),
    owners=YIELD_ENGINEERING,
    executor_def=in_process_executor,
    description="Rebuild the pattern index of every product whose committed signature days changed "
                "(concurrency pool pattern_index: one rebuild at a time).",
)

pattern_matches_job = define_asset_job(
    "pattern_matches_job",
    selection=AssetSelection.assets("similar_wafers", "wafer_anomaly"),
    tags={"failmap/pipeline": "pattern_matches"},
    owners=YIELD_ENGINEERING,
    executor_def=in_process_executor,
    description="Similar earlier wafers and anomaly scores of one fab day's test events, from the pattern index.",
)

JOBS = [failmap_day_job, stdf_day_job, yield_summaries_job, yield_trends_job, daily_close_job,
        wafer_signatures_job, pattern_index_job, pattern_matches_job]
