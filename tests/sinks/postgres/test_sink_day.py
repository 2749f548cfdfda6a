"""A whole day of the sink (sinks/postgres/sink_day.py): the committed tables only, a
day not committed yet, a connection lost in the middle of the load."""

from __future__ import annotations

import threading
import time
from datetime import date

import pytest

from failmap_assets.sinks.postgres.connection import APPLICATION_NAME, PostgresSinkError
from failmap_assets.sinks.postgres.sink_day import run_sink_day
from failmap_assets.sinks.postgres.tables import LOT_SUMMARY, SINK_TABLES, WAFER_SUMMARY
from failmap_assets.storage.layout import table_file
from failmap_assets.storage.local_store import LocalObjectStore
from failmap_assets.storage.parquet_io import write_table
from failmap_assets.yield_view.summaries import lot_summary
from tests.support.postgres_sink import all_rows, changed_day, rows_of, sort, target, wafer_rows
from tests.support.summary_days import commit_summaries

DAY = date(2026, 1, 11)


def sink(server, out):
    return run_sink_day(day=DAY, out=out, target=target(server), log=lambda m: None)


def test_only_the_committed_files_are_loaded(sink_db, tmp_path):
    out = LocalObjectStore(tmp_path)
    wafers = wafer_rows(DAY, 20)
    commit_summaries(out, DAY, wafers)
    # a crashed run's file beside the committed one: never read
    write_table(out, table_file("wafer_summary", DAY, "crashed-run"), wafer_rows(DAY, 50, seed=9))
    report = sink(sink_db, out)
    assert rows_of(sink_db, WAFER_SUMMARY, DAY).equals(sort(wafers, WAFER_SUMMARY))
    assert rows_of(sink_db, LOT_SUMMARY, DAY).equals(sort(lot_summary(wafers), LOT_SUMMARY))
    assert [t.rows for t in report.tables] == [wafers.height, lot_summary(wafers).height]
    assert report.target == f"{sink_db.user}@{sink_db.host}:{sink_db.port}/{sink_db.db}"


def test_a_day_without_committed_summaries_is_reported_and_touches_nothing(sink_db, tmp_path):
    out = LocalObjectStore(tmp_path)
    commit_summaries(out, date(2026, 1, 10), wafer_rows(date(2026, 1, 10), 5))
    run_sink_day(day=date(2026, 1, 10), out=out, target=target(sink_db), log=lambda m: None)
    before = all_rows(sink_db, "wafer_summary")
    report = sink(sink_db, out)
    assert report.tables == [] and set(report.missing) == {s.name for s in SINK_TABLES}
    assert "no committed summaries day yet" in report.missing["wafer_summary"]
    assert all_rows(sink_db, "wafer_summary") == before


def backend_waiting_on(server, table: str, timeout_s: float = 30.0) -> int:
    """The pid of the sink's session once it waits for a lock on ``table``."""
    conn = server.connect()
    conn.autocommit = True
    deadline = time.monotonic() + timeout_s
    try:
        with conn.cursor() as cur:
            while time.monotonic() < deadline:
                cur.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s AND datname = %s "
                            "AND wait_event_type = 'Lock' AND query LIKE %s",
                            (APPLICATION_NAME, server.db, f'%INSERT INTO "{table}"%'))
                row = cur.fetchone()
                if row:
                    return row[0]
                time.sleep(0.05)
    finally:
        conn.close()
    pytest.fail(f"the sink never waited on {table}")


def test_a_connection_lost_mid_load_rolls_the_day_back_and_the_rerun_completes(sink_db, tmp_path):
    out = LocalObjectStore(tmp_path)
    old = wafer_rows(DAY, 40)
    commit_summaries(out, DAY, old)
    sink(sink_db, out)
    before = {t: all_rows(sink_db, t) for t in ("wafer_summary", "lot_summary", "failmap_loaded_days")}
    new = changed_day(old)
    commit_summaries(out, DAY, new)

    # Hold lot_summary: the sink copies and upserts wafer_summary, copies lot_summary,
    # then waits to write lot_summary. Its backend is terminated there, mid-load.
    holder = sink_db.connect()
    with holder.cursor() as cur:
        cur.execute("LOCK TABLE lot_summary IN EXCLUSIVE MODE")
    failure: list[BaseException] = []
    run = threading.Thread(target=lambda: failure.extend(_raised(lambda: sink(sink_db, out))))
    run.start()
    pid = backend_waiting_on(sink_db, "lot_summary")
    # a reader meanwhile: the day as it was, though wafer_summary's new rows are written
    assert all_rows(sink_db, "wafer_summary") == before["wafer_summary"]
    killer = sink_db.connect()
    killer.autocommit = True
    with killer.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
    killer.close()
    run.join(60)
    holder.rollback()
    holder.close()

    assert len(failure) == 1 and isinstance(failure[0], PostgresSinkError)
    message = str(failure[0])
    assert "loading the day failed" in message and "rolled back" in message and "re-run" in message
    assert sink_db.password not in message
    assert {t: all_rows(sink_db, t) for t in before} == before      # no half-loaded day

    sink(sink_db, out)                                                # the rerun completes
    assert rows_of(sink_db, WAFER_SUMMARY, DAY).equals(sort(new, WAFER_SUMMARY))
    assert rows_of(sink_db, LOT_SUMMARY, DAY).equals(sort(lot_summary(new), LOT_SUMMARY))


def _raised(fn) -> list[BaseException]:
    try:
        fn()
    except BaseException as exc:  # noqa: BLE001 - handed to the test
        return [exc]
    return []
