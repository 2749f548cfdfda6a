"""postgres_sink through a real Dagster instance: after the day assets and the
summaries of a small synthetic day, the PostgreSQL rows are the committed summaries;
a rerun changes nothing; the DSN is nowhere in the logs or metadata; without a DSN the
asset says the sink is off."""

from __future__ import annotations

import importlib
import io
import json
from dataclasses import replace
from datetime import date

import polars as pl
import pytest
from dagster import AssetKey, instance_for_test, materialize

from failmap_assets.defs.failmap.assets import FAILMAP_ASSETS
from failmap_assets.defs.sinks import postgres as sink_defs
from failmap_assets.defs.stdf.assets import STDF_ASSETS
from failmap_assets.defs.yield_view.assets import YIELD_ASSETS
from failmap_assets.resources import build_resources
from failmap_assets.settings import Settings
from failmap_assets.sinks.postgres.connection import SINK_OFF
from failmap_assets.sinks.postgres.schema import SCHEMA_VERSION
from failmap_assets.sinks.postgres.tables import LOT_SUMMARY, WAFER_SUMMARY
from failmap_assets.storage.committed_tables import live_table_files
from failmap_assets.storage.layout import SUMMARY_PIPELINE
from failmap_assets.storage.local_store import LocalObjectStore
from failmap_synth.day import generate_day
from failmap_synth.stdf_writer import build_wafer_sort
from tests.support.postgres_sink import all_rows, rows_of, sort

DAY = date(2026, 1, 11)
AS_OF = {"ops": {"failmap_day": {"config": {"as_of": "2026-01-13 00:00:00"}}}}


def local_settings(tmp_path) -> Settings:
    for sub in ("a", "b", "stdf", "out"):
        (tmp_path / sub).mkdir(exist_ok=True)
    return replace(Settings.from_env(), source_a=str(tmp_path / "a"), source_b=str(tmp_path / "b"),
                   source_stdf=str(tmp_path / "stdf"), output=str(tmp_path / "out"), postgres_dsn="",
                   postgres_pg_environment=False)


def sink_metadata(result) -> dict:
    (m,) = [e.event_specific_data.materialization for e in result.get_asset_materialization_events()
            if e.event_specific_data.materialization.asset_key == AssetKey("postgres_sink")]
    return m.metadata


def committed(out, table: str) -> pl.DataFrame:
    store = LocalObjectStore(out)
    keys = live_table_files(store, SUMMARY_PIPELINE, DAY)[table]
    return pl.concat([pl.read_parquet(io.BytesIO(store.get(k))) for k in keys])


def everything_logged(instance) -> str:
    """Every event of every run (messages, metadata, errors, run config) as text."""
    texts = []
    for run in instance.get_runs():
        texts.append(json.dumps(run.run_config, default=str))
        for record in instance.all_logs(run.run_id):
            texts.append(str(record))
    return "\n".join(texts)


@pytest.mark.slow
def test_the_sink_loads_the_committed_summaries_through_dagster(tmp_path, sink_db):
    settings = replace(local_settings(tmp_path), postgres_dsn=sink_db.dsn())
    stores = {sub: LocalObjectStore(tmp_path / sub) for sub in ("a", "b", "stdf")}
    for o in generate_day(DAY, 5, 4, broken=False, dies_range=(150, 400), typical_dies=250):
        stores[o.bucket].put(o.key, o.data)
    stores["stdf"].put("20260111/S1_03_20260111_090000.stdf",
                       build_wafer_sort(9, dies=200, tests_per_die=4, lot_id="S1", wafer_id="03").data)
    resources = build_resources(settings)
    with instance_for_test() as instance:
        result = materialize([*FAILMAP_ASSETS, *STDF_ASSETS, *YIELD_ASSETS, *sink_defs.SINK_ASSETS],
                             partition_key=DAY.isoformat(), instance=instance, resources=resources, run_config=AS_OF)
        assert result.success
        meta = sink_metadata(result)
        wafers, lots = committed(tmp_path / "out", "wafer_summary"), committed(tmp_path / "out", "lot_summary")
        assert wafers.height > 0 and set(wafers["source"]) == {"failmap", "stdf"}
        assert rows_of(sink_db, WAFER_SUMMARY, DAY).equals(sort(wafers, WAFER_SUMMARY))
        assert rows_of(sink_db, LOT_SUMMARY, DAY).equals(sort(lots, LOT_SUMMARY))
        assert meta["postgres_sink"].value == "on"
        assert meta["postgres_target"].value == f"{sink_db.user}@{sink_db.host}:{sink_db.port}/{sink_db.db}"
        assert meta["schema_version"].value == SCHEMA_VERSION and meta["schema_migrated_from"].value == 0
        assert meta["dagster/row_count"].value == wafers.height + lots.height
        assert meta["loaded"].value["wafer_summary"]["inserted"] == wafers.height
        # the pattern assets were not run: their tables are reported, not loaded
        assert set(meta["not_loaded"].value) == {"wafer_signatures", "wafer_anomaly", "similar_wafers"}

        # a rerun of the sink alone: the same rows, nothing inserted, updated or deleted
        before = {t: all_rows(sink_db, t) for t in ("wafer_summary", "lot_summary")}
        again = materialize(sink_defs.SINK_ASSETS, partition_key=DAY.isoformat(), instance=instance,
                            resources=resources)
        assert again.success
        loaded = sink_metadata(again)["loaded"].value
        assert all(t["inserted"] == t["updated"] == t["deleted"] == 0 for t in loaded.values())
        assert {t: all_rows(sink_db, t) for t in before} == before

        # the DSN and its password appear nowhere Dagster recorded anything
        logged = everything_logged(instance)
        assert meta["postgres_target"].value in logged     # the metadata is in what was searched
        assert sink_db.password not in logged and sink_db.dsn() not in logged


def test_a_failed_connection_fails_the_run_without_the_password(tmp_path, sink_db):
    dsn = sink_db.dsn().replace(sink_db.password, "wrong-pw-0815")
    settings = replace(local_settings(tmp_path), postgres_dsn=dsn)
    with instance_for_test() as instance:
        result = materialize(sink_defs.SINK_ASSETS, partition_key=DAY.isoformat(), instance=instance,
                             resources=build_resources(settings), raise_on_error=False)
        assert not result.success
        logged = everything_logged(instance)
        assert "cannot connect to PostgreSQL" in logged and "password authentication failed" in logged
        assert "wrong-pw-0815" not in logged


def test_without_a_dsn_the_sink_is_off_and_says_so(tmp_path):
    with instance_for_test() as instance:
        result = materialize(sink_defs.SINK_ASSETS, partition_key=DAY.isoformat(), instance=instance,
                             resources=build_resources(local_settings(tmp_path)))
        assert result.success
        assert sink_metadata(result)["postgres_sink"].value == SINK_OFF


def test_the_description_and_automation_follow_the_environment(monkeypatch):
    try:
        for name in ("FAILMAP_POSTGRES_DSN", "PGHOST", "PGDATABASE", "PGSERVICE"):
            monkeypatch.delenv(name, raising=False)
        off = importlib.reload(sink_defs).postgres_sink
        assert off.descriptions_by_key[AssetKey("postgres_sink")].startswith(SINK_OFF)
        assert off.automation_conditions_by_key.get(AssetKey("postgres_sink")) is None
        monkeypatch.setenv("FAILMAP_POSTGRES_DSN", "host=db.fab password=pw-never-shown dbname=yield")
        on = importlib.reload(sink_defs).postgres_sink
        description = on.descriptions_by_key[AssetKey("postgres_sink")]
        assert SINK_OFF not in description and "pw-never-shown" not in description
        assert on.automation_conditions_by_key.get(AssetKey("postgres_sink")) is not None
        assert [d.asset_key.to_user_string() for d in on.specs_by_key[AssetKey("postgres_sink")].deps] == [
            "wafer_summary", "lot_summary", "wafer_signatures", "wafer_anomaly", "similar_wafers"]
    finally:
        monkeypatch.undo()
        importlib.reload(sink_defs)


def test_the_sink_follows_the_pattern_assets_of_its_day(monkeypatch):
    from dagster import AssetMaterialization, DagsterInstance, Definitions, evaluate_automation_conditions

    from failmap_assets.defs.patterns.assets import PATTERNS_ASSETS

    try:
        monkeypatch.setenv("FAILMAP_POSTGRES_DSN", "host=db.fab dbname=yield")
        on = importlib.reload(sink_defs)
        defs = Definitions(assets=[*FAILMAP_ASSETS, *STDF_ASSETS, *YIELD_ASSETS, *PATTERNS_ASSETS, *on.SINK_ASSETS],
                           resources=build_resources())
        sink = AssetKey("postgres_sink")
        with DagsterInstance.ephemeral() as instance:
            cursor = evaluate_automation_conditions(defs=defs, instance=instance).cursor
            # a day's signatures, then its anomaly scores (an output of the pattern_matches multi-asset)
            for asset, day in (("wafer_signatures", "2026-01-05"), ("wafer_anomaly", "2026-01-06")):
                instance.report_runless_asset_event(AssetMaterialization(asset, partition=day))
                result = evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
                assert result.get_requested_partitions(sink) == {day}, asset
                cursor = result.cursor
    finally:
        monkeypatch.undo()
        importlib.reload(sink_defs)
