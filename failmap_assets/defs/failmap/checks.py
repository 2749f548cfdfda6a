"""The fail-map day's checks: specs (partitioned, per day) and their results from the commit."""

from __future__ import annotations

import polars as pl
from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec

from failmap_assets.defs.partitions import daily_partitions
from failmap_assets.pipeline.day_checks import die_rows_verdict, missing_wafer_files
from failmap_assets.storage.day_manifest import DayManifest
from failmap_assets.storage.layout import json_key, png_key
from failmap_assets.storage.object_store import ObjectStore

CHECK_SPECS = [
    AssetCheckSpec(
        "unique_die", asset="failmap_dies", blocking=True, partitions_def=daily_partitions,
        description="One row per die of each test event: no two rows for the same (wafer_token, a_key, x, y).",
    ),
    AssetCheckSpec(
        "dies_complete", asset="failmap_dies", blocking=True, partitions_def=daily_partitions,
        description="Every test event of the day has exactly its dies in the table (A dies + B-only dies): "
        "no rows missing, none left over.",
    ),
    AssetCheckSpec(
        "json_has_png", asset="wafer_coordinates_json", partitions_def=daily_partitions,
        description="Every wafer's latest test event has its JSON, and its PNG unless the map was too large to draw.",
    ),
    AssetCheckSpec(
        "match_rate", asset="failmap_pairs", partitions_def=daily_partitions,
        description="matched / (matched + a_only) above the configured threshold (a warning).",
    ),
]


def die_row_checks(out: ObjectStore, manifest: DayManifest, events: pl.DataFrame) -> list[AssetCheckResult]:
    r = die_rows_verdict(out, manifest, events)
    return [
        AssetCheckResult(
            check_name="unique_die", asset_key="failmap_dies", passed=r.duplicated == 0,
            severity=AssetCheckSeverity.ERROR,
            metadata={"die_rows": r.rows, "duplicated_dies": r.duplicated, "examples": str(r.duplicate_examples)},
        ),
        AssetCheckResult(
            check_name="dies_complete", asset_key="failmap_dies",
            passed=r.missing_events == 0 and r.extra_events == 0, severity=AssetCheckSeverity.ERROR,
            metadata={"test_events": events.height, "events_missing_rows": r.missing_events,
                      "events_with_extra_rows": r.extra_events, "examples": str(r.count_examples),
                      "part_files_missing": str(r.missing_parts[:5])},
        ),
    ]


def wafer_file_check(out: ObjectStore, manifest: DayManifest, events: pl.DataFrame) -> AssetCheckResult:
    day = manifest.day
    pngs, jsons, no_json, no_png = missing_wafer_files(
        out, manifest, events, json_key=lambda t: json_key(day, t), png_key=lambda t: png_key(day, t))
    return AssetCheckResult(
        check_name="json_has_png", asset_key="wafer_coordinates_json", passed=not no_json and not no_png,
        severity=AssetCheckSeverity.ERROR,
        metadata={"png": pngs, "json": jsons, "wafers_without_json": str(no_json[:10]),
                  "wafers_without_png": str(no_png[:10])},
    )


def match_rate_check(totals: dict, threshold: float) -> AssetCheckResult:
    rate = totals.get("match_rate")
    decided = totals.get("pairs", {}).get("matched", 0) + totals.get("pairs", {}).get("a_only", 0)
    return AssetCheckResult(
        check_name="match_rate", asset_key="failmap_pairs", passed=rate is None or rate >= threshold,
        severity=AssetCheckSeverity.WARN,
        metadata={"match_rate": rate if rate is not None else "no decided pairs", "threshold": threshold,
                  "decided": decided},
    )
