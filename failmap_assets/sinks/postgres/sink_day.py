"""One day of the sink: read the day's committed tables, connect, migrate, load.

The tables are read before connecting (a slow object store never holds a database
session or a lock). Any database error is raised as PostgresSinkError with a message
that names the day and says the day was rolled back, scrubbed of the DSN.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date

from failmap_assets.sinks.postgres.connection import PostgresSinkError, PostgresTarget, connect, describe, redact
from failmap_assets.sinks.postgres.day_tables import read_day_tables
from failmap_assets.sinks.postgres.load import DuplicateKey, TableLoad, load_day
from failmap_assets.sinks.postgres.schema import MigrationReport, SchemaTooNew, migrate
from failmap_assets.sinks.postgres.tables import SINK_TABLES, TableSpec
from failmap_assets.storage.object_store import ObjectStore


@dataclass
class SinkReport:
    target: str = ""                      # user@host:port/database
    migration: MigrationReport | None = None
    tables: list[TableLoad] = field(default_factory=list)
    missing: dict[str, str] = field(default_factory=dict)   # table -> why it was not loaded
    seconds: float = 0.0


def run_sink_day(*, day: date, out: ObjectStore, target: PostgresTarget,
                 specs: Sequence[TableSpec] = SINK_TABLES, log: Callable[[str], None] = print) -> SinkReport:
    """Bring the day's rows in PostgreSQL to the day's committed tables."""
    started = time.monotonic()
    report = SinkReport()
    tables, report.missing = read_day_tables(out, day, specs)
    for name, why in report.missing.items():
        log(f"{name} of {day}: not loaded ({why})")
    conn = connect(target)
    try:
        report.target = describe(conn)
        report.migration = _step(day, "migrating the schema", target, lambda: migrate(conn))
        if report.migration.applied:
            log(f"PostgreSQL {report.target}: sink schema {report.migration.before} -> {report.migration.after}")
        if tables:
            report.tables = _step(day, "loading the day", target, lambda: load_day(conn, day, tables))
    finally:
        with contextlib.suppress(Exception):
            conn.close()
    for t in report.tables:
        log(f"{t.table} of {day}: {t.skipped}" if t.skipped else
            f"{t.table} of {day}: {t.rows} rows (inserted {t.inserted}, updated {t.updated}, "
            f"unchanged {t.unchanged}, deleted {t.deleted}), commit generation {t.generation}")
    report.seconds = time.monotonic() - started
    return report


def _step(day: date, what: str, target: PostgresTarget, fn):
    import psycopg2

    try:
        return fn()
    except (SchemaTooNew, DuplicateKey, ValueError) as exc:
        raise PostgresSinkError(f"PostgreSQL sink, {day}: {redact(str(exc), target.dsn)}") from None
    except psycopg2.Error as exc:
        raise PostgresSinkError(
            f"PostgreSQL sink, {day}: {what} failed; its transaction was rolled back, so the day's rows in "
            f"PostgreSQL are as they were before this run; re-run the partition. {type(exc).__name__}: {redact(str(exc).strip(), target.dsn)}") from None
