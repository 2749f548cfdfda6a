"""The three sensors through Dagster (``evaluate_tick``, a real on-disk instance),
against local folders and the real S3 server: exactly-once under a simulated fab."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from datetime import UTC, date, datetime, timedelta

import pytest
from dagster import DagsterInstance, build_sensor_context

from failmap_assets.storage.local_store import LocalObjectStore
from failmap_assets.resources.storage import FailmapStorage
from failmap_assets.storage.locations import open_store
from failmap_assets.sensors import SENSORS, bucket_a_sensor, bucket_b_sensor, stdf_sensor
from failmap_assets.sensors import bucket_sensors as bs
from failmap_assets.discovery.seen_ledger import LedgerStore
from failmap_assets.discovery.keys import key_day
from tests.support.sensor_simulation import (
    JUNK,
    World,
    is_midnight_a,
    is_midnight_b,
    make_events,
    run_simulation,
    sensor_resources,
    stub_definitions,
)

START = datetime(2026, 6, 1, tzinfo=UTC)
DT = timedelta(hours=2)
PHASE1 = 60          # ticks before the restart: generous caps, every version taken the tick it appears
GAP = timedelta(days=3)  # the sensors are stopped this long (ticks run late): days age out meanwhile
PHASE2 = 60          # ticks after the restart: small caps, backlog worked off across ticks


def timeline() -> list[datetime]:
    return [START + k * DT for k in range(PHASE1)] + [START + GAP + k * DT for k in range(PHASE1, PHASE1 + PHASE2)]


def simulate(world: World, monkeypatch, n_wafers: int, n_stdf: int, phase2_objects: int, seed: int):
    ticks = timeline()
    quiet = [(ticks[30], ticks[34] + timedelta(seconds=1))]  # the fab idles: ticks 31..34 see nothing new
    events = make_events(seed, START, ticks[-1] - START, n_wafers, n_stdf, quiet)
    monkeypatch.setenv("FAILMAP_SENSOR_LOOKBACK_DAYS", "2")
    monkeypatch.setenv("FAILMAP_SENSOR_MAX_RUNS_PER_TICK", "10")
    monkeypatch.setenv("FAILMAP_SENSOR_MAX_OBJECTS_PER_TICK", "5000")

    def on_tick(n: int) -> None:
        if n == PHASE1:
            world.restart()
            monkeypatch.setenv("FAILMAP_SENSOR_MAX_RUNS_PER_TICK", "2")
            monkeypatch.setenv("FAILMAP_SENSOR_MAX_OBJECTS_PER_TICK", str(phase2_objects))

    run_simulation(world, events, ticks, on_tick=on_tick)
    assert world.puts + world.deletes == len(events)

    # drain: no more uploads; tick until every sensor skips twice in a row
    now = ticks[-1]
    n = len(ticks)
    while True:
        now += DT
        recs = world.tick(n, now)
        n += 1
        last = world.records[-6:]
        if len(world.records) >= 6 and all(r.skip for r in last):
            break
        assert n < len(ticks) + 60, "the backlog did not drain"
    drained_at = n
    # ...and long after: every day leaves the look-back and is closed by a final sweep
    for _ in range(2):
        now += timedelta(days=2)
        recs = world.tick(n, now)
        n += 1
        assert all(not r.run_requests for r in recs)
    return events, drained_at


def check(world: World, events, drained_at: int) -> dict:
    covered = world.covered
    visible = world.first_visible

    # 1. exactly once: no version in two run requests; no run key reused
    twice = {v: t for v, t in covered.items() if len(t) > 1}
    assert not twice, f"{len(twice)} versions covered more than once, e.g. {next(iter(twice.items()))}"
    assert max(world.run_keys.values()) == 1
    # 2. nothing invented: every covered version was listable at some tick
    assert set(covered) <= set(visible)
    # 3. nothing missed: every object alive at the end was covered
    live_versions = {(b, k, e) for (b, k), e in world.live.items() if key_day(k) and k not in JUNK}
    missing = live_versions - set(covered)
    assert not missing, f"{len(missing)} live objects never requested, e.g. {sorted(missing)[:3]}"
    # 4. before the restart (generous caps) each version is taken by the very tick it first appears at
    late = {v: (visible[v], covered[v][0]) for v in covered if visible[v] < PHASE1 and covered[v][0] != visible[v]}
    assert not late, f"{len(late)} versions not taken at first sight, e.g. {next(iter(late.items()))}"
    never = [v for v in visible if visible[v] < PHASE1 - 1 and v not in covered and key_day(v[1])
             and v[1] not in JUNK]
    assert not never, f"versions listable before the restart never requested: {never[:3]}"
    # 5. junk keys never reach a run
    assert not [v for v in covered if v[1] in JUNK]
    # 6. across midnight the neighbour day re-runs in the same tick: a B written just after
    #    midnight re-runs the previous day; an A written just before it, the next day (once
    #    that day exists, i.e. when the A is taken after midnight)
    midnight = [v for v in covered if v[0] == "b" and is_midnight_b(v[1])]
    assert len(midnight) >= 5
    for _, key, etag in midnight:
        tick = covered[("b", key, etag)][0]
        prev = str(key_day(key) - timedelta(days=1))
        assert (tick, prev) in world.partner_hits[(key, etag)], key
    tick_day = {r.tick: r.now.date() for r in world.records}
    midnight_a = [v for v in covered if v[0] == "a" and is_midnight_a(v[1])]
    expected_a = [v for v in midnight_a if tick_day[covered[v][0]] > key_day(v[1])]
    assert len(expected_a) >= 5
    for _, key, etag in midnight_a:
        tick = covered[("a", key, etag)][0]
        nxt = key_day(key) + timedelta(days=1)
        hits = world.partner_hits[(key, etag)]
        assert hits == ([(tick, str(nxt))] if tick_day[tick] >= nxt else []), (key, hits)
    # 7. B files that arrived after their A had been requested alone
    def token(key: str) -> str:
        return key.split("/")[-1].rsplit("_", 2)[0]

    a_tick = {token(k): t[0] for (b, k, _), t in covered.items() if b == "a"}
    late_b = [k for (b, k, _), t in covered.items() if b == "b" and t[0] > a_tick.get(token(k), 10**9)]
    assert len(late_b) >= 20
    # 8. no run requested when nothing is new
    prev_skip: dict[str, bool] = {}
    for r in world.records:
        if not r.changed and prev_skip.get(r.sensor, False):
            assert r.skip and not r.run_requests, (r.tick, r.sensor)
        if r.tick < PHASE1 and not r.changed:
            assert r.skip and not r.run_requests, (r.tick, r.sensor)
        prev_skip[r.sensor] = bool(r.skip)
    quiet_skips = [r for r in world.records if 31 <= r.tick <= 34]
    assert len(quiet_skips) == 12 and all(r.skip for r in quiet_skips)
    assert all(r.skip for r in world.records if r.tick >= drained_at - 2)
    # 9. at most one run per day partition per tick and sensor, within the caps
    for r in world.records:
        days = [rr.partition_key for rr in r.run_requests]
        assert len(days) == len(set(days))
        cap = 10 if r.tick < PHASE1 else 2
        assert len(days) <= cap
        assert days == sorted(days)  # oldest first
    # 10. the cursor stays small (the ledger lives in the instance's key-value table)
    assert max(r.cursor_len for r in world.records) < 1500
    # 11. the ledgers of the days still open hold exactly the live objects
    world.open_day_ledgers_match_live()
    stats = {
        "objects_put": world.puts,
        "deletes": world.deletes,
        "versions_listable": len(visible),
        "versions_requested": len(covered),
        "ticks": drained_at + 2,
        "run_requests": sum(len(r.run_requests) for r in world.records),
        "skips": sum(1 for r in world.records if r.skip),
        "midnight_b": len(midnight),
        "midnight_a": len(midnight_a),
        "late_b": len(late_b),
        "deleted_before_seen": len(set(visible) - set(covered)),
    }
    print(stats)
    return stats


def local_storage(root) -> tuple[dict, FailmapStorage]:
    stores = {b: LocalObjectStore(root / b) for b in ("a", "b", "stdf")}
    for s in stores.values():
        os.makedirs(s.root, exist_ok=True)
    return stores, FailmapStorage(source_a=str(root / "a"), source_b=str(root / "b"),
                                  source_stdf=str(root / "stdf"), output=str(root / "out"))


@pytest.fixture
def fast_tmp(tmp_path):
    """A scratch folder in RAM when the machine has /dev/shm: the simulation's SQLite
    commits and file puts then cost no disk syncs (a test-speed matter only)."""
    if not os.path.isdir("/dev/shm") or not os.access("/dev/shm", os.W_OK):
        yield tmp_path
        return
    path = tempfile.mkdtemp(prefix="failmap-sensors-", dir="/dev/shm")
    try:
        yield Path(path)
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.mark.slow
def test_exactly_once_simulation_local_folders(fast_tmp, monkeypatch):
    stores, storage = local_storage(fast_tmp / "data")
    world = World(stores, storage, fast_tmp / "dagster", monkeypatch)
    events, drained_at = simulate(world, monkeypatch, n_wafers=4600, n_stdf=400, phase2_objects=60, seed=5)
    stats = check(world, events, drained_at)
    assert stats["objects_put"] >= 10_000 and stats["ticks"] >= 100


@pytest.mark.slow
@pytest.mark.s3
def test_exactly_once_simulation_real_s3(s3_env, fast_tmp, monkeypatch):
    endpoint = os.environ["FAILMAP_S3_ENDPOINT_URL"]
    storage = FailmapStorage(source_a=f"{s3_env}/a", source_b=f"{s3_env}/b", source_stdf=f"{s3_env}/stdf",
                             output=f"{s3_env}/out", s3_endpoint_url=endpoint, aws_region=os.environ["AWS_REGION"])
    stores = {b: open_store(f"{s3_env}/{b}", endpoint_url=endpoint) for b in ("a", "b", "stdf")}
    world = World(stores, storage, fast_tmp / "dagster", monkeypatch, workers=16)
    events, drained_at = simulate(world, monkeypatch, n_wafers=900, n_stdf=120, phase2_objects=25, seed=11)
    stats = check(world, events, drained_at)
    assert stats["objects_put"] >= 2_000 and stats["ticks"] >= 100


# ----- smaller behaviours through Dagster ----------------------------------------------------
@pytest.fixture
def local(tmp_path, monkeypatch):
    stores, storage = local_storage(tmp_path / "data")
    now = [datetime(2026, 6, 10, 12, tzinfo=UTC)]
    monkeypatch.setattr(bs, "current_time", lambda: now[0])
    return stores, storage, now


def _tick(sensor, instance, storage, cursor, defs=None):
    ctx = build_sensor_context(instance=instance, cursor=cursor, resources=sensor_resources(storage),
                               definitions=defs or stub_definitions(), sensor_name=sensor.name)
    return sensor.evaluate_tick(ctx)


def test_sensor_names_targets_and_interval():
    assert [s.name for s in SENSORS] == ["bucket_a_sensor", "bucket_b_sensor", "stdf_sensor", "reconcile_sensor",
                                         "webhook_success_sensor", "webhook_failure_sensor"]
    assert bucket_a_sensor.job_name == bucket_b_sensor.job_name == "failmap_day_job"
    assert stdf_sensor.job_name == "stdf_day_job"
    data_sensors = SENSORS[:4]  # the webhook sensors are run status sensors: no storage, Dagster's own interval
    assert all(s.minimum_interval_seconds == 30 for s in data_sensors)
    assert all("storage" in s.required_resource_keys for s in data_sensors)


def test_run_request_tags_run_key_and_skip(local):
    stores, storage, now = local
    keys = [f"20260610/N4A123.1_{i:02d}P_20260610_101010.Z" for i in range(1, 41)]
    for key in keys:
        stores["a"].put(key, key.encode())
    with DagsterInstance.ephemeral() as instance:
        data = _tick(bucket_a_sensor, instance, storage, None)
        (rr,) = data.run_requests
        assert rr.partition_key == "2026-06-10"
        assert rr.run_key.startswith("bucket_a_sensor:2026-06-10:g1:")
        assert rr.tags["failmap/objects_count"] == "40"
        assert rr.tags["failmap/objects"].startswith(keys[0]) and rr.tags["failmap/objects"].endswith("more)")
        assert len(rr.tags["failmap/objects"]) <= 500
        m = LedgerStore(instance.daemon_cursor_storage, "failmap/sensors/bucket_a_sensor").load_manifest(
            rr.tags["failmap/manifest"])
        assert [k for k, _ in m.objects] == keys
        # the same cursor evaluated again (a retried tick) gives the same run key: Dagster dedups
        again = _tick(bucket_a_sensor, instance, storage, None)
        assert [r.run_key for r in again.run_requests] == [rr.run_key]
        # nothing new: a skip, not a run
        skip = _tick(bucket_a_sensor, instance, storage, data.cursor)
        assert not skip.run_requests and "nothing new" in skip.skip_message


@pytest.mark.s3
def test_identical_reupload_after_delete_on_s3_is_requested_again(s3_env, monkeypatch):
    """S3 ETags are content MD5s: the same bytes after a delete come back with the same
    (key, etag). The delete pruned it from the ledger, so it is a new arrival, and the
    run key differs from the first run's (Dagster would drop a repeated one)."""
    monkeypatch.setattr(bs, "current_time", lambda: datetime(2026, 6, 10, 12, tzinfo=UTC))
    endpoint = os.environ["FAILMAP_S3_ENDPOINT_URL"]
    storage = FailmapStorage(source_a=f"{s3_env}/a", source_b=f"{s3_env}/b", source_stdf=f"{s3_env}/stdf",
                             output=f"{s3_env}/out", s3_endpoint_url=endpoint, aws_region=os.environ["AWS_REGION"])
    store = open_store(f"{s3_env}/stdf", endpoint_url=endpoint)
    key = "20260610/lot1/w01.stdf"
    first = store.put(key, b"same")
    with DagsterInstance.ephemeral() as instance:
        d1 = _tick(stdf_sensor, instance, storage, None)
        store.delete(key)
        d2 = _tick(stdf_sensor, instance, storage, d1.cursor)
        assert not d2.run_requests
        assert store.put(key, b"same").etag == first.etag
        d3 = _tick(stdf_sensor, instance, storage, d2.cursor)
        assert len(d3.run_requests) == 1 and d3.run_requests[0].run_key != d1.run_requests[0].run_key
        assert d3.run_requests[0].tags["failmap/objects"] == key
        d4 = _tick(stdf_sensor, instance, storage, d3.cursor)
        assert not d4.run_requests


def test_b_after_midnight_requests_the_previous_day_too(local):
    stores, storage, now = local
    now[0] = datetime(2026, 6, 11, 0, 5, tzinfo=UTC)
    stores["b"].put("20260611/N4A123.1_07P_20260611_000004.gz", b"b")
    stores["b"].put("20260611/N4A123.1_08P_20260611_000104.gz", b"b")
    with DagsterInstance.ephemeral() as instance:
        data = _tick(bucket_b_sensor, instance, storage, None)
        by_day = {rr.partition_key: rr for rr in data.run_requests}
        assert list(by_day) == ["2026-06-10", "2026-06-11"]
        assert by_day["2026-06-10"].tags["failmap/objects_count"] == "0"
        assert by_day["2026-06-10"].tags["failmap/partners"] == "20260611/N4A123.1_07P_20260611_000004.gz"
        assert by_day["2026-06-11"].tags["failmap/objects_count"] == "2"


def test_turning_on_over_a_full_bucket_does_not_flood(local, monkeypatch):
    stores, storage, now = local
    monkeypatch.setenv("FAILMAP_SENSOR_MAX_RUNS_PER_TICK", "3")
    for i in range(30):
        d = date(2026, 6, 10) - timedelta(days=i)
        stores["a"].put(f"{d:%Y%m%d}/N4A123.1_07P_{d:%Y%m%d}_101010.Z", b"x")
    with DagsterInstance.ephemeral() as instance:
        cursor, days = None, []
        for _ in range(12):
            data = _tick(bucket_a_sensor, instance, storage, cursor)
            cursor = data.cursor
            assert len(data.run_requests) <= 3
            days += [rr.partition_key for rr in data.run_requests]
        assert days == sorted(days) and len(days) == 30 == len(set(days))
        assert "nothing new" in data.skip_message


def test_bad_cursor_fails_the_tick_loudly(local):
    stores, storage, now = local
    with DagsterInstance.ephemeral() as instance, pytest.raises(Exception, match="reset the sensor cursor"):
        _tick(bucket_a_sensor, instance, storage, "not a cursor")


def test_sensors_load_through_the_whole_definitions(local):
    """The lead's Definitions carries the three sensors, and a tick works through it."""
    stores, storage, now = local
    from failmap_assets.definitions import defs

    names = {s.name for s in defs.get_repository_def().sensor_defs}
    if not names:
        pytest.xfail("failmap_assets/definitions.py does not pass sensors=SENSORS to Definitions yet")
    assert names == {"bucket_a_sensor", "bucket_b_sensor", "stdf_sensor", "reconcile_sensor", "yield_summaries_sensor",
                     "webhook_success_sensor", "webhook_failure_sensor", "postgres_sink_sensor", "patterns_sensor"}
    sensor = defs.get_sensor_def("bucket_a_sensor")
    assert {defs.get_sensor_def(n).name for n in ("bucket_b_sensor", "stdf_sensor")} == {"bucket_b_sensor", "stdf_sensor"}
    stores["a"].put("20260610/N4A123.1_07P_20260610_101010.Z", b"x")
    with DagsterInstance.ephemeral() as instance:
        data = _tick(sensor, instance, storage, None, defs=defs)
        assert [rr.partition_key for rr in data.run_requests] == ["2026-06-10"]
