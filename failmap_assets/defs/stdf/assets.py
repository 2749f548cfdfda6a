"""STDF assets: the day's listing, Parquet tables per file, wafer maps. Wiring only."""

from datetime import date

import polars as pl
from dagster import (
    AssetExecutionContext,
    AssetSpec,
    Config,
    MaterializeResult,
    MetadataValue,
    asset,
    multi_asset,
)
from pydantic import Field

from failmap_assets.defs import metadata as reporting
from failmap_assets.defs.jobs import STDF_GROUP
from failmap_assets.discovery.listing import list_objects
from failmap_assets.storage.layout import listing_key
from failmap_assets.storage.parquet_io import read_table, write_table
from failmap_assets.defs.partitions import daily_backfill_policy, daily_partitions
from failmap_assets.resources.rules import FailmapRules
from failmap_assets.resources.storage import FailmapStorage
from failmap_assets.pipeline.stdf_day import run_stdf_day

_COMMON = dict(group_name=STDF_GROUP, partitions_def=daily_partitions, backfill_policy=daily_backfill_policy)


@asset(**_COMMON, kinds={"s3", "parquet"}, description="The day's STDF objects (key, size, etag, last modified).")
def stdf_objects(context: AssetExecutionContext, storage: FailmapStorage) -> MaterializeResult:
    day = date.fromisoformat(context.partition_key)
    df = list_objects(storage.stdf_store(), day)
    write_table(storage.output_store(), listing_key("stdf_objects", day), df)
    return MaterializeResult(metadata={"objects": df.height, "bytes": int(df["size"].sum() or 0)})


class StdfConfig(Config):
    force: bool = Field(default=False, description="Parse every file of the day again.")
    retest_rule: str = Field(default="last", description="which test of a retested die counts: last, first, best, worst")


@multi_asset(
    specs=[
        AssetSpec("stdf_tables", deps=["stdf_objects"], kinds={"parquet"},
                  description="files, wafers, parts, tests, ptr/mpr/ftr results, bins, test summaries, generic records: parquet/stdf/<table>/date=.../product=.../test_type=..."),
        AssetSpec("stdf_wafer_maps", deps=["stdf_objects"], kinds={"png", "json"},
                  description="PNG + JSON per wafer from PRR x/y and hard bin, WCR orientation."),
    ],
    **_COMMON,
    can_subset=False,
)
def stdf_outputs(context: AssetExecutionContext, config: StdfConfig, storage: FailmapStorage, failmap_rules: FailmapRules):
    day = date.fromisoformat(context.partition_key)
    out = storage.output_store()
    listing = read_table(out, listing_key("stdf_objects", day))
    report = run_stdf_day(
        listing, day=day, source=storage.stdf_store(), out=out, retest_rule=config.retest_rule,
        pixels_per_die=failmap_rules.pixels_per_die, run_id=context.run.run_id, force=config.force, log=context.log.info,
    )
    errors = [r for r in report.rejects if r["severity"] == "error"]
    seconds = max(report.seconds, 1e-9)
    yield MaterializeResult(
        asset_key="stdf_tables",
        metadata={
            "files_in_day": report.files_total,
            "files_processed": report.files_done,
            "files_already_done": report.files_already_done,
            "parts": report.parts,
            "tests": report.tests,
            "results": report.results,
            "rejects": len(errors),
            "mb_per_s": MetadataValue.float(round(report.bytes_in / seconds / 1e6, 2)),
            "issues": MetadataValue.md(reporting.markdown_table(
                [(r["key"], r["severity"], r["reason"], r["detail"][:160]) for r in report.rejects[:20]],
                ["key", "severity", "reason", "detail"])),
        },
    )
    yield MaterializeResult(
        asset_key="stdf_wafer_maps",
        metadata={
            "wafers": report.wafers,
            "yield_by_wafer": MetadataValue.md(reporting.markdown_table(
                sorted((k, f"{v:.2%}") for k, v in report.yield_by_wafer.items())[:50], ["wafer", "yield"])),
        },
    )


STDF_ASSETS = [stdf_objects, stdf_outputs]
