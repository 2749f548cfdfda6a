"""The webhook sensors through real Dagster: real day runs on a temporary instance, each
sensor evaluated as the daemon evaluates it (``evaluate_tick`` from its cursor), a real
HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import replace

import pytest
from dagster import AssetKey, Definitions, build_sensor_context, instance_for_test, materialize

from failmap_assets.definitions import ALL_ASSETS
from failmap_assets.defs.jobs import JOBS
from failmap_assets.defs.stdf.assets import STDF_ASSETS
from failmap_assets.notify import delivery
from failmap_assets.resources import Webhooks, build_resources
from failmap_assets.sensors import webhook_sensors
from failmap_assets.sensors.webhook_sensors import NOT_CONFIGURED, webhook_failure_sensor, webhook_success_sensor
from failmap_assets.settings import Settings
from failmap_assets.storage.local_store import LocalObjectStore
from tests.support.contract_examples import A_EXAMPLE, B_EXAMPLE
from tests.support.webhook_receiver import start_receiver, stop_receiver

SECRET = "whsec-Qm9vYmFy-91c2"
DAY = "2026-01-11"
AS_OF = {"ops": {"failmap_day": {"config": {"as_of": "2026-01-13 00:00:00"}}}}
UI = "http://dagster.example:3000/"


@pytest.fixture(scope="module")
def receiver():
    rec, thread = start_receiver()
    yield rec
    stop_receiver(rec, thread)


def settings_for(tmp_path, output=None) -> Settings:
    for sub in ("a", "b", "stdf", "out"):
        (tmp_path / sub).mkdir(exist_ok=True)
    return replace(Settings.from_env(), source_a=str(tmp_path / "a"), source_b=str(tmp_path / "b"),
                   source_stdf=str(tmp_path / "stdf"), output=output or str(tmp_path / "out"))


def job(settings: Settings, name: str):
    """A job of the code location, as defined there, with these settings' resources."""
    return Definitions(assets=ALL_ASSETS, jobs=JOBS, resources=build_resources(settings)).resolve_job_def(name)


def tick(sensor, instance, webhooks: Webhooks, cursor: str | None):
    return sensor.evaluate_tick(build_sensor_context(instance=instance, cursor=cursor,
                                                     resources={"webhooks": webhooks}))


def armed(sensor, instance) -> str:
    """The cursor of a sensor turned on now (its first tick only notes where the event log is)."""
    first = tick(sensor, instance, Webhooks(), None)
    assert first.skip_message.startswith("Initiating")
    return first.cursor


def observations(instance) -> list[dict]:
    records = instance.fetch_observations(AssetKey("webhook_deliveries"), limit=100).records
    return [{"partition": r.partition_key, **{k: getattr(v, "value", v) for k, v in r.asset_observation.metadata.items()}}
            for r in records]


def verify(request, secret: str = SECRET) -> dict:
    """The receiver's check: recompute the HMAC of the exact body bytes."""
    ts = request.headers["x-failmap-timestamp"]
    expected = "sha256=" + hmac.new(secret.encode(), f"{ts}.".encode() + request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers["x-failmap-signature"], expected)
    assert abs(int(ts) - time.time()) < 60
    return json.loads(request.body)


def test_a_succeeded_day_run_posts_its_signed_figures_to_every_url(tmp_path, receiver, capfd):
    settings = settings_for(tmp_path)
    LocalObjectStore(tmp_path / "a").put("20260111/N4A123.1_07P_20260111_143025.txt", A_EXAMPLE)
    LocalObjectStore(tmp_path / "b").put("20260111/N4A123.1_07P_20260111_143030.txt", B_EXAMPLE)
    credentialed = receiver.url("/ok").replace("http://", "http://ops:hook-pw@") + "?token=q-9f2e"
    hooks = Webhooks(urls=f"{credentialed},{receiver.url('/also')}", secret=SECRET, ui_url=UI)
    with instance_for_test() as instance:
        cursor = armed(webhook_success_sensor, instance)
        result = job(settings, "failmap_day_job").execute_in_process(instance=instance, partition_key=DAY,
                                                                      run_config=AS_OF)
        assert result.success
        sent_before = len(receiver.requests)
        data = tick(webhook_success_sensor, instance, hooks, cursor)

        assert data.skip_message is None and [r.dagster_run.run_id for r in data.dagster_run_reactions] == [result.run_id]
        got = receiver.requests[sent_before:]
        assert sorted(r.path for r in got) == ["/also", "/ok?token=q-9f2e"]
        assert got[0].body == got[1].body
        doc = verify(got[0])
        assert doc == {
            "schema": "failmap.day_run.v1", "event": "day_run.succeeded", "status": "succeeded", "day": DAY,
            "pipeline": "failmap", "run_id": result.run_id, "job": "failmap_day_job",
            "finished_at": doc["finished_at"], "run_url": f"http://dagster.example:3000/runs/{result.run_id}",
            # the contract example: one wafer, 4 dies, bins 1 1 285 1
            "counts": {"units_processed": 1, "units_already_done": 0, "units_failed": 0, "wafers": 1,
                       "test_events": 1, "dies": 4, "rejects": 0, "warnings": 0},
            "yield_pct": 75.0, "error": None,
        }
        assert got[0].headers["x-failmap-delivery"] == f"{result.run_id}:failmap"

        [obs] = observations(instance)
        assert (obs["partition"], obs["pipeline"], obs["delivered"], obs["not_delivered"], obs["signed"]) == (
            DAY, "failmap", 2, 0, True)
        assert obs["run"] == result.run_id
        assert receiver.url("/ok") + " | 200 | 1 |" in obs["deliveries"]
        shown = capfd.readouterr()
        assert f"webhook failmap {DAY} run succeeded -> {receiver.url('/ok')}: HTTP 200" in shown.err
        for hidden in (SECRET, "hook-pw", "q-9f2e"):
            assert hidden not in shown.out + shown.err + repr(data) + json.dumps(observations(instance), default=str)


def test_a_failed_day_run_posts_its_error_without_the_secret(tmp_path, receiver):
    # an output "folder" that is a file: the day cannot take its lease, the op raises;
    # its name holds the secret, so the error does too and must be scrubbed
    blocked = tmp_path / f"out-{SECRET}"
    blocked.write_text("not a folder")
    settings = settings_for(tmp_path, output=str(blocked))
    hooks = Webhooks(urls=receiver.url("/failed"), secret=SECRET)
    with instance_for_test() as instance:
        cursors = {s: armed(s, instance) for s in (webhook_success_sensor, webhook_failure_sensor)}
        result = job(settings, "failmap_day_job").execute_in_process(instance=instance, partition_key=DAY,
                                                                      run_config=AS_OF, raise_on_error=False)
        assert not result.success
        assert tick(webhook_success_sensor, instance, hooks, cursors[webhook_success_sensor]).dagster_run_reactions == []
        assert receiver.at("/failed") == []
        data = tick(webhook_failure_sensor, instance, hooks, cursors[webhook_failure_sensor])

        [request] = receiver.at("/failed")
        doc = verify(request)
        assert (doc["status"], doc["event"], doc["day"], doc["pipeline"], doc["run_id"]) == (
            "failed", "day_run.failed", DAY, "failmap", result.run_id)
        assert doc["counts"] is None and doc["yield_pct"] is None and "run_url" not in doc
        assert doc["error"].startswith("step failmap_day: ") and "Error" in doc["error"], doc["error"]
        assert "out-***" in doc["error"] and SECRET not in request.body.decode()
        [obs] = observations(instance)
        assert (obs["run_status"], obs["delivered"]) == ("failed", 1)
        assert SECRET not in repr(data)


@pytest.fixture(scope="module")
def stdf_run(tmp_path_factory):
    """One STDF day run started as the UI's "Materialize" and backfills start them (an
    asset job, no day job), on an instance shared by the tests below; and the success
    sensor's cursor from before it."""
    settings = settings_for(tmp_path_factory.mktemp("stdf"))
    with instance_for_test() as instance:
        cursor = armed(webhook_success_sensor, instance)
        result = materialize(STDF_ASSETS, partition_key=DAY, instance=instance, resources=build_resources(settings))
        assert result.success
        yield instance, cursor, result.run_id


def test_a_receiver_that_never_answers_costs_bounded_time_and_the_tick_completes(stdf_run, receiver):
    instance, cursor, run_id = stdf_run
    hooks = Webhooks(urls=receiver.url("/slow"), secret=SECRET, timeout_seconds=0.3, backoff_seconds=0.05)
    before = len(receiver.at("/slow"))
    started = time.monotonic()
    data = tick(webhook_success_sensor, instance, hooks, cursor)
    took = time.monotonic() - started
    assert took < delivery.max_seconds(0.3, 2, 0.05) + 1.5, took
    assert [r.dagster_run.run_id for r in data.dagster_run_reactions] == [run_id] and data.cursor != cursor
    assert len(receiver.at("/slow")) - before == 3
    obs = [o for o in observations(instance) if receiver.url("/slow") in o["deliveries"]]
    assert obs[-1]["delivered"] == 0 and obs[-1]["pipeline"] == "stdf"
    assert "| 3 |" in obs[-1]["deliveries"] and "no answer within 0.3 s" in obs[-1]["deliveries"]


def test_two_5xx_then_200_is_delivered_on_the_third_attempt(stdf_run, receiver):
    instance, cursor, run_id = stdf_run
    hooks = Webhooks(urls=receiver.url("/flaky"), secret=SECRET, backoff_seconds=0.05)
    tick(webhook_success_sensor, instance, hooks, cursor)
    attempts = receiver.at("/flaky")
    assert len(attempts) == 3
    # a retry is the same request: same body, signature and delivery id
    assert len({(r.body, r.headers["x-failmap-signature"], r.headers["x-failmap-delivery"]) for r in attempts}) == 1
    doc = verify(attempts[-1])
    assert (doc["pipeline"], doc["day"], doc["run_id"], doc["job"]) == ("stdf", DAY, run_id, "__ephemeral_asset_job__")
    assert doc["counts"]["wafers"] == 0 and doc["yield_pct"] is None  # an empty day has no yield, not 0 %
    obs = [o for o in observations(instance) if receiver.url("/flaky") in o["deliveries"]]
    assert obs[-1]["delivered"] == 1 and f"{receiver.url('/flaky')} | 200 | 3 |" in obs[-1]["deliveries"]


def test_without_urls_the_sensors_exist_and_say_they_do_nothing(stdf_run, receiver, monkeypatch):
    instance, cursor, _ = stdf_run
    sent, observed = len(receiver.requests), len(observations(instance))
    data = tick(webhook_success_sensor, instance, Webhooks(secret=SECRET), cursor)
    assert data.skip_message == NOT_CONFIGURED
    assert (len(receiver.requests), len(observations(instance))) == (sent, observed)

    monkeypatch.delenv("FAILMAP_WEBHOOK_URLS", raising=False)
    assert webhook_sensors._description("succeeds").startswith(NOT_CONFIGURED)
    assert webhook_sensors._default_status().value == "STOPPED"
    monkeypatch.setenv("FAILMAP_WEBHOOK_URLS", "https://hooks.example/x")
    assert not webhook_sensors._description("fails").startswith(NOT_CONFIGURED)
    assert webhook_sensors._default_status().value == "RUNNING"


def test_daily_close_posts_one_document_per_pipeline_of_its_day(tmp_path, receiver):
    settings = settings_for(tmp_path)
    hooks = Webhooks(urls=receiver.url("/close"), secret=SECRET)
    with instance_for_test() as instance:
        cursor = armed(webhook_success_sensor, instance)
        result = job(settings, "daily_close_job").execute_in_process(instance=instance, partition_key=DAY,
                                                                      run_config=AS_OF)
        assert result.success
        tick(webhook_success_sensor, instance, hooks, cursor)
    docs = sorted((verify(r) for r in receiver.at("/close")), key=lambda d: d["pipeline"])
    assert [(d["pipeline"], d["day"], d["run_id"]) for d in docs] == [("failmap", DAY, result.run_id),
                                                                      ("stdf", DAY, result.run_id)]
