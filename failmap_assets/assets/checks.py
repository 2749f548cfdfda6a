"""Asset checks over a whole day's outputs (not just what one run wrote)."""

from __future__ import annotations

from datetime import date

import polars as pl
from dagster import AssetCheckResult, AssetCheckSeverity

from failmap_assets.output_layout import table_dir
from failmap_assets.parquet_io import read_dataset
from failmap_assets.resources.object_store import ObjectStore


def unique_die_check(out: ObjectStore, day: date) -> AssetCheckResult:
    """A die is one row: a retest replaces, a B-only die does not duplicate an A die."""
    dies = read_dataset(out, table_dir("failmap_dies", day))
    if dies is None or dies.height == 0:
        return AssetCheckResult(check_name="unique_die", asset_key="failmap_dies", passed=True, metadata={"dies": 0})
    dup = dies.group_by("wafer_token", "x", "y").len().filter(pl.col("len") > 1)
    return AssetCheckResult(
        check_name="unique_die",
        asset_key="failmap_dies",
        passed=dup.height == 0,
        severity=AssetCheckSeverity.ERROR,
        metadata={"dies": dies.height, "duplicated_dies": dup.height, "examples": str(dup.head(5).rows())},
    )


def json_png_check(out: ObjectStore, day: date) -> AssetCheckResult:
    def stems(kind: str) -> set[str]:
        suffix = f".{kind}"
        return {o.key[len(f"{kind}/{day.isoformat()}/") : -len(suffix)] for o in out.list(f"{kind}/{day.isoformat()}/") if o.key.endswith(suffix)}

    pngs, jsons = stems("png"), stems("json")
    missing_png, missing_json = sorted(jsons - pngs), sorted(pngs - jsons)
    return AssetCheckResult(
        check_name="json_has_png",
        asset_key="wafer_coordinates_json",
        passed=not missing_png and not missing_json,
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "png": len(pngs),
            "json": len(jsons),
            "json_without_png": str(missing_png[:10]),
            "png_without_json": str(missing_json[:10]),
        },
    )
