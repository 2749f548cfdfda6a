"""wafer_summary and lot_summary through a real Dagster instance on local folders: after
the day assets, read back with polars and pyarrow; what the UI shows; a rerun; their
automation condition."""

from __future__ import annotations

import base64
import io
import re
from datetime import date

import polars as pl
import pyarrow.parquet as pq
import pytest
from PIL import Image
from dagster import (
    AssetKey,
    AssetMaterialization,
    DagsterInstance,
    Definitions,
    MetadataValue,
    TableSchema,
    evaluate_automation_conditions,
    instance_for_test,
    materialize,
)

from failmap_assets.defs.failmap.assets import FAILMAP_ASSETS
from failmap_assets.defs.stdf.assets import STDF_ASSETS
from failmap_assets.defs.yield_view.assets import YIELD_ASSETS
from failmap_assets.resources import build_resources
from failmap_assets.storage.layout import SUMMARY_TABLES
from failmap_assets.yield_view.lot_maps import STACKED_LOT_MAPS_COLUMNS
from failmap_assets.yield_view.merged import MERGED_DIES_COLUMNS, MERGED_WAFERS_COLUMNS
from failmap_assets.yield_view.worst_grid import TILE, WORST_WAFERS
from failmap_assets.yield_view.summaries import (
    LOT_SUMMARY_COLUMNS,
    SUMMARY_VERSION,
    WAFER_SUMMARY_COLUMNS,
    schema_of,
)
from tests.support.local_day import land_small_day, local_fab

DAY = date(2026, 1, 11)
AS_OF = {"ops": {"failmap_day": {"config": {"as_of": "2026-01-13 00:00:00"}}}}


@pytest.fixture
def env(tmp_path):
    settings = local_fab(tmp_path)
    land_small_day(tmp_path, DAY, 5)
    with instance_for_test() as instance:
        yield settings, tmp_path / "out", instance


def materialized(result) -> dict[str, dict]:
    return {m.event_specific_data.materialization.asset_key.to_user_string():
            m.event_specific_data.materialization.metadata for m in result.get_asset_materialization_events()}


def worst_grid_of(metadata) -> Image.Image:
    """The worst-wafer grid PNG of a materialization's metadata, opened with Pillow."""
    text = metadata["worst_wafers_maps"].value
    data = base64.b64decode(re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", text).group(1))
    assert len(data) < 200_000
    return Image.open(io.BytesIO(data))


def test_summaries_after_the_days_read_back_and_rerun(env):
    settings, out, instance = env
    resources = build_resources(settings)
    result = materialize([*FAILMAP_ASSETS, *STDF_ASSETS, *YIELD_ASSETS], partition_key=DAY.isoformat(),
                         instance=instance, resources=resources, run_config=AS_OF)
    assert result.success
    meta = materialized(result)

    # read back as a user would: the table folders, with polars and with pyarrow
    wafers = pl.read_parquet(out / "parquet/wafer_summary/**/*.parquet", hive_partitioning=True)
    lots = pq.read_table(out / "parquet/lot_summary").to_pandas()
    assert wafers.drop("date").schema == schema_of(WAFER_SUMMARY_COLUMNS)
    assert set(wafers["date"].cast(pl.String)) == {DAY.isoformat()}
    assert set(wafers["source"]) == {"failmap", "stdf"}
    assert list(lots.columns) == [*LOT_SUMMARY_COLUMNS, "date"]
    assert pq.read_schema(next((out / "parquet/lot_summary").rglob("*.parquet"))).names == list(LOT_SUMMARY_COLUMNS)

    assert set(meta) >= set(SUMMARY_TABLES)
    rows = {"wafer_summary": wafers.height, "lot_summary": len(lots)}
    for table, columns in (("merged_dies", MERGED_DIES_COLUMNS), ("merged_wafers", MERGED_WAFERS_COLUMNS),
                           ("stacked_lot_maps", STACKED_LOT_MAPS_COLUMNS)):
        frame = pl.read_parquet(out / f"parquet/{table}/**/*.parquet", hive_partitioning=True)
        assert frame.drop("date").schema == schema_of(columns) and frame.height > 0
        rows[table] = frame.height
    assert meta["merged_dies"]["merge_rule"].value == "last"
    assert meta["stacked_lot_maps"]["lot_maps"].value == len(list((out / "lot_maps").rglob("*.png"))) > 0
    for table, frame_rows in rows.items():
        m = meta[table]
        assert next(iter(m)) == "yield_pct" and isinstance(m["yield_pct"], type(MetadataValue.float(0.0)))
        assert m["dagster/row_count"].value == frame_rows
        assert m["run_committed"].value is True
    latest = wafers.filter(pl.col("latest"))
    assert meta["wafer_summary"]["yield_pct"].value == pytest.approx(
        round(100 * latest["pass_dies"].sum() / latest["dies"].sum(), 2))
    assert meta["wafer_summary"]["wafers"].value == latest.height
    # the worst wafers drawn small: one PNG in the UI, a tile per wafer (up to 12), lowest yield first
    grid = worst_grid_of(meta["wafer_summary"])
    assert grid.format == "PNG" and grid.size[0] >= 4 * TILE
    assert grid.size[1] > -(-min(latest.height, WORST_WAFERS) // 4) * TILE

    # what the UI shows of the definitions
    graph = YIELD_ASSETS[0]
    for key, columns in (("wafer_summary", WAFER_SUMMARY_COLUMNS), ("lot_summary", LOT_SUMMARY_COLUMNS),
                         ("merged_dies", MERGED_DIES_COLUMNS), ("merged_wafers", MERGED_WAFERS_COLUMNS),
                         ("stacked_lot_maps", STACKED_LOT_MAPS_COLUMNS)):
        spec = graph.specs_by_key[AssetKey(key)]
        schema = spec.metadata["dagster/column_schema"]
        assert isinstance(schema, TableSchema) and [c.name for c in schema.columns] == list(columns)
        assert all(c.description for c in schema.columns)
        assert spec.owners == ["team:yield-engineering"] and spec.code_version == str(SUMMARY_VERSION)
        assert spec.description and spec.group_name == "yield"
    assert {d.asset_key.to_user_string() for d in graph.specs_by_key[AssetKey("wafer_summary")].deps} == {
        "failmap_dies", "stdf_tables"}

    # a rerun of the summaries alone: nothing new to describe, the same tables, the same day figures
    again = materialize(YIELD_ASSETS, partition_key=DAY.isoformat(), instance=instance, resources=resources)
    assert again.success
    m2 = materialized(again)["wafer_summary"]
    assert m2["run_committed"].value is False
    assert m2["yield_pct"] == meta["wafer_summary"]["yield_pct"]
    assert m2["worst_wafers_maps"] == meta["wafer_summary"]["worst_wafers_maps"]   # drawn from the commit
    assert pl.read_parquet(out / "parquet/wafer_summary/**/*.parquet", hive_partitioning=True).equals(wafers)
    forced = materialize(YIELD_ASSETS, partition_key=DAY.isoformat(), instance=instance, resources=resources,
                         run_config={"ops": {"yield_summaries": {"config": {"force": True}}}})
    assert materialized(forced)["lot_summary"]["run_committed"].value is True
    assert pl.read_parquet(out / "parquet/wafer_summary/**/*.parquet", hive_partitioning=True).equals(wafers)
    assert pq.read_table(out / "parquet/lot_summary").to_pandas().equals(lots)


def test_a_day_partition_materialized_requests_that_days_summaries_once():
    defs = Definitions(assets=[*FAILMAP_ASSETS, *STDF_ASSETS, *YIELD_ASSETS], resources=build_resources())
    summaries = [AssetKey(t) for t in SUMMARY_TABLES]
    with DagsterInstance.ephemeral() as instance:
        first = evaluate_automation_conditions(defs=defs, instance=instance)
        assert first.total_requested == 0       # nothing happened yet
        # an old day (a late file, a re-run), not only the latest one
        instance.report_runless_asset_event(AssetMaterialization("stdf_tables", partition="2026-01-05"))
        second = evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
        assert {k: second.get_requested_partitions(k) for k in summaries} == {k: {"2026-01-05"} for k in summaries}
        third = evaluate_automation_conditions(defs=defs, instance=instance, cursor=second.cursor)
        assert third.total_requested == 0


def test_a_late_files_new_summaries_request_the_latest_trend_window_once():
    from datetime import timedelta

    from failmap_assets.defs.partitions import TREND_DAYS, daily_partitions
    from failmap_assets.defs.yield_view.assets import yield_summaries_sensor
    from failmap_assets.defs.yield_view.trends import TRENDS_ASSETS

    defs = Definitions(assets=[*FAILMAP_ASSETS, *STDF_ASSETS, *YIELD_ASSETS, *TRENDS_ASSETS],
                       resources=build_resources())
    trends = AssetKey("yield_trends")
    assert trends in yield_summaries_sensor.asset_selection.resolve(defs.resolve_asset_graph())
    latest = date.fromisoformat(daily_partitions.get_last_partition_key())
    with DagsterInstance.ephemeral() as instance:
        first = evaluate_automation_conditions(defs=defs, instance=instance)
        assert first.get_requested_partitions(trends) == set()
        # a late file of a day three days back: its summaries are committed again
        late = (latest - timedelta(days=3)).isoformat()
        instance.report_runless_asset_event(AssetMaterialization("wafer_summary", partition=late))
        second = evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
        assert second.get_requested_partitions(trends) == {latest.isoformat()}
        # handled: nothing more until the next change
        third = evaluate_automation_conditions(defs=defs, instance=instance, cursor=second.cursor)
        assert third.get_requested_partitions(trends) == set()
        # a day outside the latest window changes no request
        old = (latest - timedelta(days=TREND_DAYS + 2)).isoformat()
        instance.report_runless_asset_event(AssetMaterialization("wafer_summary", partition=old))
        fourth = evaluate_automation_conditions(defs=defs, instance=instance, cursor=third.cursor)
        assert fourth.get_requested_partitions(trends) == set()
        # a fail-map run of a day: first its summaries, not yet the trends (their input is in the making)
        instance.report_runless_asset_event(AssetMaterialization("failmap_dies", partition=late))
        fifth = evaluate_automation_conditions(defs=defs, instance=instance, cursor=fourth.cursor)
        assert fifth.get_requested_partitions(AssetKey("wafer_summary")) == {late}
        assert fifth.get_requested_partitions(trends) == set()
        instance.report_runless_asset_event(AssetMaterialization("wafer_summary", partition=late))
        sixth = evaluate_automation_conditions(defs=defs, instance=instance, cursor=fifth.cursor)
        assert sixth.get_requested_partitions(trends) == {latest.isoformat()}   # then, once they are committed
