"""Fail-map dual-bucket assets: one op per fab day brings the whole day up to date.

Listing, pairing, die table, PNG, JSON and rejects of a day are computed and
committed together (``pipeline/failmap_day.py``): they are one function of the
day's objects, so they are materialized together (``can_subset=False``). Every
materialization reports the whole day after the run (from its commit) and, apart,
what the run did. Dagster wiring only.
"""

from datetime import date, datetime
from zoneinfo import ZoneInfo

from dagster import AssetExecutionContext, AssetSpec, Config, MaterializeResult, MetadataValue, multi_asset
from pydantic import Field

from failmap_assets.defs import metadata as md
from failmap_assets.defs import table_schemas
from failmap_assets.defs.failmap.checks import CHECK_SPECS, die_row_checks, match_rate_check, wafer_file_check
from failmap_assets.defs.jobs import FAILMAP_GROUP
from failmap_assets.defs.owners import TEST_ENGINEERING
from failmap_assets.defs.partitions import daily_backfill_policy, daily_partitions
from failmap_assets.pipeline.failmap_day import OUTPUT_VERSION, PairingRules, RunnerOptions, run_day
from failmap_assets.pipeline.unit import ProcessingOptions
from failmap_assets.resources import FailmapRules, FailmapStorage


class FailmapDayConfig(Config):
    force: bool = Field(default=False, description="Reprocess every unit of the day, even those already committed.")
    as_of: str = Field(
        default="",
        description="Fab time 'YYYY-MM-DD HH:MM:SS' that decides pending vs a_only; empty means now.",
    )


def fab_now(as_of: str = "") -> datetime:
    """Current fab-local time, naive like the times in the keys."""
    if as_of:
        return datetime.fromisoformat(as_of)
    return datetime.now(ZoneInfo(daily_partitions.timezone)).replace(tzinfo=None)


_LISTING = "key, size, etag, last modified, parsed key fields (wafer token, file time, extension, why skipped)"

#: The test floor's data: ingestion of the testers' files (the yield tables are yield engineering's).
OWNERS = TEST_ENGINEERING


def _spec(key: str, *, table: bool, **kwargs) -> AssetSpec:
    """Every fail-map day asset: one owner, the pipeline's output version, a table's columns."""
    return AssetSpec(key, owners=OWNERS, code_version=str(OUTPUT_VERSION),
                     metadata=table_schemas.column_schema(key) if table else None, **kwargs)


SPECS = [
    _spec("bucket_a_objects", table=True, kinds={"s3", "parquet"}, description=(
        f"The day's bucket A listing ({_LISTING}), plus the previous day's last window seconds for pairing "
        "across midnight: parquet/bucket_a_objects/date=YYYY-MM-DD/")),
    _spec("bucket_b_objects", table=True, kinds={"s3", "parquet"}, description=(
        f"The day's bucket B listing ({_LISTING}), plus the next day's first window + grace (partners "
        "written after midnight): parquet/bucket_b_objects/date=YYYY-MM-DD/")),
    _spec("failmap_pairs", table=True, deps=["bucket_a_objects", "bucket_b_objects"], kinds={"polars", "parquet"},
          description="A/B pairs by the pairing rule, each matched, a_only, pending, orphan_b or other_map: "
          "parquet/failmap_pairs/date=YYYY-MM-DD/"),
    _spec("failmap_dies", table=True, deps=["failmap_pairs"], kinds={"parquet"}, description=(
        "The canonical die table: one row per die of each test event, A and B joined; `latest` marks each "
        "wafer's latest test event. parquet/failmap_dies/date=YYYY-MM-DD/")),
    _spec("wafer_maps_png", table=False, deps=["failmap_pairs"], kinds={"png"},
          description="One palette PNG per wafer (its latest test event): png/YYYY-MM-DD/<wafer_token>.png"),
    _spec("wafer_coordinates_json", table=False, deps=["failmap_pairs"], kinds={"json"},
          description="One chip-coordinate JSON per wafer (its latest test event): json/YYYY-MM-DD/<wafer_token>.json"),
    _spec("failmap_rejects", table=True, deps=["bucket_a_objects", "bucket_b_objects", "failmap_dies"],
          kinds={"parquet"},
          description="Every object that could not be used (or was skipped), with key, etag, reason, line "
          "and when first seen: parquet/failmap_rejects/date=YYYY-MM-DD/"),
]


def run_failmap_day(day: date, storage: FailmapStorage, rules: FailmapRules, *, force: bool = False,
                    as_of: str = "", run_id: str, log=print):
    """The day run with the resources' settings (the asset, and ``failmap run-day``)."""
    return run_day(
        day=day,
        a_store=storage.source_a_store(),
        b_store=storage.source_b_store(),
        out_store=storage.output_store(),
        now=fab_now(as_of),
        pairing=PairingRules(window_s=rules.window_s, grace_s=rules.grace_s),
        processing=ProcessingOptions(
            pixels_per_die=rules.pixels_per_die,
            max_bytes=rules.max_decompressed_mb << 20,
            max_ratio=rules.max_ratio,
        ),
        options=RunnerOptions(max_workers=storage.max_workers, max_in_flight=rules.max_in_flight,
                              force=force, lease=rules.lease(), memory_budget_bytes=rules.memory_budget_mb << 20),
        run_id=run_id,
        log=log,
    )


@multi_asset(
    name="failmap_day",
    specs=SPECS,
    check_specs=CHECK_SPECS,
    group_name=FAILMAP_GROUP,
    partitions_def=daily_partitions,
    backfill_policy=daily_backfill_policy,
    can_subset=False,
)
def failmap_day(context: AssetExecutionContext, config: FailmapDayConfig, storage: FailmapStorage,
                failmap_rules: FailmapRules):
    """List, pair, process what is new, commit: the whole fail-map day in one pass."""
    day = date.fromisoformat(context.partition_key)
    out = storage.output_store()
    report = run_failmap_day(day, storage, failmap_rules, force=config.force, as_of=config.as_of,
                             run_id=context.run.run_id, log=context.log.info)
    t = report.totals
    run = md.run_figures(processed=report.units_done, already_done=report.units_skipped_done,
                         dropped=report.units_dropped, failed=report.units_failed, seconds=report.seconds,
                         committed=report.committed, waited_s=report.waited_s, bytes_in=report.bytes_in,
                         generation=report.generation)
    listings = t.get("listings", {})
    for name in ("bucket_a_objects", "bucket_b_objects"):
        figures = dict(listings.get(name, {}))
        ext = figures.pop("extensions", {})
        yield MaterializeResult(asset_key=name, metadata={
            **md.day_yield(t),
            **md.row_count(figures.get("objects", 0) + figures.get("neighbour_day_objects", 0)),
            **figures,
            "extensions": MetadataValue.md(md.markdown_table(sorted(ext.items(), key=lambda kv: -kv[1]),
                                                             ["extension", "objects"])),
        })
    pairs = t.get("pairs", {})
    yield MaterializeResult(asset_key="failmap_pairs", metadata={
        **md.day_yield(t),
        **md.row_count(sum(pairs.values())),  # one row per pair, each of one status
        **({"match_rate": MetadataValue.float(t["match_rate"])} if t.get("match_rate") is not None else {}),
        **{f"pairs_{k}": v for k, v in pairs.items()},
    })
    yield MaterializeResult(asset_key="failmap_dies", metadata={
        **md.wafer_figures(t), **md.row_count(t.get("die_rows", 0)), "wafers_with_b": t.get("wafers_with_b", 0),
        "b_only_dies": t.get("b_only_dies", 0), **md.bin_pareto(t), **md.worst_wafers(report.events),
        "part_files": len(report.manifest.tables.get("failmap_dies", [])) if report.manifest else 0,
        **run,
    })
    yield MaterializeResult(asset_key="wafer_maps_png", metadata={
        **md.day_yield(t), "wafers": t.get("wafers", 0), "run_redrawn": report.wafers_redrawn,
        "preview": md.preview_markdown(report.previews),
    })
    yield MaterializeResult(asset_key="wafer_coordinates_json", metadata={
        **md.day_yield(t), "wafers": t.get("wafers", 0), "dies": t.get("dies", 0)})
    yield MaterializeResult(asset_key="failmap_rejects", metadata=md.rejects_by_reason(t))
    if report.manifest is not None and report.events is not None:
        yield from die_row_checks(out, report.manifest, report.events)
        yield wafer_file_check(out, report.manifest, report.events)
    yield match_rate_check(t, failmap_rules.match_rate_warn)


FAILMAP_ASSETS = [failmap_day]
