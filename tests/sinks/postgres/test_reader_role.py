"""The read-only role of the README: it reads every sink table and runs the example
queries; it cannot write, nor create."""

from __future__ import annotations

from datetime import date

import psycopg2
import pytest
from psycopg2 import sql

from failmap_assets.sinks.postgres.reader_role import EXAMPLE_QUERIES, PATTERN_QUERIES, READER_ROLE, reader_role_sql
from failmap_assets.sinks.postgres.sink_day import run_sink_day
from failmap_assets.sinks.postgres.tables import SINK_TABLES
from failmap_assets.storage.local_store import LocalObjectStore
from tests.support.postgres_sink import target, wafer_rows
from tests.support.summary_days import commit_summaries

DAY = date.today()   # the example query looks at the last 7 days


@pytest.fixture
def reader(sink_db, tmp_path):
    out = LocalObjectStore(tmp_path)
    commit_summaries(out, DAY, wafer_rows(DAY, 30))
    run_sink_day(day=DAY, out=out, target=target(sink_db), log=lambda m: None)
    password = "reader-pw-4711"
    admin = sink_db.connect()
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(READER_ROLE)))
        for statement in reader_role_sql(database=sink_db.db, loader=sink_db.user):
            cur.execute(statement)
        cur.execute(sql.SQL("ALTER ROLE {} PASSWORD %s").format(sql.Identifier(READER_ROLE)), (password,))
    conn = psycopg2.connect(host=sink_db.host, port=sink_db.port, user=READER_ROLE, password=password,
                            dbname=sink_db.db, connect_timeout=5)
    yield conn
    conn.close()
    with admin.cursor() as cur:   # a role is the cluster's: dropped with what it was granted
        cur.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(READER_ROLE)))
        cur.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(READER_ROLE)))
    admin.close()


def test_the_reader_selects_and_runs_the_example_queries(reader):
    with reader.cursor() as cur:
        for table in ("wafer_summary", "lot_summary", "failmap_loaded_days", "failmap_schema_version"):
            cur.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
            assert cur.fetchone()[0] > 0, table
        for spec in SINK_TABLES:   # granted too (the day has no pattern commits: no rows)
            cur.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(spec.name)))
        for query in EXAMPLE_QUERIES:
            cur.execute(query)
            assert cur.fetchall(), query
        for query in PATTERN_QUERIES:   # allowed (no pattern rows on this day: they answer nothing)
            cur.execute(query)
            assert cur.fetchall() == [], query
    reader.rollback()


@pytest.mark.parametrize("statement", [
    "INSERT INTO wafer_summary (day, source, wafer_token, object_key) VALUES ('2026-01-01', 'x', 'y', 'z')",
    "DELETE FROM lot_summary",
    "UPDATE failmap_loaded_days SET rows = 0",
    "CREATE TABLE mine (x int)",
])
def test_the_reader_cannot_write(reader, statement):
    with reader.cursor() as cur, pytest.raises((psycopg2.errors.InsufficientPrivilege,
                                                psycopg2.errors.ReadOnlySqlTransaction)):
        cur.execute(statement)
    reader.rollback()


def test_the_reader_cannot_write_even_in_a_read_write_transaction(reader):
    with reader.cursor() as cur:
        cur.execute("SET TRANSACTION READ WRITE")
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute("INSERT INTO wafer_summary (day, source, wafer_token, object_key) "
                        "VALUES ('2026-01-01', 'x', 'y', 'z')")
    reader.rollback()


def test_the_readme_shows_exactly_these_statements():
    from tests.support.testdata import REPO

    readme = (REPO / "README.md").read_text()
    section = readme.split("## PostgreSQL sink", 1)[1].split("\n## ", 1)[0]
    grants = ";\n".join(reader_role_sql(database="yield", loader="failmap_loader")) + ";"
    assert f"```sql\n{grants}\n```" in section
    assert f"```sql\n{EXAMPLE_QUERIES[0]};\n\n{EXAMPLE_QUERIES[1]};\n```" in section
    assert f"```sql\n{PATTERN_QUERIES[0]};\n\n{PATTERN_QUERIES[1]};\n```" in section
    assert "PostgreSQL sink off: set FAILMAP_POSTGRES_DSN" in section and "FAILMAP_POSTGRES_DSN" in readme
