"""reconcile_sensor: late files, pending A files past their grace, failed reads, deletions.

Dagster wiring of ``discovery/reconcile.py``. Each swept day also gets an
observation on its ``failmap_dies`` / ``stdf_tables`` partition (when it was last
reconciled, how many objects, how many unaccounted), so the UI shows when the
reconcile last covered each day.
"""

from __future__ import annotations

from datetime import UTC
from zoneinfo import ZoneInfo

from dagster import AssetObservation, RunRequest, SensorEvaluationContext, SensorResult, SkipReason, sensor

from failmap_assets.defs.jobs import failmap_day_job, stdf_day_job
from failmap_assets.defs.owners import TEST_ENGINEERING
from failmap_assets.defs.partitions import daily_partitions
from failmap_assets.discovery.reconcile import ReconcileCursor, Watched, plan
from failmap_assets.resources import FailmapStorage, SensorRules
from failmap_assets.sensors import bucket_sensors
from failmap_assets.sensors.bucket_sensors import interval_seconds
from failmap_assets.storage.day_manifest import read_manifest

JOB_OF = {"failmap": failmap_day_job, "stdf": stdf_day_job}
ASSET_OF = {"failmap": "failmap_dies", "stdf": "stdf_tables"}


@sensor(
    name="reconcile_sensor",
    owners=TEST_ENGINEERING,
    jobs=[failmap_day_job, stdf_day_job],
    minimum_interval_seconds=interval_seconds(),
    description=(
        "Every reconcile period, sweeps the day folders of the reconcile window (default 30 days back) and "
        "requests a run for any day with an object its commit does not account for (a late file), a pending "
        "A file past its grace, a failed read to retry, or objects deleted since its commit. Each swept day "
        "gets an observation: when it was last reconciled."
    ),
)
def reconcile_sensor(context: SensorEvaluationContext, storage: FailmapStorage, sensor_rules: SensorRules):
    now = bucket_sensors.current_time()  # looked up at each tick: tests replace the sensors' clock
    tz = ZoneInfo(daily_partitions.timezone)
    fab_now = now.astimezone(tz).replace(tzinfo=None)
    today = fab_now.date()
    out = storage.output_store()
    cursor = ReconcileCursor.decode(context.cursor)
    result = plan(
        cursor,
        [Watched("failmap", [storage.source_a_store(), storage.source_b_store()]),
         Watched("stdf", [storage.stdf_store()])],
        today=today,
        first_day=daily_partitions.start.date(),
        window_days=sensor_rules.reconcile_days,
        period_s=sensor_rules.reconcile_period_seconds,
        time_budget_s=sensor_rules.time_budget_seconds,
        recent_days=sensor_rules.lookback_days,
        read_manifest=lambda pipeline, day: read_manifest(out, pipeline, day)[0],
        fab_now=fab_now,
        wall=lambda: now.timestamp(),
    )
    stamp = now.astimezone(UTC).isoformat()
    observations = [
        AssetObservation(
            asset_key=ASSET_OF[v.pipeline], partition=v.day.isoformat(),
            metadata={"reconciled_at": stamp, "objects_listed": v.listed, "objects_unaccounted": v.unaccounted,
                      "objects_gone": v.gone, "pending_due": v.due, "committed_before": v.committed,
                      "run_requested": v.needs_run},
        )
        for v in result.verdicts if v.swept
    ]
    requests = [
        RunRequest(
            # one run per sweep and day; for a due check, one per commit that fell due
            run_key=(f"reconcile:{v.pipeline}:{v.day}:{result.cursor.sweeps}:{cursor.sweep_started or stamp}"
                     if v.swept else f"reconcile-due:{v.pipeline}:{v.day}:g{v.generation}"),
            job_name=JOB_OF[v.pipeline].name,
            partition_key=v.day.isoformat(),
            tags={"failmap/trigger": "reconcile_sensor", "failmap/day": f"{v.pipeline}:{v.day}",
                  "failmap/objects_count": str(v.unaccounted), "failmap/objects_gone": str(v.gone)},
        )
        for v in result.runs
    ]
    context.log.info(
        f"reconcile: {len(result.verdicts)} day(s) checked, {len(requests)} run(s) requested"
        + ("; sweep complete" if result.swept_all else "")
    )
    if not result.verdicts and not requests:
        return SkipReason("no reconcile sweep due") if result.cursor.encode() == (context.cursor or "") else \
            SensorResult(skip_reason="no reconcile sweep due", cursor=result.cursor.encode())
    return SensorResult(run_requests=requests, asset_events=observations, cursor=result.cursor.encode())
