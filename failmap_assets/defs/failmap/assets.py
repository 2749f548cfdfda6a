"""Fail-map dual-bucket assets: listing, pairing, die table + PNG + JSON, rejects.

Dagster wiring only: the work is in discovery/listing.py, pipeline/pairing.py,
pipeline/failmap_day.py and the pure layers beneath them. Every asset writes its output into FAILMAP_OUTPUT itself
(Parquet / PNG / JSON, one atomic PUT each) and reports counts as metadata, so the
outputs are plain files any tool can read, on S3 or local folders alike.
"""


from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import polars as pl
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    Config,
    MaterializeResult,
    MetadataValue,
    asset,
    multi_asset,
)
from pydantic import Field

from failmap_assets.pipeline.failmap_day import PIPELINE, DayReport, RunnerOptions, run_day
from failmap_assets.defs.jobs import FAILMAP_GROUP
from failmap_assets.discovery.listing import list_day_with_neighbours
from failmap_assets.storage.layout import listing_key, pairs_key, table_dir
from failmap_assets.pipeline.pairing import UNIT_STATUSES, pair_day
from failmap_assets.storage.parquet_io import read_table, write_table
from failmap_assets.defs.partitions import daily_backfill_policy, daily_partitions
from failmap_assets.pipeline import processed_ledger
from failmap_assets.defs import metadata as reporting
from failmap_assets.defs.failmap import checks
from failmap_assets.resources.rules import FailmapRules
from failmap_assets.resources.storage import FailmapStorage
from failmap_assets.pipeline.unit import ProcessingOptions

_COMMON = dict(group_name=FAILMAP_GROUP, partitions_def=daily_partitions, backfill_policy=daily_backfill_policy)


def partition_day(context: AssetExecutionContext) -> date:
    return date.fromisoformat(context.partition_key)


def _listing_metadata(df: pl.DataFrame) -> dict:
    own = df.filter(pl.col("in_partition"))
    valid = own.filter(pl.col("valid"))
    by_ext = valid.group_by("ext").len().sort("len", descending=True)
    return {
        "objects": own.height,
        "fail_map_keys": valid.height,
        "skipped_keys": own.height - valid.height,
        "bytes": int(own["size"].sum() or 0),
        "neighbour_day_objects": df.height - own.height,
        "extensions": MetadataValue.md(reporting.markdown_table(by_ext.rows(), ["extension", "objects"])),
    }


@asset(**_COMMON, kinds={"s3", "parquet"}, description="The day's bucket A listing (plus the previous day's last window seconds, for pairing across midnight).")
def bucket_a_objects(context: AssetExecutionContext, storage: FailmapStorage, failmap_rules: FailmapRules) -> MaterializeResult:
    day = partition_day(context)
    df = list_day_with_neighbours(storage.source_a_store(), day, before=timedelta(seconds=failmap_rules.window_s))
    write_table(storage.output_store(), listing_key("bucket_a_objects", day), df)
    return MaterializeResult(metadata=_listing_metadata(df))


@asset(**_COMMON, kinds={"s3", "parquet"}, description="The day's bucket B listing plus the first window + grace of the next day (partners written after midnight).")
def bucket_b_objects(context: AssetExecutionContext, storage: FailmapStorage, failmap_rules: FailmapRules) -> MaterializeResult:
    day = partition_day(context)
    after = timedelta(seconds=failmap_rules.window_s + failmap_rules.grace_s)
    df = list_day_with_neighbours(storage.source_b_store(), day, after=after)
    write_table(storage.output_store(), listing_key("bucket_b_objects", day), df)
    return MaterializeResult(metadata=_listing_metadata(df))


class PairsConfig(Config):
    as_of: str = Field(
        default="",
        description="Fab time 'YYYY-MM-DD HH:MM:SS' that decides pending vs a_only; empty means now.",
    )


@asset(
    **_COMMON,
    kinds={"polars", "parquet"},
    deps=[bucket_a_objects, bucket_b_objects],
    check_specs=[AssetCheckSpec("match_rate", asset="failmap_pairs", description="matched / (matched + a_only) above the configured threshold")],
    description="A/B pairs by the pairing rule, each matched, a_only, pending or orphan_b.",
)
def failmap_pairs(context: AssetExecutionContext, config: PairsConfig, storage: FailmapStorage, failmap_rules: FailmapRules):
    day = partition_day(context)
    out = storage.output_store()
    a = read_table(out, listing_key("bucket_a_objects", day))
    b = read_table(out, listing_key("bucket_b_objects", day))
    now = fab_now(config.as_of)
    pairs = pair_day(a, b, now=now, window_s=failmap_rules.window_s, grace_s=failmap_rules.grace_s)
    write_table(out, pairs_key(day), pairs)

    counts = {s: 0 for s in ("matched", "a_only", "pending", "orphan_b", "other_map")}
    counts.update(dict(pairs.group_by("status").len().iter_rows()))
    decided = counts["matched"] + counts["a_only"]
    match_rate = counts["matched"] / decided if decided else 1.0
    yield MaterializeResult(
        metadata={
            **{f"pairs_{k}": v for k, v in counts.items()},
            "match_rate": MetadataValue.float(round(match_rate, 4)),
            "as_of": now.isoformat(sep=" "),
        }
    )
    yield AssetCheckResult(
        check_name="match_rate",
        passed=match_rate >= failmap_rules.match_rate_warn,
        severity=AssetCheckSeverity.WARN,
        metadata={"match_rate": match_rate, "threshold": failmap_rules.match_rate_warn, "decided": decided},
    )


def fab_now(as_of: str = "") -> datetime:
    """Current fab-local time, naive like the times in the keys."""
    if as_of:
        return datetime.fromisoformat(as_of)
    return datetime.now(ZoneInfo(daily_partitions.timezone)).replace(tzinfo=None)


class WaferOutputsConfig(Config):
    force: bool = Field(default=False, description="Reprocess every pair of the day, even those already done.")


@multi_asset(
    specs=[
        AssetSpec("failmap_dies", deps=["failmap_pairs"], kinds={"parquet"}, description="The canonical die table: one row per die, A and B joined."),
        AssetSpec("wafer_maps_png", deps=["failmap_pairs"], kinds={"png"}, description="One palette PNG wafer map per wafer: png/YYYY-MM-DD/<wafer_token>.png"),
        AssetSpec("wafer_coordinates_json", deps=["failmap_pairs"], kinds={"json"}, description="One chip-coordinate JSON per wafer: json/YYYY-MM-DD/<wafer_token>.json"),
    ],
    check_specs=[
        AssetCheckSpec("unique_die", asset="failmap_dies", description="no duplicate (wafer_token, x, y)"),
        AssetCheckSpec("json_has_png", asset="wafer_coordinates_json", description="every JSON has its PNG and vice versa"),
    ],
    **_COMMON,
    can_subset=False,
)
def wafer_outputs(context: AssetExecutionContext, config: WaferOutputsConfig, storage: FailmapStorage, failmap_rules: FailmapRules):
    """Download, decompress, parse, join A with B, render: one pass per pair, in parallel."""
    day = partition_day(context)
    out = storage.output_store()
    pairs = read_table(out, pairs_key(day))
    units = pairs.filter(pl.col("status").is_in(UNIT_STATUSES))
    report = run_day(
        units,
        day=day,
        a_store=storage.source_a_store(),
        b_store=storage.source_b_store(),
        out_store=out,
        processing=ProcessingOptions(
            pixels_per_die=failmap_rules.pixels_per_die,
            max_bytes=failmap_rules.max_decompressed_mb << 20,
            max_ratio=failmap_rules.max_ratio,
        ),
        options=RunnerOptions(max_workers=storage.max_workers, max_in_flight=failmap_rules.max_in_flight, force=config.force),
        run_id=context.run.run_id,
        log=context.log.info,
    )
    pending = int((pairs["status"] == "pending").sum())
    summary = reporting.run_summary(report, pending=pending)
    yield MaterializeResult(asset_key="failmap_dies", metadata={**summary, **reporting.bin_pareto_metadata(report)})
    yield MaterializeResult(asset_key="wafer_maps_png", metadata={"wafers": report.wafers, "preview": reporting.preview_markdown(report)})
    yield MaterializeResult(asset_key="wafer_coordinates_json", metadata={"wafers": report.wafers, "dies": report.dies})
    yield checks.unique_die_check(out, day)
    yield checks.json_png_check(out, day)


@asset(
    **_COMMON,
    kinds={"parquet"},
    deps=[bucket_a_objects, bucket_b_objects, AssetKey("failmap_dies")],
    description="Every object that could not be used, with key, etag, reason, line and when first seen.",
)
def failmap_rejects(context: AssetExecutionContext, storage: FailmapStorage) -> MaterializeResult:
    day = partition_day(context)
    out = storage.output_store()
    frames = [processed_ledger.load_rejects(out, PIPELINE, day).drop("a_key", "run_id")]
    # A keys outside the grammar got their verdict from processing (other_map units);
    # B keys outside it are never read, so they are listed here as skipped.
    b_listing = read_table(out, listing_key("bucket_b_objects", day))
    skipped = b_listing.filter(pl.col("in_partition") & ~pl.col("valid"))
    frames.append(
        skipped.select(
            "key",
            "etag",
            pl.lit("b").alias("bucket"),
            pl.lit(None, pl.String).alias("member"),
            pl.lit("not_a_failmap_key").alias("reason"),
            pl.col("skip_reason").alias("detail"),
            pl.lit(None, pl.Int64).alias("line"),
            pl.lit("warning").alias("severity"),
            pl.col("last_modified").alias("first_seen"),
        )
    )
    rejects = pl.concat(frames, how="diagonal_relaxed").sort("key")
    write_table(out, f"{table_dir('failmap_rejects', day)}rejects.parquet", rejects)
    errors = rejects.filter(pl.col("severity") == "error")
    by_reason = rejects.group_by("severity", "reason").len().sort("len", descending=True)
    return MaterializeResult(
        metadata={
            "rejects": errors.height,
            "warnings": rejects.height - errors.height,
            "by_reason": MetadataValue.md(reporting.markdown_table(by_reason.rows(), ["severity", "reason", "objects"])),
            "first_rejects": MetadataValue.md(
                reporting.markdown_table(
                    errors.select("key", "reason", "line", "detail").head(20).rows(), ["key", "reason", "line", "detail"]
                )
            ),
        }
    )


FAILMAP_ASSETS = [bucket_a_objects, bucket_b_objects, failmap_pairs, wafer_outputs, failmap_rejects]
