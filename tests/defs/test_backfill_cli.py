"""The README's command-line backfill, through a real daemon: `dagster job backfill`
queues one run per day, `dagster-daemon run` dequeues them under the shipped run
queue (every run of a day tagged `failmap/day`), and every day ends committed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus

from failmap_assets.defs.run_coordinator import DAY_TAG, DayRunCoordinator, day_of
from failmap_assets.storage.day_manifest import read_manifest
from failmap_assets.storage.local_store import LocalObjectStore
from tests.support.processes import stop_process
from tests.support.testdata import REPO

BIN = Path(sys.executable).parent


def test_every_kind_of_run_names_its_day():
    assert day_of({"dagster/partition": "2026-01-11"}) == "2026-01-11"
    assert day_of({"dagster/asset_partition_range_start": "2026-01-11",
                   "dagster/asset_partition_range_end": "2026-01-11"}) == "2026-01-11"
    assert day_of({"dagster/asset_partition_range_start": "2026-01-11",
                   "dagster/asset_partition_range_end": "2026-01-12"}) is None
    assert day_of({}) is None


@pytest.mark.slow
def test_readme_backfill_command_runs_every_day_through_the_daemon(tmp_path):
    home, fab = tmp_path / "dagster", tmp_path / "fab"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAILMAP_", "DAGSTER_HOME"))}
    env.update(DAGSTER_HOME=str(home), FAILMAP_HOME=str(fab), FAILMAP_START_DATE="2026-01-01",
               PYTHONPATH=str(REPO))
    run = dict(cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    synth = subprocess.run([str(BIN / "failmap"), "synth", "--days", "2", "--wafers", "6", "--stdf-files", "1",
                            "--start", "2026-01-10", "--seed", "3"], **run)
    assert synth.returncode == 0, synth.stderr[-2000:]
    # the README's command
    backfill = subprocess.run([str(BIN / "dagster"), "job", "backfill", "-w", "workspace.yaml", "-j", "failmap_day_job",
                               "--from", "2026-01-10", "--to", "2026-01-11", "--noprompt"], **run)
    assert backfill.returncode == 0, backfill.stdout[-2000:] + backfill.stderr[-2000:]
    daemon = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"], cwd=REPO, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        with DagsterInstance.from_config(str(home)) as instance:
            assert isinstance(instance.run_coordinator, DayRunCoordinator)
            while time.monotonic() < deadline:
                runs = instance.get_runs()
                if len(runs) == 2 and all(r.status in (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE) for r in runs):
                    break
                time.sleep(1)
            runs = instance.get_runs()
            assert sorted(r.status.value for r in runs) == ["SUCCESS", "SUCCESS"], [r.status for r in runs]
            assert sorted(r.tags[DAY_TAG] for r in runs) == ["2026-01-10", "2026-01-11"]
    finally:
        stop_process(daemon)
    out = LocalObjectStore(fab / "out")
    from datetime import date

    for day in (date(2026, 1, 10), date(2026, 1, 11)):
        manifest, _ = read_manifest(out, "failmap", day)
        assert manifest is not None and manifest.totals["wafers"] > 0
