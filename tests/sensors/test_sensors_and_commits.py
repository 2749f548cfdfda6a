"""The sensors and the day commits, through Dagster (``evaluate_tick`` on real instances,
local folders): what a commit covers is not requested again, a genuinely new object is;
the reconcile sweep finds late files and pending A files that fell due, observes every
swept day, resumes a sweep cut by its time budget; and a no-op day run is cheap."""

from __future__ import annotations

import functools
import importlib
import json
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from dagster import AssetObservation, DagsterInstance, build_sensor_context, materialize

from failmap_assets.cli import main as cli
from failmap_assets.defs.failmap.assets import FAILMAP_ASSETS
from failmap_assets.defs.stdf.assets import STDF_ASSETS
from failmap_assets.discovery import reconcile
from failmap_assets.resources import build_resources
from failmap_assets.sensors import bucket_a_sensor, bucket_b_sensor, reconcile_sensor, stdf_sensor
from failmap_assets.sensors import bucket_sensors as bs
from failmap_assets.settings import Settings
from failmap_assets.storage.day_manifest import read_manifest
from failmap_assets.storage.local_store import LocalObjectStore
from failmap_synth.day import generate_day
from failmap_synth.stdf_writer import make_wafer_sort_stdf
from tests.sensors.test_sensors import local_storage
from tests.support.day_view import read_files
from tests.support.sensor_simulation import sensor_resources, stub_definitions

rs = importlib.import_module("failmap_assets.sensors.reconcile_sensor")  # the module (the package exports the sensor)

TODAY = date(2026, 6, 10)
NOON = datetime(2026, 6, 10, 12, tzinfo=UTC)
OLD_DAY = date(2026, 6, 1)     # well outside the bucket sensors' look-back (2 days)


@pytest.fixture
def world(tmp_path, monkeypatch):
    """Local folders, the settings that point at them (environment, for the CLI), a real
    instance, and the sensors' clock under the test's control."""
    stores, storage = local_storage(tmp_path / "data")
    stores["out"] = LocalObjectStore(storage.output)
    Path(storage.output).mkdir(parents=True, exist_ok=True)
    for var, value in (("FAILMAP_SOURCE_A", storage.source_a), ("FAILMAP_SOURCE_B", storage.source_b),
                       ("FAILMAP_SOURCE_STDF", storage.source_stdf), ("FAILMAP_OUTPUT", storage.output)):
        monkeypatch.setenv(var, value)
    clock = {"now": NOON}
    monkeypatch.setattr(bs, "current_time", lambda: clock["now"])
    (tmp_path / "dagster").mkdir()
    instance = DagsterInstance.local_temp(str(tmp_path / "dagster"))
    try:
        yield stores, storage, clock, instance
    finally:
        instance.dispose()


def tick(sensor, instance, storage, cursor):
    ctx = build_sensor_context(instance=instance, cursor=cursor, resources=sensor_resources(storage),
                               definitions=stub_definitions(), sensor_name=sensor.name)
    return sensor.evaluate_tick(ctx)


def day_objects(stores, day: date, wafers: int = 3, seed: int = 3) -> list[str]:
    """A small fail-map day (pairs, no file near midnight) and one STDF file; the keys."""
    keys = []
    folder = f"{day:%Y%m%d}/"
    for o in generate_day(day, wafers, seed, broken=False, dies_range=(200, 400), typical_dies=300):
        if o.bucket in ("a", "b") and o.key.startswith(folder) and "_2359" not in o.key and "_0000" not in o.key:
            stores[o.bucket].put(o.key, o.data)
            keys.append(o.key)
    key = f"{folder}S1_W01_{day:%Y%m%d}.stdf"
    stores["stdf"].put(key, stdf(day, 1))
    return [*keys, key]


def stdf(day: date, wafer: int) -> bytes:
    start = int(datetime(day.year, day.month, day.day, 9, tzinfo=UTC).timestamp())
    return make_wafer_sort_stdf(wafer, dies=60, tests_per_die=4, lot_id="S1", wafer_id=f"{wafer:02d}",
                                start_time=start, sites=1)


def run_day_cli(day: date, capsys, *extra: str) -> list[dict]:
    assert cli(["run-day", day.isoformat(), "--as-of", f"{day + timedelta(days=1)} 00:00:00", *extra]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


# ----- bucket sensors after a commit --------------------------------------------------------------
def test_bucket_sensors_do_not_request_what_a_commit_covers_and_do_request_a_new_object(world, capsys):
    stores, storage, clock, instance = world
    day_objects(stores, TODAY)
    results = run_day_cli(TODAY, capsys, "--run-id", "backfill-1")   # a backfill / CLI run commits the day
    assert [r["committed"] for r in results] == [True, True]
    cursors = {}
    for sensor in (bucket_a_sensor, bucket_b_sensor, stdf_sensor):
        data = tick(sensor, instance, storage, None)
        assert not data.run_requests, (sensor.name, [r.tags for r in data.run_requests])
        assert "nothing new" in data.skip_message
        cursors[sensor.name] = data.cursor   # the objects went into the ledger all the same
    # genuinely new: a new A, a re-uploaded B (new etag), a new STDF file
    new_a = f"{TODAY:%Y%m%d}/N9Z001.1_05P_{TODAY:%Y%m%d}_140000.txt"
    stores["a"].put(new_a, b"FAILMAP 1\nLOT N9Z001.1\nWAFER 05\nDIES 1\n0 0 1\nEND\n")
    b_key = next(o.key for o in stores["b"].list(f"{TODAY:%Y%m%d}/"))
    stores["b"].put(b_key, stores["b"].get(b_key) + b"\n")
    new_stdf = f"{TODAY:%Y%m%d}/S1_W02.stdf"
    stores["stdf"].put(new_stdf, stdf(TODAY, 2))
    for sensor, key in ((bucket_a_sensor, new_a), (bucket_b_sensor, b_key), (stdf_sensor, new_stdf)):
        data = tick(sensor, instance, storage, cursors[sensor.name])
        (rr,) = data.run_requests
        assert rr.partition_key == TODAY.isoformat()
        assert rr.tags["failmap/objects_count"] == "1" and rr.tags["failmap/objects"] == key
        again = tick(sensor, instance, storage, data.cursor)
        assert not again.run_requests


def test_a_day_committed_between_the_request_and_the_run_makes_the_run_a_quick_no_op(world, capsys):
    stores, storage, clock, instance = world
    day_objects(stores, TODAY)
    settings = Settings.from_env()
    requests = {s.name: tick(s, instance, storage, None).run_requests for s in (bucket_a_sensor, stdf_sensor)}
    assert [r.partition_key for r in requests["bucket_a_sensor"]] == [TODAY.isoformat()]
    run_day_cli(TODAY, capsys)   # another run does the day first (a backfill, the other sensor's run)
    seconds, inner = {}, {}
    for name, assets in (("bucket_a_sensor", FAILMAP_ASSETS), ("stdf_sensor", STDF_ASSETS)):
        (rr,) = requests[name]
        started = time.perf_counter()
        result = materialize(assets, partition_key=rr.partition_key, instance=instance, tags=rr.tags,
                             resources=build_resources(settings))
        seconds[name] = time.perf_counter() - started
        assert result.success
        mats = {m.event_specific_data.materialization.asset_key.to_user_string():
                m.event_specific_data.materialization.metadata for m in result.get_asset_materialization_events()}
        dies_or_tables = mats.get("failmap_dies") or mats["stdf_tables"]
        assert dies_or_tables["run_committed"].value is False and dies_or_tables["run_processed"].value == 0
        assert all(c.passed for c in result.get_asset_check_evaluations())
        inner[name] = dies_or_tables["run_seconds"].value
    print(f"no-op day runs through materialize (wall time): failmap {seconds['bucket_a_sensor']:.2f} s "
          f"(the day runner itself {inner['bucket_a_sensor']:.2f} s), stdf {seconds['stdf_sensor']:.2f} s "
          f"(runner {inner['stdf_sensor']:.2f} s); the rest is Dagster's run, events and checks")


# ----- the reconcile sensor -------------------------------------------------------------------------
def observed(data) -> list[tuple[str, str]]:
    return [(e.asset_key.to_user_string(), e.partition) for e in data.asset_events
            if isinstance(e, AssetObservation)]


def test_a_late_file_in_a_day_older_than_the_look_back_is_requested_within_one_sweep(world, capsys):
    stores, storage, clock, instance = world
    day_objects(stores, OLD_DAY)
    run_day_cli(OLD_DAY, capsys)
    # the bucket sensors have seen and closed the old day long ago
    cursor = None
    for _ in range(2):
        cursor = tick(bucket_a_sensor, instance, storage, cursor).cursor
    first = tick(reconcile_sensor, instance, storage, None)   # fresh cursor: a sweep at once
    assert not first.run_requests
    late = f"{OLD_DAY:%Y%m%d}/N9Z002.1_09P_{OLD_DAY:%Y%m%d}_150000.txt"
    stores["a"].put(late, b"FAILMAP 1\nLOT N9Z002.1\nWAFER 09\nDIES 1\n0 0 1\nEND\n")
    assert not tick(bucket_a_sensor, instance, storage, cursor).run_requests   # closed: not looked at
    same_period = tick(reconcile_sensor, instance, storage, first.cursor)
    assert not same_period.run_requests and "no reconcile sweep due" in same_period.skip_message
    clock["now"] = NOON + timedelta(seconds=storage_period() + 1)
    swept = tick(reconcile_sensor, instance, storage, same_period.cursor or first.cursor)
    (rr,) = swept.run_requests
    assert (rr.partition_key, rr.job_name) == (OLD_DAY.isoformat(), "failmap_day_job")
    assert rr.tags["failmap/trigger"] == "reconcile_sensor" and rr.tags["failmap/objects_count"] == "1"
    # the requested run takes it, and the next sweep finds nothing
    run_day_cli(OLD_DAY, capsys)
    clock["now"] += timedelta(seconds=storage_period() + 1)
    assert not tick(reconcile_sensor, instance, storage, swept.cursor).run_requests


def storage_period() -> float:
    return Settings.from_env().reconcile_period_seconds


def test_a_day_whose_pending_a_fell_due_is_requested(world, capsys):
    stores, storage, clock, instance = world
    key = f"{TODAY:%Y%m%d}/N9Z003.1_03P_{TODAY:%Y%m%d}_115500.txt"   # 5 min before the sensors' noon
    stores["a"].put(key, b"FAILMAP 1\nLOT N9Z003.1\nWAFER 03\nDIES 1\n0 0 1\nEND\n")
    assert cli(["run-day", TODAY.isoformat(), "--pipeline", "failmap", "--as-of", "2026-06-10 12:00:00"]) == 0
    capsys.readouterr()
    manifest, _ = read_manifest(stores["out"], "failmap", TODAY)
    assert manifest.open and manifest.next_due == "2026-06-10 12:05:10"   # grace: window 10 s + 600 s
    data = tick(reconcile_sensor, instance, storage, None)
    assert not data.run_requests   # pending, not yet due
    clock["now"] = NOON + timedelta(seconds=storage_period() + 1)
    data = tick(reconcile_sensor, instance, storage, data.cursor)
    (rr,) = data.run_requests
    assert (rr.partition_key, rr.job_name) == (TODAY.isoformat(), "failmap_day_job")
    # the run it asks for settles the A (a_only now) and the day leaves the open state
    assert cli(["run-day", TODAY.isoformat(), "--pipeline", "failmap", "--as-of", "2026-06-10 13:00:01"]) == 0
    manifest, _ = read_manifest(stores["out"], "failmap", TODAY)
    assert not manifest.open and manifest.next_due is None


def test_reconcile_observes_every_swept_day_on_the_day_assets(world, capsys):
    stores, storage, clock, instance = world
    day_objects(stores, OLD_DAY)
    run_day_cli(OLD_DAY, capsys)
    data = tick(reconcile_sensor, instance, storage, None)
    days = reconcile.sweep_days(TODAY, Settings.from_env().start_date, Settings.from_env().reconcile_days)
    assert observed(data) == [(asset, d.isoformat()) for d in days for asset in ("failmap_dies", "stdf_tables")]
    by_key = {(e.asset_key.to_user_string(), e.partition): e.metadata for e in data.asset_events}
    for asset in ("failmap_dies", "stdf_tables"):
        meta = by_key[(asset, OLD_DAY.isoformat())]
        assert meta["reconciled_at"].value == NOON.isoformat()
        assert meta["committed_before"].value is True and meta["objects_unaccounted"].value == 0
        assert meta["objects_listed"].value > 0 and meta["run_requested"].value is False
    empty = by_key[("failmap_dies", TODAY.isoformat())]
    assert empty["committed_before"].value is False and empty["objects_listed"].value == 0


def test_a_sweep_cut_by_the_time_budget_resumes_where_it_stopped(world, capsys, monkeypatch):
    stores, storage, clock, instance = world
    day_objects(stores, OLD_DAY)
    run_day_cli(OLD_DAY, capsys)
    late = f"{OLD_DAY:%Y%m%d}/N9Z004.1_04P_{OLD_DAY:%Y%m%d}_160000.txt"
    stores["a"].put(late, b"FAILMAP 1\nLOT N9Z004.1\nWAFER 04\nDIES 1\n0 0 1\nEND\n")
    # each look at the budget clock costs 0.1 s of a 1 s budget: about nine days per tick
    fake = {"t": 0.0}

    def budget_clock() -> float:
        fake["t"] += 0.1
        return fake["t"]

    monkeypatch.setenv("FAILMAP_SENSOR_TIME_BUDGET_SECONDS", "1")
    monkeypatch.setattr(rs, "plan", functools.partial(reconcile.plan, clock=budget_clock))
    days = reconcile.sweep_days(TODAY, Settings.from_env().start_date, Settings.from_env().reconcile_days)
    expected = [(asset, d.isoformat()) for d in days for asset in ("failmap_dies", "stdf_tables")]
    seen: list[tuple[str, str]] = []
    requested: list[tuple[int, str]] = []
    cursor, ticks = None, 0
    while True:
        data = tick(reconcile_sensor, instance, storage, cursor)
        ticks += 1
        assert 0 < len(observed(data)) <= 10
        seen += observed(data)
        requested += [(ticks, r.partition_key) for r in data.run_requests]
        cursor = data.cursor
        state = reconcile.ReconcileCursor.decode(cursor)
        if state.sweep_started is None:
            break
        assert state.position == len(seen)   # where the next tick starts
        clock["now"] += timedelta(seconds=30)   # the next tick comes one interval later
        assert ticks < 20
    assert ticks >= 5 and seen == expected   # every day of the window once, in order, across ticks
    tick_of_old_day = 1 + expected.index(("failmap_dies", OLD_DAY.isoformat())) // 9
    assert [d for _, d in requested] == [OLD_DAY.isoformat()]
    assert abs(requested[0][0] - tick_of_old_day) <= 1
    assert reconcile.ReconcileCursor.decode(cursor).sweeps == 1
    # the next sweep waits for the period
    assert not observed(tick(reconcile_sensor, instance, storage, cursor))


@pytest.mark.parametrize("bucket", ["a", "b", "stdf"])
def test_an_object_deleted_from_a_committed_day_is_requested_within_one_sweep(world, capsys, bucket):
    """No new version appears, yet the commit still holds the deleted object's rows:
    the sweep notices that the commit accounts for objects the folder no longer has."""
    stores, storage, clock, instance = world
    keys = day_objects(stores, OLD_DAY)
    run_day_cli(OLD_DAY, capsys)
    first = tick(reconcile_sensor, instance, storage, None)
    assert not first.run_requests
    gone = next(k for k in keys if stores[bucket].head(k) is not None)
    stores[bucket].delete(gone)
    clock["now"] = NOON + timedelta(seconds=storage_period() + 1)
    data = tick(reconcile_sensor, instance, storage, first.cursor)
    (rr,) = data.run_requests
    pipeline = "stdf" if bucket == "stdf" else "failmap"
    assert rr.partition_key == OLD_DAY.isoformat() and rr.tags["failmap/day"] == f"{pipeline}:{OLD_DAY}"
    run_day_cli(OLD_DAY, capsys)   # the run it asks for drops the object's rows ...
    manifest, _ = read_manifest(stores["out"], pipeline, OLD_DAY)
    listing = {"a": "bucket_a_objects", "b": "bucket_b_objects", "stdf": "stdf_objects"}[bucket]
    assert gone not in read_files(stores["out"], manifest.tables[listing])["key"].to_list()
    clock["now"] += timedelta(seconds=storage_period() + 1)
    assert not tick(reconcile_sensor, instance, storage, data.cursor).run_requests   # ... and the day is settled
