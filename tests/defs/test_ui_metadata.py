"""What the UI shows about every definition: descriptions, owners, code versions,
column schemas, and the day's yield first on every day materialization."""

from __future__ import annotations

import polars as pl
from dagster import MetadataValue, TableSchema

from failmap_assets.defs import metadata as md
from failmap_assets.pipeline import day_state as st

TABLE_ASSETS = {"bucket_a_objects", "bucket_b_objects", "failmap_pairs", "failmap_dies", "failmap_rejects",
                "stdf_objects", "stdf_tables", "stdf_rejects", "wafer_summary", "lot_summary"}


def _repo():
    from failmap_assets.definitions import defs
    return defs.get_repository_def()


def test_every_asset_check_job_schedule_and_sensor_is_described():
    repo = _repo()
    graph = repo.asset_graph
    for key in graph.get_all_asset_keys():
        assert graph.get(key).description, key
    for check in graph.asset_check_keys:
        assert graph.get_check_spec(check).description, check
    for defn in [*repo.get_all_jobs(), *repo.schedule_defs, *repo.sensor_defs]:
        if not defn.name.startswith("__"):
            assert defn.description, defn.name


def test_every_computed_asset_has_an_owner_and_a_code_version_and_tables_their_columns():
    graph = _repo().asset_graph
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        name = key.to_user_string()
        if not node.is_materializable:   # webhook_deliveries: observed, not computed
            continue
        assert node.owners, name
        assert node.code_version, name
        schema = node.metadata.get("dagster/column_schema")
        if name in TABLE_ASSETS:
            assert isinstance(schema, TableSchema) and schema.columns, name
    dies = graph.get(next(k for k in graph.get_all_asset_keys() if k.to_user_string() == "failmap_dies"))
    assert {"wafer_token", "x", "y", "bin", "pass", "latest"} <= {c.name for c in dies.metadata["dagster/column_schema"].columns}


def test_yield_pct_is_the_first_entry_and_absent_on_a_day_without_dies():
    day = {"yield": 0.8125, "wafers": 2, "dies": 16, "die_rows": 16, "rejects": 1, "warnings": 2}
    for figures in (md.wafer_figures(day), md.rejects_by_reason(day)):
        assert next(iter(figures)) == "yield_pct"
        assert figures["yield_pct"] == MetadataValue.float(81.25)
    assert md.rejects_by_reason(day)["dagster/row_count"] == MetadataValue.int(3)
    empty = {"yield": None, "wafers": 0, "dies": 0}
    assert "yield_pct" not in md.wafer_figures(empty) and "yield_pct" not in md.rejects_by_reason(empty)


def test_worst_wafers_lists_the_lowest_yield_latest_events_first_with_their_top_loss_bin():
    cols = ("wafer_token", "dies", "pass_dies", "bins", "bin_counts", "bin_pass", "bin_names", "latest")
    events = pl.DataFrame([
        # W1: bin 1 passes with most dies; its top loss bin is 7
        {"wafer_token": "W1", "dies": 10, "pass_dies": 9, "bins": [1, 7], "bin_counts": [9, 1],
         "bin_pass": [True, False], "bin_names": ["PASS", None], "latest": True},
        {"wafer_token": "W2", "dies": 10, "pass_dies": 2, "bins": [1, 7, 9], "bin_counts": [2, 3, 5],
         "bin_pass": [True, False, False], "bin_names": ["PASS", "SHORT", "OPEN"], "latest": True},
        {"wafer_token": "W2", "dies": 10, "pass_dies": 0, "bins": [7], "bin_counts": [10],
         "bin_pass": [False], "bin_names": [None], "latest": False},
        # state of an older version: no verdicts, the largest bin
        {"wafer_token": "W4", "dies": 4, "pass_dies": 3, "bins": [1, 5], "bin_counts": [3, 1],
         "bin_pass": None, "bin_names": None, "latest": True},
        {"wafer_token": "W3", "dies": 0, "pass_dies": 0, "bins": [], "bin_counts": [],
         "bin_pass": [], "bin_names": [], "latest": True},
    ], schema={k: st.EVENTS_SCHEMA[k] for k in cols})
    lines = md.worst_wafers(events)["worst_wafers"].value.splitlines()
    assert lines[0] == "| wafer | yield | dies | top loss bin |"
    assert lines[2:] == ["| W2 | 20.00% | 10 | 9 OPEN (5 dies) |", "| W4 | 75.00% | 4 | 1 (3 dies) |",
                         "| W1 | 90.00% | 10 | 7 (1 dies) |"]
    assert md.worst_wafers(events.clear()) == {}


def test_every_job_schedule_and_sensor_has_owners_where_dagster_takes_them():
    import inspect

    from dagster import AutomationConditionSensorDefinition, RunStatusSensorDefinition

    repo = _repo()
    # Dagster 1.13 takes no owners on these two kinds: when it does, this fails and they get theirs
    without = (RunStatusSensorDefinition, AutomationConditionSensorDefinition)
    assert all("owners" not in inspect.signature(kind).parameters for kind in without)
    named = [d for d in [*repo.get_all_jobs(), *repo.schedule_defs, *repo.sensor_defs] if not d.name.startswith("__")]
    assert {d.name for d in named} >= {"daily_close", "daily_close_job", "bucket_a_sensor", "yield_summaries_sensor"}
    for defn in named:
        if isinstance(defn, without):
            continue
        assert defn.owners and all(o.startswith("team:") for o in defn.owners), defn.name
