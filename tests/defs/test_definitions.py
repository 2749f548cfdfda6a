"""The whole Definitions loads, and Dagster's own validation accepts the code location."""

from __future__ import annotations

import os
import subprocess
import sys

from dagster import Definitions

from tests.support.testdata import REPO


def test_definitions_load_with_every_asset_job_sensor_and_schedule():
    from failmap_assets.definitions import defs

    assert isinstance(defs, Definitions)
    repo = defs.get_repository_def()
    keys = {k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()}
    assert {
        "bucket_a_objects", "bucket_b_objects", "failmap_pairs", "failmap_dies",
        "wafer_maps_png", "wafer_coordinates_json", "failmap_rejects",
        "stdf_objects", "stdf_tables", "stdf_wafer_maps", "wafer_summary", "lot_summary", "webhook_deliveries",
        "merged_dies", "merged_wafers", "stacked_lot_maps", "postgres_sink",
        "wafer_signatures", "pattern_index", "similar_wafers", "wafer_anomaly",
    } <= keys
    assert {j.name for j in repo.get_all_jobs()} >= {"failmap_day_job", "stdf_day_job", "yield_summaries_job",
                                                     "daily_close_job", "wafer_signatures_job", "pattern_index_job",
                                                     "pattern_matches_job"}
    assert {s.name for s in repo.sensor_defs} == {"bucket_a_sensor", "bucket_b_sensor", "stdf_sensor", "reconcile_sensor",
                                                  "yield_summaries_sensor", "webhook_success_sensor",
                                                  "webhook_failure_sensor", "postgres_sink_sensor", "patterns_sensor"}
    assert {s.name for s in repo.schedule_defs} == {"daily_close"}
    checks = {k.name for k in repo.asset_graph.asset_check_keys}
    assert {"match_rate", "unique_die", "json_has_png"} <= checks


def test_dagster_definitions_validate_accepts_the_workspace(tmp_path):
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    bin_dir = os.path.dirname(sys.executable)
    proc = subprocess.run(
        [os.path.join(bin_dir, "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "code location name" not in out.lower(), out[-3000:]


def test_shipped_instance_config_loads_with_run_queue_limits(tmp_path):
    import shutil

    from dagster import DagsterInstance

    shutil.copy(REPO / "deploy" / "dagster.yaml", tmp_path / "dagster.yaml")
    with DagsterInstance.from_config(str(tmp_path)) as instance:
        settings = instance.get_concurrency_config().run_queue_config
        assert settings.max_concurrent_runs == 2
        keys = {limit["key"] for limit in settings.tag_concurrency_limits}
        assert {"failmap/pipeline", "failmap/day", "dagster/backfill"} <= keys
