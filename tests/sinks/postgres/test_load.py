"""A day's load against a real PostgreSQL server: first load, re-load, a changed day,
any order of runs, concurrent loads of one day."""

from __future__ import annotations

import threading
from datetime import date

import polars as pl
import pytest

from failmap_assets.sinks.postgres.connection import connect
from failmap_assets.sinks.postgres.load import DayTable, load_day
from failmap_assets.sinks.postgres.schema import LOCK_NAMESPACE, migrate
from failmap_assets.sinks.postgres.tables import LOT_SUMMARY, WAFER_SUMMARY
from tests.support.postgres_sink import all_rows, changed_day, day_tables, rows_of, sort, target, wafer_rows

DAY = date(2026, 1, 11)


def load(server, tables, day=DAY):
    conn = connect(target(server))
    try:
        migrate(conn)
        return {t.table: t for t in load_day(conn, day, tables)}
    finally:
        conn.close()


def test_first_load_holds_exactly_the_days_rows(sink_db):
    wafers = wafer_rows(DAY, 60)
    tables = day_tables(wafers)
    done = load(sink_db, tables)
    for t in tables:
        assert rows_of(sink_db, t.spec, DAY).equals(sort(t.frame, t.spec)), t.spec.name
        assert done[t.spec.name].inserted == t.frame.height and done[t.spec.name].deleted == 0
    lots = tables[1].frame
    assert lots["lot"].null_count() == 1 and lots["step"].null_count() == 1   # null keys loaded as such
    assert (wafers["product"] == "").any() and wafers["tester"].str.contains("\n").any()
    assert wafers["bins"].list.len().sum() > 0


def test_a_nul_character_cannot_fail_the_day(sink_db):
    wafers = wafer_rows(DAY, 3).with_columns(pl.lit("T\x001").alias("tester"))
    wafers = wafers.with_columns(pl.col("bins").list.eval(
        pl.element().struct.with_fields(pl.lit("bad\x00name").alias("name"))))
    load(sink_db, [DayTable(WAFER_SUMMARY, wafers, 1)])
    got = rows_of(sink_db, WAFER_SUMMARY, DAY)
    assert set(got["tester"]) == {"T\ufffd1"}
    assert set(got["bins"].explode().struct.field("name")) == {"bad\ufffdname"}


def test_reload_is_idempotent_row_for_row(sink_db):
    tables = day_tables(wafer_rows(DAY, 40))
    load(sink_db, tables)
    before = {t: all_rows(sink_db, t) for t in ("wafer_summary", "lot_summary")}
    again = load(sink_db, tables)
    assert {t: all_rows(sink_db, t) for t in before} == before
    assert all(r.inserted == r.updated == r.deleted == 0 and r.unchanged == r.rows for r in again.values())


def test_a_changed_day_converges_to_a_clean_load(sink_db, postgres_session):
    old = wafer_rows(DAY, 40)
    new = changed_day(old)
    other_day = wafer_rows(date(2026, 1, 12), 10, seed=2)
    load(sink_db, day_tables(other_day), date(2026, 1, 12))
    load(sink_db, day_tables(old, 1))
    done = load(sink_db, day_tables(new, 2))
    assert done["wafer_summary"].deleted == 2 and done["wafer_summary"].inserted == 1
    assert done["wafer_summary"].updated == new.height - 1    # a new commit generation on every other row
    for t in day_tables(new):
        assert rows_of(sink_db, t.spec, DAY).equals(sort(t.frame, t.spec))
    # another day is untouched
    assert rows_of(sink_db, WAFER_SUMMARY, date(2026, 1, 12)).equals(sort(other_day, WAFER_SUMMARY))


def test_any_order_of_runs_leaves_the_newest_commit(sink_db, postgres_session):
    old, new = wafer_rows(DAY, 30), changed_day(wafer_rows(DAY, 30))
    load(sink_db, day_tables(new, 2))
    expected = {t: all_rows(sink_db, t) for t in ("wafer_summary", "lot_summary")}
    late = load(sink_db, day_tables(old, 1))   # a slow run holding the older commit finishes last
    assert all(r.skipped for r in late.values())
    assert {t: all_rows(sink_db, t) for t in expected} == expected


def test_an_empty_day_deletes_its_rows(sink_db):
    load(sink_db, day_tables(wafer_rows(DAY, 20), 1))
    load(sink_db, day_tables(wafer_rows(DAY, 0), 2))
    assert rows_of(sink_db, WAFER_SUMMARY, DAY).height == 0 and rows_of(sink_db, LOT_SUMMARY, DAY).height == 0


def test_duplicate_keys_fail_before_touching_the_database(sink_db):
    wafers = wafer_rows(DAY, 10)
    load(sink_db, day_tables(wafers, 1))
    before = all_rows(sink_db, "wafer_summary")
    doubled = pl.concat([wafers, wafers.head(1)])
    with pytest.raises(ValueError, match="wafer_summary: 1 key"):
        load(sink_db, [DayTable(WAFER_SUMMARY, doubled, 2)])
    assert all_rows(sink_db, "wafer_summary") == before


def test_two_loads_of_one_day_serialize(sink_db):
    a, b = wafer_rows(DAY, 30, seed=1), changed_day(wafer_rows(DAY, 30, seed=1))
    load(sink_db, day_tables(a, 1))
    blocker = sink_db.connect()
    with blocker.cursor() as cur:          # hold the day's lock: both loads queue behind it
        cur.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_NAMESPACE, DAY.toordinal()))
    errors = []

    def run(tables):
        try:
            load(sink_db, tables)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(day_tables(x, 3),)) for x in (a, b)]
    for t in threads:
        t.start()
    watcher = sink_db.connect()
    watcher.autocommit = True
    with watcher.cursor() as cur:
        for _ in range(200):
            cur.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'advisory' AND datname = %s",
                        (sink_db.db,))
            if cur.fetchone()[0] == 2:
                break
            threading.Event().wait(0.05)
        else:
            pytest.fail("the two loads never waited on the day's lock")
    blocker.rollback()
    for t in threads:
        t.join(60)
    blocker.close()
    watcher.close()
    assert not errors
    got = rows_of(sink_db, WAFER_SUMMARY, DAY)
    assert got.equals(sort(a, WAFER_SUMMARY)) or got.equals(sort(b, WAFER_SUMMARY))
    lots = rows_of(sink_db, LOT_SUMMARY, DAY)
    from failmap_assets.yield_view.summaries import lot_summary
    assert lots.equals(sort(lot_summary(got), LOT_SUMMARY))    # the two tables of one load, never a mix
