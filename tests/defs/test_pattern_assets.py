"""The pattern assets through a real Dagster instance on local folders: a synthetic day's
signatures, the index, the matches, read back; the index rebuild's concurrency pool
holds a second rebuild until the slot is free."""

from __future__ import annotations

import shutil
import threading
from datetime import date

import polars as pl
import pytest
from dagster import AssetKey, DagsterInstance, TableSchema, instance_for_test, materialize

from failmap_assets.defs.failmap.assets import FAILMAP_ASSETS
from failmap_assets.defs.patterns.assets import INDEX_POOL, PATTERNS_ASSETS, pattern_index
from failmap_assets.defs.stdf.assets import STDF_ASSETS
from failmap_assets.patterns.tables import ANOMALY_COLUMNS, SIGNATURE_COLUMNS, SIMILAR_COLUMNS, schema_of
from failmap_assets.pipeline import pattern_index as pix
from failmap_assets.resources import build_resources
from failmap_assets.storage.local_store import LocalObjectStore
from tests.support.local_day import land_small_day, local_fab
from tests.support.testdata import REPO

DAY = date(2026, 1, 11)
AS_OF = {"ops": {"failmap_day": {"config": {"as_of": "2026-01-13 00:00:00"}}}}
SIGNATURES, INDEX, MATCHES = PATTERNS_ASSETS


@pytest.fixture
def env(tmp_path):
    settings = local_fab(tmp_path)
    land_small_day(tmp_path, DAY, 8)
    with instance_for_test(overrides={"concurrency": {"pools": {"default_limit": 1}}}) as instance:
        yield settings, tmp_path / "out", instance


def materialized(result) -> dict[str, dict]:
    return {m.event_specific_data.materialization.asset_key.to_user_string():
            m.event_specific_data.materialization.metadata for m in result.get_asset_materialization_events()}


def test_signatures_index_and_matches_through_dagster(env):
    settings, out, instance = env
    resources = build_resources(settings)
    days = materialize([*FAILMAP_ASSETS, *STDF_ASSETS, SIGNATURES], partition_key=DAY.isoformat(),
                       instance=instance, resources=resources, run_config=AS_OF)
    assert days.success
    sig_meta = materialized(days)["wafer_signatures"]
    sigs = pl.read_parquet(out / "parquet/wafer_signatures/**/*.parquet", hive_partitioning=True)
    assert sigs.drop("date").schema == pl.Schema(schema_of(SIGNATURE_COLUMNS))
    assert sig_meta["dagster/row_count"].value == sigs.height > 0
    assert sum(sig_meta["labels"].value.values()) == sigs.height
    assert sig_meta["too_small"].value == sigs.filter(pl.col("label") == "too_small").height
    assert set(sigs["source"]) == {"failmap", "stdf"}

    built = materialize([INDEX], instance=instance, resources=resources)
    assert built.success
    meta = materialized(built)["pattern_index"]
    products = pix.indexed_products(LocalObjectStore(out))
    assert meta["products"].value == len(products) > 0 and meta["rebuilt"].value == len(products)
    assert "| product | version |" in meta["versions"].value
    assert "| product | version | built at |" in meta["history"].value
    assert meta["stale_signature_days"].value.startswith("none: every committed day is signed")
    # nothing changed: a second round keeps every version
    again = materialized(materialize([INDEX], instance=instance, resources=resources))["pattern_index"]
    assert again["rebuilt"].value == 0 and "kept" in again["versions"].value

    matched = materialize([MATCHES], partition_key=DAY.isoformat(), instance=instance, resources=resources)
    assert matched.success
    m = materialized(matched)
    similar = pl.read_parquet(out / "parquet/similar_wafers/**/*.parquet", hive_partitioning=True)
    scores = pl.read_parquet(out / "parquet/wafer_anomaly/**/*.parquet", hive_partitioning=True)
    assert similar.drop("date").schema == pl.Schema(schema_of(SIMILAR_COLUMNS))
    assert scores.drop("date").schema == pl.Schema(schema_of(ANOMALY_COLUMNS))
    assert m["wafer_anomaly"]["dagster/row_count"].value == scores.height == sigs.height
    assert m["similar_wafers"]["dagster/row_count"].value == similar.height
    # one day only: every similar wafer is of the same day, tested earlier
    assert (similar["similar_day"] == DAY).all()

    # what the UI shows of the definitions
    for key, columns in (("wafer_signatures", SIGNATURE_COLUMNS), ("similar_wafers", SIMILAR_COLUMNS),
                         ("wafer_anomaly", ANOMALY_COLUMNS)):
        defn = next(a for a in PATTERNS_ASSETS if AssetKey(key) in a.keys)
        spec = defn.specs_by_key[AssetKey(key)]
        schema = spec.metadata["dagster/column_schema"]
        assert isinstance(schema, TableSchema) and [c.name for c in schema.columns] == list(columns)
        assert spec.owners and spec.code_version and spec.description and spec.group_name == "patterns"


def test_index_rebuilds_wait_for_the_pool_slot(env):
    """A second rebuild waits while another run holds the pool's one slot, then runs."""
    settings, out, instance = env
    resources = build_resources(settings)
    assert pattern_index.op.pool == INDEX_POOL
    store = LocalObjectStore(out)
    from tests.support.pattern_days import commit_signature_day, signature_rows
    commit_signature_day(store, DAY, signature_rows(DAY, 20))

    storage = instance.event_log_storage
    assert storage.supports_global_concurrency_limits
    storage.set_concurrency_slots(INDEX_POOL, 1)
    claim = storage.claim_concurrency_slot(INDEX_POOL, "other-rebuild", "pattern_index")
    assert claim.is_claimed   # another run's rebuild holds the only slot

    result: list = []
    waiting = threading.Thread(target=lambda: result.append(
        materialize([INDEX], instance=instance, resources=resources, raise_on_error=False)))
    waiting.start()
    # the second rebuild's step queues for the slot and never starts its work meanwhile
    for _ in range(600):
        info = storage.get_concurrency_info(INDEX_POOL)
        if info.pending_step_count > 0:
            break
        waiting.join(0.1)
    assert storage.get_concurrency_info(INDEX_POOL).pending_step_count == 1
    assert pix.read_pointer(store, "P1")[0] is None      # nothing switched while it waits
    storage.free_concurrency_slots_for_run("other-rebuild")
    waiting.join(300)
    assert not waiting.is_alive() and result[0].success
    assert pix.read_pointer(store, "P1")[0]["version"].startswith("v000001-")


def test_shipped_instance_config_gives_the_pool_one_slot(tmp_path):
    shutil.copy(REPO / "deploy" / "dagster.yaml", tmp_path / "dagster.yaml")
    with DagsterInstance.from_config(str(tmp_path)) as instance:
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1


def test_patterns_follow_their_days_through_the_automation_conditions():
    """The patterns sensor's conditions, evaluated on a real instance: a day's fail-map
    run requests its signatures; new signatures request one index rebuild (however many
    days changed), then, once it is over, each changed day's matches; a rebuild alone
    requests no matches."""
    from dagster import AssetMaterialization, Definitions, evaluate_automation_conditions

    from failmap_assets.defs.patterns.assets import patterns_sensor

    defs = Definitions(assets=[*FAILMAP_ASSETS, *STDF_ASSETS, *PATTERNS_ASSETS], sensors=[patterns_sensor],
                       resources=build_resources())
    sig, index, similar, scores = (AssetKey(k) for k in ("wafer_signatures", "pattern_index", "similar_wafers",
                                                          "wafer_anomaly"))
    assert {sig, index, similar, scores} <= patterns_sensor.asset_selection.resolve(defs.resolve_asset_graph())
    d1, d2 = "2026-01-05", "2026-01-06"

    def requested(result) -> dict:
        return {k.to_user_string(): result.get_requested_partitions(k) for k in (sig, index, similar, scores)
                if result.get_requested_partitions(k)}

    with DagsterInstance.ephemeral() as instance:
        tick = evaluate_automation_conditions(defs=defs, instance=instance)
        assert tick.total_requested == 0
        instance.report_runless_asset_event(AssetMaterialization("failmap_dies", partition=d1))
        tick = evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
        assert requested(tick) == {"wafer_signatures": {d1}}
        # two days' signatures (a backfill): one rebuild, the matches wait for it
        for d in (d1, d2):
            instance.report_runless_asset_event(AssetMaterialization("wafer_signatures", partition=d))
        tick = evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
        assert requested(tick) == {"pattern_index": {None}}
        instance.report_runless_asset_event(AssetMaterialization("pattern_index"))
        tick = evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
        assert requested(tick) == {"similar_wafers": {d1, d2}, "wafer_anomaly": {d1, d2}}
        tick = evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
        assert tick.total_requested == 0
        # a rebuild on its own (forced from the UI) asks for no day's matches
        instance.report_runless_asset_event(AssetMaterialization("pattern_index"))
        tick = evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
        assert tick.total_requested == 0
        # a late file re-signs one day: the rebuild first, then that day's matches only
        instance.report_runless_asset_event(AssetMaterialization("wafer_signatures", partition=d2))
        tick = evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
        assert requested(tick) == {"pattern_index": {None}}
        tick = evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
        assert tick.total_requested == 0   # still waiting for the rebuild
        instance.report_runless_asset_event(AssetMaterialization("pattern_index"))
        tick = evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
        assert requested(tick) == {"similar_wafers": {d2}, "wafer_anomaly": {d2}}
