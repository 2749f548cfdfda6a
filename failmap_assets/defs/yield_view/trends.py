"""``yield_trends``: daily yield by product, step and tester, and the bin pareto, over
the ``FAILMAP_TREND_DAYS`` days ending at the partition's day. Wiring only:
``yield_view/trends.py`` computes and commits.

Daily-partitioned over a window rather than one unpartitioned asset: the partition
``D`` is the trend *as of D* (the days D-N+1..D), so it is a fixed, re-runnable
result (a backfill or a re-run of D gives the same answer, whenever it runs), each
partition has its own commit and lease like every other day, ``daily_close``
materializes the trend ending yesterday right after yesterday's summaries, and the
UI plots the window's figures per partition. Its dependency on ``wafer_summary``
spans the window (a time-window partition mapping), so the asset graph shows what
it reads.

Late files: its automation condition (``FOLLOWS_LATE_SUMMARIES``, evaluated by
``yield_summaries_sensor``) requests the latest partition (the window ending today,
the newest day) whenever the summaries of any day of its window are committed again
(a late file, a re-run), once those runs are over: not when the summaries are only
requested, so a late file costs one trends run, after its summaries. Only the latest window: recomputing all N windows
containing a changed day would cost N runs per late file, and the older windows are
"as of" views; re-run one (or backfill a range) when you need it up to date too.
"""


from datetime import date

from dagster import (
    AssetDep,
    AssetExecutionContext,
    AssetSpec,
    AutomationCondition,
    Config,
    MaterializeResult,
    MetadataValue,
    TimeWindowPartitionMapping,
    multi_asset,
)
from pydantic import Field

from failmap_assets.defs import metadata as md
from failmap_assets.defs.jobs import TRENDS_GROUP
from failmap_assets.defs.partitions import TREND_DAYS, daily_backfill_policy, daily_partitions
from failmap_assets.defs.yield_view.assets import OWNERS
from failmap_assets.resources import FailmapRules, FailmapStorage
from failmap_assets.pipeline.trends_day import run_trends
from failmap_assets.yield_view.trends import BIN_PARETO_COLUMNS, TRENDS_VERSION, YIELD_TREND_COLUMNS

#: A wafer_summary partition of the latest window materialized since the trends were last
#: requested or materialized: compute the latest window again, once no run of its
#: inputs or of itself is going on.
FOLLOWS_LATE_SUMMARIES = (
    AutomationCondition.in_latest_time_window()
    & AutomationCondition.any_deps_match(AutomationCondition.newly_updated()).since_last_handled()
    & ~AutomationCondition.any_deps_match(AutomationCondition.will_be_requested())
    & ~AutomationCondition.any_deps_in_progress()
    & ~AutomationCondition.in_progress()
)


class TrendsConfig(Config):
    force: bool = Field(default=False, description="Recompute even when the window's summaries did not change.")


YIELD_TRENDS = AssetSpec(
    "yield_trends", owners=OWNERS, code_version=str(TRENDS_VERSION), kinds={"polars", "parquet", "png"},
    deps=[AssetDep("wafer_summary", partition_mapping=TimeWindowPartitionMapping(start_offset=-(TREND_DAYS - 1)))],
    automation_condition=FOLLOWS_LATE_SUMMARIES,
    description=(
        f"Yield over the {TREND_DAYS} days ending at the partition's day (FAILMAP_TREND_DAYS), from the days' "
        "committed wafer_summary, each wafer's latest test event: daily yield by product, step and tester "
        "(parquet/yield_trend/date=<day>/), the daily bin pareto, loss bins first, with bin names "
        "(parquet/bin_pareto_trend/date=<day>/), and a chart of daily yield per product."),
    metadata={"dagster/column_schema": md.table_schema(
        {f"yield_trend.{k}": (v, "") for k, v in YIELD_TREND_COLUMNS.items()}
        | {f"bin_pareto_trend.{k}": (v, "") for k, v in BIN_PARETO_COLUMNS.items()})},
)


@multi_asset(name="yield_trends_window", specs=[YIELD_TRENDS], group_name=TRENDS_GROUP,
             partitions_def=daily_partitions, backfill_policy=daily_backfill_policy)
def yield_trends(context: AssetExecutionContext, config: TrendsConfig, storage: FailmapStorage,
                 failmap_rules: FailmapRules):
    """Compute and commit the trend tables of the window ending at the partition's day."""
    report = run_trends(last=date.fromisoformat(context.partition_key), days=TREND_DAYS,
                        out=storage.output_store(), run_id=context.run.run_id, force=config.force,
                        lease=failmap_rules.lease(), log=context.log.info)
    t = report.totals or {}
    rows = t.get("rows", {})
    yield MaterializeResult(asset_key="yield_trends", metadata={
        **md.window_yield(report.yield_trend),
        **md.row_count(sum(rows.values())),
        "first_day": t.get("first_day", ""), "last_day": t.get("last_day", ""),
        "days_summarised": t.get("days_summarised", 0),
        "rows": MetadataValue.json(rows),
        "chart": md.preview_markdown([("daily yield per product", report.chart)]),
        **md.trend_pareto(report.bin_pareto),
        "run_committed": report.committed, "run_generation": report.generation,
        "run_seconds": MetadataValue.float(round(report.seconds, 2)),
    })


TRENDS_ASSETS = [yield_trends]
