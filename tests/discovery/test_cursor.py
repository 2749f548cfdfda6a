"""The pure listing and ledger layers (no Dagster): cursor, look-back, caps, ledger store."""

from __future__ import annotations

import sys
from datetime import date, timedelta

import pytest

from failmap_assets.storage.local_store import LocalObjectStore
from failmap_assets.discovery.seen_ledger import (
    CHUNK_CHARS,
    DictKeyValueStore,
    LedgerCorrupt,
    LedgerStore,
    Manifest,
    decode_hashes,
    encode_hashes,
    entry_hash,
    objects_digest,
)
from failmap_assets.discovery.cursor import SensorCursor
from failmap_assets.discovery.keys import day_prefix
from failmap_assets.pipeline.pairing import partner_days
from tests.support.memory_store import MemoryStore, PureSensor, taken

D = date(2026, 6, 10)


def k(day: date, name: str) -> str:
    return f"{day:%Y%m%d}/{name}"


def fm(day: date, hhmmss: str, token: str = "N4A123.1_07P") -> str:
    return f"{day:%Y%m%d}/{token}_{day:%Y%m%d}_{hhmmss}.Z"


# ----- parsing ------------------------------------------------------------------------
def test_pure_modules_do_not_import_dagster():
    import subprocess

    code = "import sys; import failmap_assets.discovery.cursor, failmap_assets.discovery.seen_ledger; print('dagster' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_cursor_roundtrip_and_closed_ranges():
    c = SensorCursor(gen=7)
    for d in [date(2026, 1, 1), date(2026, 1, 3), date(2026, 1, 2), date(2026, 3, 1)]:
        c.close(d)
    assert c.closed == [(date(2026, 1, 1).toordinal(), date(2026, 1, 3).toordinal()),
                        (date(2026, 3, 1).toordinal(), date(2026, 3, 1).toordinal())]
    assert c.is_closed(date(2026, 1, 2)) and not c.is_closed(date(2026, 1, 4)) and c.is_closed(date(2026, 3, 1))
    assert not c.is_closed(date(2025, 12, 31))
    from failmap_assets.discovery.cursor import DayCursor

    c.days[D] = DayCursor(ledger="abc.1", count=3, pos="20260610/ü space\udc80", closing=True)
    c.garbage = ["20260609/def.2"]
    back = SensorCursor.decode(c.encode())
    assert back == c
    # a whole year of closed daily folders stays one range
    y = SensorCursor()
    for i in range(365):
        y.close(date(2026, 1, 1) + timedelta(days=i))
    assert len(y.closed) == 1 and len(y.encode()) < 100


@pytest.mark.parametrize("bad", ["x", "{}", '{"v": 99}', '{"v":1,"gen":0,"closed":[["2026","x"]],"days":{},"garbage":[]}'])
def test_unreadable_cursor_raises_instead_of_restarting(bad):
    with pytest.raises(ValueError, match="reset the sensor cursor"):
        SensorCursor.decode(bad)


def test_empty_cursor_is_fresh():
    assert SensorCursor.decode(None) == SensorCursor() == SensorCursor.decode("")


# ----- ledger ---------------------------------------------------------------------------
def test_entry_hash_and_encoding():
    assert entry_hash("a", "e") == entry_hash("a", "e") != entry_hash("a", "f")
    assert entry_hash("a\0", "e") != entry_hash("a", "\0e")  # length-prefixed: unambiguous
    hs = {entry_hash(f"k{i}", "e") for i in range(1000)}
    assert decode_hashes(encode_hashes(hs)) == hs
    assert entry_hash("20260111/\udc80bad", "e")  # undecodable local names hash too
    assert objects_digest([("a", "1"), ("b", "2")]) == objects_digest([("b", "2"), ("a", "1"), ("a", "1")])


def test_ledger_store_chunks_release_and_corruption():
    kv = DictKeyValueStore()
    ls = LedgerStore(kv, "ns")
    big = {entry_hash(str(i), "e") for i in range(20_000)}  # ~160 KB of random bits -> several chunks
    ref = ls.stage(D, big)
    assert int(ref.split(".")[1]) > 1
    assert ls.load(D, ref) == big  # staged values are visible before the flush
    ls.flush()
    assert all(len(v) <= CHUNK_CHARS for v in kv.data.values())
    assert LedgerStore(kv, "ns").load(D, ref) == big
    assert ls.stage(D, set()) is None and ls.load(D, None) == set()

    small_ref = ls.stage(D, {1, 2, 3})
    # releasing garbage blanks its values unless still referenced
    ls.release([f"{D:%Y%m%d}/{ref}"], [(D, small_ref)])
    ls.flush()
    with pytest.raises(LedgerCorrupt):
        ls.load(D, ref)
    ls.release([f"{D:%Y%m%d}/{small_ref}"], [(D, small_ref)])  # referenced: kept
    ls.flush()
    assert ls.load(D, small_ref) == {1, 2, 3}
    kv.data[next(k for k in kv.data if small_ref.split(".")[0] in k)] = encode_hashes({9})
    with pytest.raises(LedgerCorrupt, match="digest"):
        ls.load(D, small_ref)


def test_manifest_roundtrip_chunked():
    kv = DictKeyValueStore()
    ls = LedgerStore(kv, "ns")
    objs = [(f"20260610/{i:08d}_{'x' * 40}.Z", objects_digest([(str(i), "")])[:32]) for i in range(6000)]
    key = ls.stage_manifest("s:2026-06-10:g1:abc", Manifest("s", "2026-06-10", 1, objs, [("k", "e", "2026-06-11")]))
    ls.flush()
    assert len([k for k in kv.data if k.startswith(key)]) > 1
    m = LedgerStore(kv, "ns").load_manifest(key)
    assert m.objects == objs and m.partners == [("k", "e", "2026-06-11")] and m.gen == 1


# ----- scanning ------------------------------------------------------------------------
def test_first_tick_takes_every_day_in_order_and_ignores_junk():
    s = MemoryStore()
    for key in [k(D, "b"), k(D, "a"), k(D - timedelta(days=5), "old"), k(D + timedelta(days=1), "future"),
                "README.txt", "incoming/x", "2026-06-10/x", "20261399/x", "20251231/before-start",
                k(D, "nested/deep/file.stdf")]:
        s.put(key, key.encode())
    sensor = PureSensor(s)
    plan = sensor.tick(D)
    assert taken(plan) == [k(D - timedelta(days=5), "old"), k(D, "a"), k(D, "b"), k(D, "nested/deep/file.stdf")]
    assert plan.run_days == [D - timedelta(days=5), D]
    st = plan.stats
    assert (st.ignored_prefixes, st.before_start, st.future_days) == (3, 1, 1)
    # only day folders were listed, never the bucket
    assert s.listed_prefixes() == [day_prefix(D - timedelta(days=5)), day_prefix(D)]
    # the old day was swept once and closed; its ledger is not kept
    assert st.closed_days == [D - timedelta(days=5)]
    assert sensor.cursor.is_closed(D - timedelta(days=5)) and list(sensor.cursor.days) == [D]
    # nothing new: nothing taken, only the open day re-listed
    s.calls.clear()
    plan = sensor.tick(D)
    assert taken(plan) == [] and s.listed_prefixes() == [day_prefix(D)]
    # the future day becomes today
    plan = sensor.tick(D + timedelta(days=1))
    assert taken(plan) == [k(D + timedelta(days=1), "future")]


def test_out_of_order_arrivals_reuploads_and_deletes():
    s = MemoryStore()
    s.put(k(D, "m"), b"1")
    sensor = PureSensor(s)
    assert taken(sensor.tick(D)) == [k(D, "m")]
    s.put(k(D, "a"), b"1")  # sorts before the last key seen
    s.put(k(D, "z"), b"1")
    assert taken(sensor.tick(D)) == [k(D, "a"), k(D, "z")]
    s.put(k(D, "m"), b"2")  # re-upload: new etag
    plan = sensor.tick(D)
    assert taken(plan) == [k(D, "m")] and plan.stats.pruned == 1  # the old etag left the ledger
    s.delete(k(D, "a"))
    plan = sensor.tick(D)
    assert taken(plan) == [] and plan.stats.pruned == 1
    assert sensor.ledger(D) == {entry_hash(o.key, o.etag) for o in s.list(day_prefix(D))}
    s.put(k(D, "a"), b"1")  # identical bytes after a delete: a new arrival
    assert taken(sensor.tick(D)) == [k(D, "a")]
    assert taken(sensor.tick(D)) == []


def test_lookback_closes_days_after_a_final_sweep():
    s = MemoryStore()
    s.put(k(D, "a"), b"1")
    sensor = PureSensor(s, lookback_days=2)
    sensor.tick(D)
    for today in [D + timedelta(days=1), D + timedelta(days=2)]:
        assert taken(sensor.tick(today)) == [] and D in sensor.cursor.days
    # an object that arrives while the day is still open but is seen only at the closing sweep
    s.put(k(D, "late"), b"1")
    plan = sensor.tick(D + timedelta(days=3))
    assert taken(plan) == [k(D, "late")] and plan.stats.closed_days == [D]
    assert D not in sensor.cursor.days and sensor.cursor.is_closed(D)
    # closed: never listed again (documented: later additions need a backfill)
    s.put(k(D, "after-close"), b"1")
    s.calls.clear()
    assert taken(sensor.tick(D + timedelta(days=4))) == []
    assert day_prefix(D) not in s.listed_prefixes()


def test_a_late_folder_for_an_old_date_is_swept_once():
    s = MemoryStore()
    s.put(k(D, "a"), b"1")
    sensor = PureSensor(s)
    sensor.tick(D + timedelta(days=10))
    old = D - timedelta(days=30)
    s.put(k(old, "late-folder"), b"1")
    plan = sensor.tick(D + timedelta(days=10))
    assert taken(plan) == [k(old, "late-folder")] and plan.stats.closed_days == [old]
    assert taken(sensor.tick(D + timedelta(days=10))) == []


def test_object_cap_resumes_with_start_after_inside_the_day():
    s = MemoryStore()
    keys = [k(D, f"{i:04d}") for i in range(25)]
    for key in keys:
        s.put(key, b"x" + key.encode())
    sensor = PureSensor(s, max_objects=10)
    got = []
    for _ in range(3):
        plan = sensor.tick(D)
        got += taken(plan)
    assert got == keys
    assert s.calls[-2:] == [("list_prefixes", ""), ("list", day_prefix(D), keys[19])]
    assert taken(sensor.tick(D)) == []


def test_run_cap_works_a_full_bucket_off_oldest_day_first():
    s = MemoryStore()
    days = [D - timedelta(days=i) for i in range(40)]
    for d in days:
        for j in range(3):
            s.put(k(d, f"f{j}"), b"1")
    sensor = PureSensor(s, max_runs=4)
    order = []
    ticks = 0
    while True:
        plan = sensor.tick(D)
        ticks += 1
        if not plan.run_days:
            break
        assert len(plan.run_days) <= 4
        order += plan.run_days
    assert order == sorted(days) and ticks == 11
    # 37 old days closed as the frontier passed; only the look-back stays open
    assert sorted(sensor.cursor.days) == [D - timedelta(days=2), D - timedelta(days=1), D]


def test_time_budget_stops_mid_day_and_resumes():
    s = MemoryStore()
    for i in range(100):
        s.put(k(D, f"{i:03d}"), b"1")
    t = [0.0]

    def clock():
        t[0] += 0.01
        return t[0]

    sensor = PureSensor(s, time_budget=0.25, clock=clock)
    got = []
    for _ in range(10):
        plan = sensor.tick(D)
        got += taken(plan)
        if plan.stats.stopped_by is None:
            break
        assert plan.stats.stopped_by == "time"
    assert got == [k(D, f"{i:03d}") for i in range(100)]


def test_b_partner_days_count_toward_the_run_cap():
    s = MemoryStore()
    d2 = D + timedelta(days=1)
    s.put(fm(d2, "000004"), b"1")          # partners an A of D
    s.put(fm(d2, "120000", "X_01P"), b"1")
    sensor = PureSensor(s, partner_days=lambda o, d: partner_days("b", o.key, d, 10), max_runs=1)
    plan = sensor.tick(d2)
    # the first B needs two runs (d2 and D): over the cap of 1 -> nothing this tick
    assert taken(plan) == [] and plan.stats.stopped_by == "runs"
    sensor.max_runs = 2
    plan = sensor.tick(d2)
    assert plan.run_days == [D, d2]
    assert [o.key for o, own in plan.partners[D]] == [fm(d2, "000004")] and plan.partners[D][0][1] == d2
    assert taken(plan) == [fm(d2, "000004"), fm(d2, "120000", "X_01P")]


def test_deleted_open_day_folder_is_pruned_then_closed():
    s = MemoryStore()
    s.put(k(D, "a"), b"1")
    sensor = PureSensor(s)
    sensor.tick(D)
    s.delete(k(D, "a"))
    plan = sensor.tick(D)
    assert plan.stats.pruned == 1 and sensor.cursor.days[D].ledger is None
    sensor.tick(D + timedelta(days=5))
    assert sensor.cursor.is_closed(D) and not sensor.cursor.days


def test_superseded_ledger_values_are_blanked_one_tick_later():
    s = MemoryStore()
    sensor = PureSensor(s)
    s.put(k(D, "a"), b"1")
    sensor.tick(D)
    ref1 = sensor.cursor.days[D].ledger
    s.put(k(D, "b"), b"1")
    sensor.tick(D)
    ref2 = sensor.cursor.days[D].ledger
    assert sensor.cursor.garbage == [f"{D:%Y%m%d}/{ref1}"]
    # the old value is still readable: the previous cursor may still be the committed one
    assert LedgerStore(sensor.kv, "t").load(D, ref1)
    sensor.tick(D)
    assert sensor.cursor.garbage == []
    with pytest.raises(LedgerCorrupt):
        LedgerStore(sensor.kv, "t").load(D, ref1)
    assert LedgerStore(sensor.kv, "t").load(D, ref2)


def test_an_uncommitted_tick_leaves_the_committed_state_intact():
    """A tick whose cursor Dagster never committed (crash after the KV write) must not
    change what the committed cursor means: the retried tick takes the same objects."""
    s = MemoryStore()
    s.put(k(D, "a"), b"1")
    sensor = PureSensor(s)
    sensor.tick(D)
    committed = sensor.cursor
    s.put(k(D, "b"), b"1")
    first = taken(sensor.tick(D))
    sensor.cursor = committed  # the daemon died: the cursor of that tick was never stored
    assert taken(sensor.tick(D)) == first == [k(D, "b")]


def test_listing_cost_follows_open_days_not_bucket_size():
    s = MemoryStore()
    for i in range(365):
        d = D - timedelta(days=i)
        for j in range(30):
            s.put(k(d, f"{j:03d}"), b"1")
    sensor = PureSensor(s, max_runs=400, max_objects=100_000)
    sensor.tick(D)  # turn-on over the full bucket
    s.put(k(D, "new"), b"1")
    plan = sensor.tick(D)
    assert taken(plan) == [k(D, "new")]
    assert plan.stats.listed == 3 * 30 + 1  # the three open days, nothing else
    assert len(sensor.cursor.encode()) < 600


def test_local_folder_store_works_the_same(tmp_path):
    s = LocalObjectStore(tmp_path)
    s.put(k(D, "b"), b"1")
    s.put(k(D, "a"), b"1")
    s.put("notaday/x", b"1")
    sensor = PureSensor(s)
    assert taken(sensor.tick(D)) == [k(D, "a"), k(D, "b")]
    s.put(k(D, "a"), b"1")  # same bytes, new file: a new etag for the local store
    assert taken(sensor.tick(D)) == [k(D, "a")]
    assert taken(sensor.tick(D)) == []


def test_flush_survives_daggers_all_or_nothing_upsert(tmp_path):
    """Against a real SQLite instance: new and existing keys in one flush both land."""
    from dagster import DagsterInstance

    with DagsterInstance.local_temp(str(tmp_path)) as instance:
        ls = LedgerStore(instance.daemon_cursor_storage, "ns")
        ref1 = ls.stage(D, {1, 2})
        ls.flush()
        ref2 = ls.stage(D, {3})
        ls.release([f"{D:%Y%m%d}/{ref1}"], [(D, ref2)])  # one existing key blanked + one new key
        ls.flush()
        assert LedgerStore(instance.daemon_cursor_storage, "ns").load(D, ref2) == {3}
        with pytest.raises(LedgerCorrupt):
            ls.load(D, ref1)
