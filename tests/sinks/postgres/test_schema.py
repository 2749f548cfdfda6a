"""The sink's schema: created from nothing, migrated from an older version by hand,
concurrent first starts, a newer database refused, and the migrations ending at
exactly the columns the tables' Arrow schemas give."""

from __future__ import annotations

import threading
from datetime import date

import polars as pl
import pytest

from failmap_assets.sinks.postgres.connection import PostgresSinkError, connect
from failmap_assets.sinks.postgres.schema import MIGRATIONS, SCHEMA_VERSION, SchemaTooNew, migrate, schema_version
from failmap_assets.sinks.postgres.sink_day import run_sink_day
from failmap_assets.sinks.postgres.load import load_day
from failmap_assets.sinks.postgres.tables import (
    SIMILAR_WAFERS,
    SINK_TABLES,
    WAFER_ANOMALY,
    WAFER_SIGNATURES,
    WAFER_SUMMARY,
    columns_except,
    pg_type,
)
from failmap_assets.storage.local_store import LocalObjectStore
from tests.support.postgres_sink import all_rows, day_tables, rows_of, sort, target, wafer_rows
from tests.support.summary_days import commit_summaries

DAY = date(2026, 1, 11)


def columns(server, table: str) -> dict[str, str]:
    conn = server.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT column_name, format_type(a.atttypid, a.atttypmod) FROM information_schema.columns c "
                        "JOIN pg_attribute a ON a.attrelid = (quote_ident(c.table_schema) || '.' || "
                        "quote_ident(c.table_name))::regclass AND a.attname = c.column_name "
                        "WHERE c.table_name = %s ORDER BY c.ordinal_position", (table,))
            return dict(cur.fetchall())
    finally:
        conn.close()


def canonical(server, cols: list[tuple[str, str]]) -> dict[str, str]:
    """PostgreSQL's own names of the types (timestamp -> timestamp without time zone)."""
    conn = server.connect()
    try:
        with conn.cursor() as cur:
            out = {}
            for name, t in cols:
                cur.execute("SELECT %s::regtype::text", (t,))
                out[name] = cur.fetchone()[0]
            return out
    finally:
        conn.close()


def test_a_new_database_gets_every_migration_and_the_specs_columns(sink_db):
    conn = connect(target(sink_db))
    try:
        report = migrate(conn)
        assert (report.before, report.after, report.applied) == (0, SCHEMA_VERSION, tuple(range(1, SCHEMA_VERSION + 1)))
        again = migrate(conn)
        assert again.applied == () and again.after == SCHEMA_VERSION
        assert schema_version(conn) == SCHEMA_VERSION
        with conn, conn.cursor() as cur:
            cur.execute("SELECT version, description FROM failmap_schema_version ORDER BY version")
            assert cur.fetchall() == [(m.version, m.description) for m in MIGRATIONS]
    finally:
        conn.close()
    # the frozen migrations end at what today's Arrow schemas map to: a column added to a
    # summary without a migration adding it fails here
    for spec in SINK_TABLES:
        assert columns(sink_db, spec.name) == canonical(sink_db, spec.pg_columns()), spec.name


def test_pg_types_of_arrow_types():
    import pyarrow as pa

    assert pg_type(pa.large_string()) == pg_type(pa.dictionary(pa.int32(), pa.string())) == "text"
    assert pg_type(pa.int64()) == "bigint" and pg_type(pa.int32()) == "integer" and pg_type(pa.int16()) == "smallint"
    assert pg_type(pa.float64()) == "double precision" and pg_type(pa.float32()) == "real"
    assert pg_type(pa.timestamp("us")) == "timestamp" and pg_type(pa.timestamp("us", "UTC")) == "timestamptz"
    assert pg_type(pa.list_(pa.struct({"bin": pa.int64()}))) == "jsonb" and pg_type(pa.date32()) == "date"
    with pytest.raises(TypeError, match="'blob'"):
        pg_type(pa.binary(), "blob")
    assert dict(WAFER_SUMMARY.pg_columns())["bins"] == "jsonb"
    # lists of numbers are arrays (the embedding: BI tools index and unnest it), not jsonb
    assert pg_type(pa.list_(pa.float32(), 48)) == "real[]" and pg_type(pa.list_(pa.float64())) == "double precision[]"
    assert pg_type(pa.large_list(pa.int32())) == "integer[]"
    assert dict(WAFER_SIGNATURES.pg_columns())["embedding"] == "real[]" and WAFER_SIGNATURES.json_columns() == []


def test_the_pattern_specs_leave_out_the_raster_and_their_own_day():
    assert "raster" not in WAFER_SIGNATURES.columns and "embedding" in WAFER_SIGNATURES.columns
    for spec in (WAFER_SIGNATURES, WAFER_ANOMALY, SIMILAR_WAFERS):
        assert [c for c, _ in spec.pg_columns()].count("day") == 1, spec.name
    assert SIMILAR_WAFERS.keys == (*WAFER_SUMMARY.keys, "rank") and WAFER_ANOMALY.keys == WAFER_SUMMARY.keys
    with pytest.raises(ValueError, match="rastr"):
        columns_except({"raster": pl.Float32}, "rastr")


V1_BY_HAND = """
CREATE TABLE failmap_schema_version (version integer PRIMARY KEY, description text NOT NULL,
                                     applied_at timestamptz NOT NULL DEFAULT now());
INSERT INTO failmap_schema_version (version, description) VALUES (1, 'wafer_summary and lot_summary');
CREATE TABLE wafer_summary (
  day date NOT NULL, source text NOT NULL, lot text, wafer text, wafer_token text NOT NULL, insertion text,
  product text, step text, tester text, file_time timestamp, dies bigint, pass_dies bigint,
  yield_pct double precision, centre_dies bigint, centre_pass_dies bigint, centre_yield_pct double precision,
  middle_dies bigint, middle_pass_dies bigint, middle_yield_pct double precision, edge_dies bigint,
  edge_pass_dies bigint, edge_yield_pct double precision, bins jsonb, latest boolean, object_key text NOT NULL,
  partner_key text, source_format text,
  CONSTRAINT wafer_summary_key PRIMARY KEY (day, source, object_key, wafer_token));
CREATE TABLE lot_summary (
  day date NOT NULL, source text NOT NULL, lot text, step text, product text, wafers bigint, test_events bigint,
  retested_wafers bigint, dies bigint, pass_dies bigint, yield_pct double precision,
  yield_pct_mean double precision, yield_pct_min double precision, yield_pct_max double precision,
  worst_bins jsonb, centre_dies bigint, centre_yield_pct double precision, middle_dies bigint,
  middle_yield_pct double precision, edge_dies bigint, edge_yield_pct double precision,
  CONSTRAINT lot_summary_key UNIQUE NULLS NOT DISTINCT (day, source, lot, step));
-- a day loaded by the version-1 sink, and a row of a wafer that has since been deleted
INSERT INTO wafer_summary (day, source, wafer_token, object_key, dies, pass_dies, bins, latest)
VALUES ('2026-01-10', 'failmap', 'OLD_01', '20260110/OLD_01_P_080000.txt', 100, 90, '[]', true),
       ('2026-01-11', 'failmap', 'GONE_01', '20260111/GONE_01_P_080000.txt', 100, 10, '[]', true);
"""


def test_a_version_1_database_is_migrated_and_loaded(sink_db, tmp_path):
    conn = sink_db.connect()
    with conn, conn.cursor() as cur:
        cur.execute(V1_BY_HAND)
    conn.close()
    out = LocalObjectStore(tmp_path)
    wafers = wafer_rows(DAY, 30)
    generation = commit_summaries(out, DAY, wafers)
    report = run_sink_day(day=DAY, out=out, target=target(sink_db), log=lambda m: None)
    assert (report.migration.before, report.migration.after) == (1, SCHEMA_VERSION)
    for spec in SINK_TABLES:
        assert columns(sink_db, spec.name) == canonical(sink_db, spec.pg_columns())
    assert rows_of(sink_db, WAFER_SUMMARY, DAY).equals(sort(wafers, WAFER_SUMMARY))   # the gone wafer is gone
    conn = sink_db.connect()
    with conn, conn.cursor() as cur:
        cur.execute("SELECT day, wafer_token, commit_generation FROM wafer_summary WHERE day <> %s", (DAY,))
        assert cur.fetchall() == [(date(2026, 1, 10), "OLD_01", None)]      # the older day's row kept, as it was
        cur.execute("SELECT DISTINCT commit_generation FROM wafer_summary WHERE day = %s", (DAY,))
        assert cur.fetchall() == [(generation,)]
        cur.execute("SELECT table_name, commit_generation, rows FROM failmap_loaded_days ORDER BY 1")
        assert cur.fetchall() == [("lot_summary", generation, report.tables[1].rows),
                                  ("wafer_summary", generation, wafers.height)]
    conn.close()


def test_a_version_3_database_gets_the_pattern_tables_and_keeps_its_rows(sink_db, tmp_path):
    conn = connect(target(sink_db))
    try:
        assert migrate(conn, MIGRATIONS[:3]).after == 3
        load_day(conn, DAY, day_tables(wafer_rows(DAY, 10)))     # a day loaded by the version-3 sink
        with conn, conn.cursor() as cur:
            cur.execute("SELECT to_regclass('wafer_signatures') IS NULL")
            assert cur.fetchone()[0]
    finally:
        conn.close()
    before = {t: all_rows(sink_db, t) for t in ("wafer_summary", "lot_summary", "failmap_loaded_days")}
    out = LocalObjectStore(tmp_path)     # another day, with summaries only
    other = date(2026, 1, 12)
    commit_summaries(out, other, wafer_rows(other, 5))
    report = run_sink_day(day=other, out=out, target=target(sink_db), log=lambda m: None)
    assert (report.migration.before, report.migration.after, report.migration.applied) == (3, 4, (4,))
    assert set(report.missing) == {"wafer_signatures", "wafer_anomaly", "similar_wafers"}
    for spec in SINK_TABLES:
        assert columns(sink_db, spec.name) == canonical(sink_db, spec.pg_columns()), spec.name
    after = {t: [r for r in all_rows(sink_db, t) if "2026-01-12" not in r] for t in before}
    assert after == before                # the older day's rows as they were
    conn = sink_db.connect()
    with conn, conn.cursor() as cur:      # the keys: a second row of the same test event (and rank) is refused
        cur.execute("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = ANY(%s) ORDER BY conname",
                    (["similar_wafers_key", "wafer_anomaly_key", "wafer_signatures_key"],))
        assert [r[0] for r in cur.fetchall()] == [
            "PRIMARY KEY (day, source, object_key, wafer_token, rank)",
            "PRIMARY KEY (day, source, object_key, wafer_token)",
            "PRIMARY KEY (day, source, object_key, wafer_token)"]
    conn.close()


def test_sinks_starting_at_once_migrate_once(sink_db):
    errors, reports = [], []

    def start():
        try:
            conn = connect(target(sink_db))
            try:
                reports.append(migrate(conn))
            finally:
                conn.close()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert sorted(v for r in reports for v in r.applied) == list(range(1, SCHEMA_VERSION + 1))


def test_a_newer_database_is_refused_and_left_alone(sink_db, tmp_path):
    conn = connect(target(sink_db))
    migrate(conn)
    with conn, conn.cursor() as cur:
        cur.execute("INSERT INTO failmap_schema_version (version, description) VALUES (%s, 'from the future')",
                    (SCHEMA_VERSION + 1,))
    with pytest.raises(SchemaTooNew, match="upgrade failmap-assets"):
        migrate(conn)
    conn.close()
    out = LocalObjectStore(tmp_path)
    commit_summaries(out, DAY, wafer_rows(DAY, 5))
    with pytest.raises(PostgresSinkError, match=f"version {SCHEMA_VERSION + 1}, newer"):
        run_sink_day(day=DAY, out=out, target=target(sink_db), log=lambda m: None)
    assert rows_of(sink_db, WAFER_SUMMARY, DAY).height == 0
