"""wafer_summary and lot_summary: one op per fab day summarises the committed day.

They depend on the day assets (``failmap_dies``, ``stdf_tables``), so a backfill or
``daily_close`` runs them after the days, and their automation condition requests a
day's summaries whenever one of its day partitions is materialized (a sensor run, a
late file, a re-run). Every materialization reports the day as the summaries' commit
describes it, whichever run made it. Wiring only: ``pipeline/summary_day.py`` and
``yield_view/``.
"""


from datetime import date

from dagster import (
    AssetExecutionContext,
    AssetSelection,
    AssetSpec,
    AutomationConditionSensorDefinition,
    Config,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)
from pydantic import Field

from failmap_assets.defs import metadata as md
from failmap_assets.defs.automation import FOLLOWS_ITS_DAY
from failmap_assets.defs.jobs import TRENDS_GROUP, YIELD_GROUP
from failmap_assets.defs.owners import YIELD_ENGINEERING
from failmap_assets.defs.partitions import daily_backfill_policy, daily_partitions
from failmap_assets.pipeline.summary_day import run_summary_day
from failmap_assets.resources import FailmapRules, FailmapStorage
from failmap_assets.storage.layout import SUMMARY_TABLES
from failmap_assets.yield_view.lot_maps import STACKED_LOT_MAPS_COLUMNS
from failmap_assets.yield_view.merged import MERGED_DIES_COLUMNS, MERGED_WAFERS_COLUMNS
from failmap_assets.yield_view.summaries import (
    LOT_SUMMARY_COLUMNS,
    SUMMARY_VERSION,
    WAFER_SUMMARY_COLUMNS,
    WORST_BINS,
)
from failmap_assets.yield_view.zones import CENTRE_MAX_R, MIDDLE_MAX_R

OWNERS = YIELD_ENGINEERING
_ZONES = (f"zonal yield by normalised radius from the die-grid centre: centre r <= {CENTRE_MAX_R}, "
          f"middle <= {MIDDLE_MAX_R}, edge beyond")

class SummaryConfig(Config):
    force: bool = Field(default=False,
                        description="Recompute even when the summaries already describe the day's commits.")


SPECS = [
    AssetSpec(
        "wafer_summary", deps=["failmap_dies", "stdf_tables"], kinds={"polars", "parquet"}, owners=OWNERS,
        code_version=str(SUMMARY_VERSION), automation_condition=FOLLOWS_ITS_DAY,
        description=(
            "One row per wafer test event of the day, fail maps (industry formats included) and STDF: lot, "
            f"wafer, insertion, product, step, tester, file time, dies, yield, dies per bin, {_ZONES}, whether "
            "it is the wafer's latest event, the object keys. From the day's committed tables only: "
            "parquet/wafer_summary/date=YYYY-MM-DD/"),
        metadata={"dagster/column_schema": md.table_schema(WAFER_SUMMARY_COLUMNS)},
    ),
    AssetSpec(
        "merged_dies", deps=["failmap_dies", "stdf_tables"], kinds={"polars", "parquet"}, owners=OWNERS,
        code_version=str(SUMMARY_VERSION), automation_condition=FOLLOWS_ITS_DAY,
        description=(
            "Retests merged: one row per die of each physical wafer (source, lot, wafer, step) with its final "
            "bin over all the day's test events of the wafer (P, R, ... and STDF files) by FAILMAP_MERGE_RULE: "
            "last, first, best (a pass wins, else the latest) or worst (a fail wins, else the latest), and the "
            "event it comes from: parquet/merged_dies/date=YYYY-MM-DD/"),
        metadata={"dagster/column_schema": md.table_schema(MERGED_DIES_COLUMNS)},
    ),
    AssetSpec(
        "merged_wafers", deps=["merged_dies"], kinds={"polars", "parquet"}, owners=OWNERS,
        code_version=str(SUMMARY_VERSION), automation_condition=FOLLOWS_ITS_DAY,
        description=(
            "One row per physical wafer: its merged map's dies and yield, the insertions merged, dies tested "
            "more than once, and the pass dies of its latest event alone: parquet/merged_wafers/date=YYYY-MM-DD/; "
            "each drawn as a wafer map: merged_maps/YYYY-MM-DD/<source>/<lot>/<step>/<wafer>.png and .json"),
        metadata={"dagster/column_schema": md.table_schema(MERGED_WAFERS_COLUMNS)},
    ),
    AssetSpec(
        "stacked_lot_maps", deps=["merged_dies"], kinds={"polars", "parquet", "png"}, owners=OWNERS,
        code_version=str(SUMMARY_VERSION), automation_condition=FOLLOWS_ITS_DAY,
        description=(
            "Per lot and step (and source), the fail rate of each die position over the lot's wafers (merged "
            "result per wafer): parquet/stacked_lot_maps/date=YYYY-MM-DD/, and a heat map per lot "
            "(lot_maps/YYYY-MM-DD/<source>/<lot>/<step>.png, viridis-like ramp, rate 0 dark to 1 yellow) with its "
            "legend and grid in the .json beside it"),
        metadata={"dagster/column_schema": md.table_schema(STACKED_LOT_MAPS_COLUMNS)},
    ),
    AssetSpec(
        "lot_summary", deps=["wafer_summary"], kinds={"polars", "parquet"}, owners=OWNERS,
        code_version=str(SUMMARY_VERSION), automation_condition=FOLLOWS_ITS_DAY,
        description=(
            "One row per lot and step (per source) over each wafer's latest test event: wafers, dies, yield "
            f"(pooled, mean, min, max), the {WORST_BINS} worst fail bins, {_ZONES}, and the lot's final result: "
            "its wafers merged over their insertions by FAILMAP_MERGE_RULE (merged_*): "
            "parquet/lot_summary/date=YYYY-MM-DD/"),
        metadata={"dagster/column_schema": md.table_schema(LOT_SUMMARY_COLUMNS)},
    ),
]


@multi_asset(
    name="yield_summaries",
    specs=SPECS,
    group_name=YIELD_GROUP,
    partitions_def=daily_partitions,
    backfill_policy=daily_backfill_policy,
    can_subset=False,
)
def yield_summaries(context: AssetExecutionContext, config: SummaryConfig, storage: FailmapStorage,
                    failmap_rules: FailmapRules):
    """Summarise the day's committed fail-map and STDF tables; commit every table (and lot map) at once."""
    report = run_summary_day(day=date.fromisoformat(context.partition_key), out=storage.output_store(),
                             run_id=context.run.run_id, force=config.force, merge_rule=failmap_rules.merge_rule,
                             pixels_per_die=failmap_rules.pixels_per_die, lease=failmap_rules.lease(),
                             log=context.log.info)
    t = report.totals or {}
    day = {
        **md.day_yield(t),
        "wafers": t.get("wafers", 0), "test_events": t.get("test_events", 0), "dies": t.get("dies", 0),
        "lots": t.get("lots", 0),
    }
    run = {"run_committed": report.committed, "run_generation": report.generation,
           "run_seconds": MetadataValue.float(round(report.seconds, 2))}
    extra = {"wafer_summary": md.worst_wafers_grid(report.worst_grid),
             "merged_dies": {"merge_rule": t.get("merge_rule", "")},
             "merged_wafers": {"merge_rule": t.get("merge_rule", ""), "merged_maps": t.get("merged_maps", 0)},
             "stacked_lot_maps": {"lot_maps": t.get("lot_maps", 0)}}
    for table in SUMMARY_TABLES:
        yield MaterializeResult(asset_key=table, metadata={
            **day,
            "dagster/row_count": MetadataValue.int(t.get("rows", {}).get(table, 0)),
            "wafers_by_source": MetadataValue.json(t.get("sources", {})),
            **extra.get(table, {}),
            **run,
        })


YIELD_ASSETS = [yield_summaries]

# Evaluates FOLLOWS_ITS_DAY and the trends' FOLLOWS_LATE_SUMMARIES; off until turned on
# in the UI, like the bucket sensors.
yield_summaries_sensor = AutomationConditionSensorDefinition(
    "yield_summaries_sensor", target=AssetSelection.groups(YIELD_GROUP, TRENDS_GROUP), minimum_interval_seconds=60,
    description="Requests a day's summaries (wafer_summary, lot_summary, merged retests, stacked lot maps) "
                "after any of its fail-map or STDF runs, and the latest yield_trends window after any of its "
                "days' summaries is committed again (a late file, a re-run).",
)
YIELD_SENSORS = [yield_summaries_sensor]
