"""webhook_success_sensor, webhook_failure_sensor: a signed JSON document per finished day run.

Run status sensors rather than a hook in the op: they run in the daemon after the
run's status is final, so a slow or down receiver never holds up, slows or fails a
data run. They watch every job of the code location and keep the runs of one fab
day of a pipeline, whatever started them (a sensor, the schedule, the UI, a
backfill): the day comes from the run's partition tags (``run_coordinator.day_of``)
and the pipelines from the assets the run planned to materialize (``daily_close``
covers both: one document each).

Dagster hands a run status sensor up to 5 finished runs per tick and evaluates a
tick for at most 60 s; one run's deliveries (to every URL at once) take at most
``delivery.max_seconds`` (10.5 s with the defaults), so a hanging receiver still
lets the tick finish. Each delivery is logged (the tick's log) and recorded as an
observation of ``webhook_deliveries`` on the day's partition. The secret is never
logged nor recorded; URLs are shown without userinfo and query.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from dagster import (
    AssetObservation,
    DagsterEventType,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunFailureSensorContext,
    RunStatusSensorContext,
    SkipReason,
    run_failure_sensor,
    run_status_sensor,
)

from failmap_assets.defs import metadata as md
from failmap_assets.defs.run_coordinator import day_of
from failmap_assets.defs.webhooks import WEBHOOK_DELIVERIES
from failmap_assets.notify import delivery, payload, signing
from failmap_assets.resources import Webhooks
from failmap_assets.sensors.bucket_sensors import interval_seconds
from failmap_assets.settings import Settings, secret_values

NOT_CONFIGURED = "FAILMAP_WEBHOOK_URLS is not set: no completion webhook is sent"


def _description(outcome: str) -> str:
    text = (f"POSTs a signed JSON document (day, pipeline, counts, yield, run link{', error' if outcome == 'fails' else ''}) "
            f"to every FAILMAP_WEBHOOK_URLS URL when a fail-map or STDF day run {outcome} (backfill runs too); "
            "each delivery is recorded on webhook_deliveries.")
    return text if Settings.from_env().webhook_urls else f"{NOT_CONFIGURED} (this sensor does nothing). {text}"


def _default_status() -> DefaultSensorStatus:
    # configured webhooks are meant to fire without someone turning the sensors on
    return DefaultSensorStatus.RUNNING if Settings.from_env().webhook_urls else DefaultSensorStatus.STOPPED


def run_pipelines(instance, run_id: str) -> list[str]:
    """The pipelines whose day the run set out to materialize (planned before any step
    ran, so a run that failed early has them too)."""
    records = instance.get_records_for_run(run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION_PLANNED).records
    keys = {r.event_log_entry.dagster_event.event_specific_data.asset_key.to_user_string() for r in records}
    return sorted({payload.PIPELINE_OF_ASSET[k] for k in keys if k in payload.PIPELINE_OF_ASSET})


def run_metadata(instance, run_id: str) -> dict[str, dict[str, object]]:
    """The run's materialization metadata, asset -> entry -> plain value."""
    out: dict[str, dict[str, object]] = {}
    for record in instance.get_records_for_run(run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION).records:
        mat = record.event_log_entry.asset_materialization
        out[mat.asset_key.to_user_string()] = {k: getattr(v, "value", v) for k, v in mat.metadata.items()}
    return out


def failure_parts(context: RunFailureSensorContext) -> list[str]:
    """Each failed step's root error (the user's exception, not Dagster's wrapper),
    else the run failure's message (a run that failed outside any step)."""
    parts = []
    for event in context.get_step_failure_events():
        error = event.event_specific_data.error
        while error is not None and error.cause is not None:
            error = error.cause
        if error is not None:
            parts.append(f"step {event.step_key}: {error.message.strip()}")
    return parts or [context.failure_event.message or ""]


def notify(context: RunStatusSensorContext, webhooks: Webhooks, *, succeeded: bool, error_parts: list[str]):
    run = context.dagster_run
    urls = webhooks.url_list()
    if not urls:
        return SkipReason(NOT_CONFIGURED)
    day = day_of(run.tags)
    pipelines = run_pipelines(context.instance, run.run_id) if day else []
    if not pipelines:
        context.log.info(f"run {run.run_id} ({run.job_name}) is not the run of one fab day of a pipeline: no webhook")
        return None  # None, not a SkipReason: Dagster then goes on to the tick's next run
    if not webhooks.secret:
        context.log.warning("FAILMAP_WEBHOOK_SECRET is not set: webhook requests go unsigned")
    record = context.instance.get_run_record_by_id(run.run_id)
    finished = record.end_time if record and record.end_time else time.time()
    metadata = run_metadata(context.instance, run.run_id)
    error = None if succeeded else payload.error_summary(error_parts, [webhooks.secret, *secret_values()])
    status = "succeeded" if succeeded else "failed"
    for pipeline in pipelines:
        doc = payload.document(
            day=day, pipeline=pipeline, succeeded=succeeded, run_id=run.run_id, job=run.job_name,
            finished_at=datetime.fromtimestamp(finished, UTC).isoformat(), metadata=metadata,
            ui_url=webhooks.ui_url, error=error,
        )
        body = payload.encode(doc)
        headers = signing.headers(body, secret=webhooks.secret, timestamp=int(time.time()), event=doc["event"],
                                  delivery_id=f"{run.run_id}:{pipeline}")
        results = delivery.post_all(urls, body, headers, timeout=webhooks.timeout_seconds,
                                    retries=webhooks.retries, backoff=webhooks.backoff_seconds)
        for r in results:
            line = (f"webhook {pipeline} {day} run {status} -> {r.url}: "
                    + (f"HTTP {r.status}" if r.delivered else f"not delivered ({r.error})")
                    + f", {r.attempts} attempt(s), {r.seconds:.2f} s")
            (context.log.info if r.delivered else context.log.warning)(line)
        context.instance.report_runless_asset_event(AssetObservation(
            asset_key=WEBHOOK_DELIVERIES.key, partition=day,
            metadata=md.delivery_metadata(pipeline=pipeline, run_id=run.run_id, status=status,
                                          signed=bool(webhooks.secret), deliveries=results),
        ))
    return None


@run_status_sensor(
    run_status=DagsterRunStatus.SUCCESS,
    name="webhook_success_sensor",
    minimum_interval_seconds=interval_seconds(),
    description=_description("succeeds"),
    default_status=_default_status(),
)
def webhook_success_sensor(context: RunStatusSensorContext, webhooks: Webhooks):
    return notify(context, webhooks, succeeded=True, error_parts=[])


@run_failure_sensor(
    name="webhook_failure_sensor",
    minimum_interval_seconds=interval_seconds(),
    description=_description("fails"),
    default_status=_default_status(),
)
def webhook_failure_sensor(context: RunFailureSensorContext, webhooks: Webhooks):
    return notify(context, webhooks, succeeded=False, error_parts=failure_parts(context))
