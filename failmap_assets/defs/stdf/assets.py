"""STDF assets: one op per fab day lists, parses what is new and commits the day. Wiring only."""

from datetime import date

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetSpec,
    Config,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)
from pydantic import Field

from failmap_assets.defs import metadata as md
from failmap_assets.defs import table_schemas
from failmap_assets.defs.failmap.assets import OWNERS as FAILMAP_OWNERS
from failmap_assets.defs.jobs import STDF_GROUP
from failmap_assets.defs.partitions import daily_backfill_policy, daily_partitions
from failmap_assets.pipeline.stdf_day import OUTPUT_VERSION, run_stdf_day
from failmap_assets.resources import FailmapRules, FailmapStorage
from failmap_assets.stdf.wafer_maps import RETEST_RULES


class StdfConfig(Config):
    force: bool = Field(default=False, description="Parse every file of the day again.")
    retest_rule: str = Field(default="last", description="which test of a retested die counts: last, first, best, worst")


OWNERS = FAILMAP_OWNERS  # the same team ingests both kinds of tester files


def _spec(key: str, *, table: bool, **kwargs) -> AssetSpec:
    """Every STDF day asset: one owner, the pipeline's output version, a table's columns."""
    return AssetSpec(key, owners=OWNERS, code_version=str(OUTPUT_VERSION),
                     metadata=table_schemas.column_schema(key) if table else None, **kwargs)


SPECS = [
    _spec("stdf_objects", table=True, kinds={"s3", "parquet"},
          description="The day's STDF objects (key, size, etag, last modified): parquet/stdf_objects/date=YYYY-MM-DD/"),
    _spec("stdf_tables", table=True, deps=["stdf_objects"], kinds={"parquet"}, description=(
        "files, wafers, parts, tests, ptr/mpr/ftr results, bins, test summaries, generic records "
        "(columns listed as <table>.<column>; the row count is the parts'): "
        "parquet/stdf/<table>/date=.../product=.../test_type=...")),
    _spec("stdf_wafer_maps", table=False, deps=["stdf_objects"], kinds={"png", "json"},
          description="PNG + JSON per wafer (its latest test event) from PRR x/y and hard bin, WCR orientation."),
    _spec("stdf_rejects", table=True, deps=["stdf_objects"], kinds={"parquet"},
          description="Every STDF object that could not be (fully) used, with the reason and byte offset: "
          "parquet/stdf_rejects/date=YYYY-MM-DD/"),
]

CHECK_SPECS = [
    AssetCheckSpec("files_accounted", asset="stdf_tables", partitions_def=daily_partitions, description=(
        "Every STDF object of the day is parsed, rejected with a reason, or waiting for a retry of its read.")),
]


def run_stdf(day: date, storage: FailmapStorage, rules: FailmapRules, *, force: bool = False,
             retest_rule: str = "last", run_id: str, log=print):
    """The STDF day run with the resources' settings (the asset, and ``failmap run-day``)."""
    if retest_rule not in RETEST_RULES:
        raise ValueError(f"retest_rule must be one of {RETEST_RULES}, not {retest_rule!r}")
    return run_stdf_day(
        day=day, source=storage.stdf_store(), out=storage.output_store(), retest_rule=retest_rule,
        pixels_per_die=rules.pixels_per_die, run_id=run_id, force=force, lease=rules.lease(), log=log,
    )


@multi_asset(
    name="stdf_day",
    specs=SPECS,
    check_specs=CHECK_SPECS,
    group_name=STDF_GROUP,
    partitions_def=daily_partitions,
    backfill_policy=daily_backfill_policy,
    can_subset=False,
)
def stdf_day(context: AssetExecutionContext, config: StdfConfig, storage: FailmapStorage, failmap_rules: FailmapRules):
    day = date.fromisoformat(context.partition_key)
    report = run_stdf(day, storage, failmap_rules, force=config.force, retest_rule=config.retest_rule,
                      run_id=context.run.run_id, log=context.log.info)
    t = report.totals
    run = md.run_figures(processed=report.files_done, already_done=report.files_already_done,
                         dropped=report.files_dropped, failed=report.files_failed, seconds=report.seconds,
                         committed=report.committed, waited_s=report.waited_s, bytes_in=report.bytes_in,
                         generation=report.generation)
    yield MaterializeResult(asset_key="stdf_objects", metadata={
        **md.day_yield(t), **md.row_count(t.get("files", 0)), "objects": t.get("files", 0)})
    yield MaterializeResult(asset_key="stdf_tables", metadata={
        **md.wafer_figures(t), **md.row_count(t.get("parts", 0)), "files": t.get("files", 0),
        "parts": t.get("parts", 0), **md.bin_pareto(t), **md.worst_wafers(report.events), **run})
    latest = report.events.filter(report.events["latest"]) if report.events is not None else None
    rows = [] if latest is None else sorted(
        (r["wafer_token"], f"{r['pass_dies'] / r['dies']:.2%}" if r["dies"] else "")
        for r in latest.iter_rows(named=True))[:50]
    yield MaterializeResult(asset_key="stdf_wafer_maps", metadata={
        **md.day_yield(t), "wafers": t.get("wafers", 0),
        "yield_by_wafer": MetadataValue.md(md.markdown_table(rows, ["wafer", "yield"])),
    })
    yield MaterializeResult(asset_key="stdf_rejects", metadata=md.rejects_by_reason(t))
    outcomes = t.get("units_by_outcome", {})
    accounted = sum(outcomes.get(k, 0) for k in ("ok", "rejected", "read_error", "changed", "vanished"))
    yield AssetCheckResult(
        check_name="files_accounted", asset_key="stdf_tables", passed=accounted == t.get("files", 0),
        severity=AssetCheckSeverity.ERROR, metadata={"files": t.get("files", 0), **outcomes},
    )


STDF_ASSETS = [stdf_day]
