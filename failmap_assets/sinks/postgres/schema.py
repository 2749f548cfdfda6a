"""The sink's schema, created and migrated by the project: ordered, versioned migrations.

``failmap_schema_version`` holds one row per migration applied (version, what it did,
when). ``migrate`` applies the missing ones in order, each in its own transaction
together with its row in that table, under an advisory lock so two sinks starting at
once do not both migrate. A migration is frozen once released: its columns are
written out here, not derived from today's code, so a database created by any
version reaches the same schema. A new column comes in a new migration as
``ALTER TABLE ... ADD COLUMN`` (nullable), so an older database keeps its rows and
keeps working; ``tests/sinks/postgres/test_schema.py`` checks that the migrations end
at exactly the columns the specs' Arrow schemas give (``tables.py``).

A database whose version is newer than this code's is refused (an older sink would
load rows without the newer columns' values).

Versions:
1. ``wafer_summary`` and ``lot_summary`` (keys: see ``tables.py``)
2. ``commit_generation`` on both, and ``failmap_loaded_days``: per table and day, the
   commit generation loaded, its rows and when (what a BI tool shows as freshness;
   what keeps an older commit from overwriting a newer one)
3. ``lot_summary``: the lot's merged final result
4. ``wafer_signatures``, ``wafer_anomaly`` and ``similar_wafers`` (the pattern tables;
   keys and what is left out: see ``tables.py``)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from failmap_assets.sinks.postgres.tables import DAY_COLUMN

VERSION_TABLE = "failmap_schema_version"
LOADED_DAYS_TABLE = "failmap_loaded_days"
#: First key of every advisory lock the sink takes (``pg_advisory_xact_lock(int, int)``):
#: "fail" in ASCII. Second key: 0 for migrations, the day's ordinal for a day's load.
LOCK_NAMESPACE = 0x6661696C
MIGRATION_LOCK = 0

_IDENT = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def ident(name: str) -> str:
    """A quoted SQL identifier; only our own lower-case names are accepted."""
    if not _IDENT.fullmatch(name):
        raise ValueError(f"{name!r} is not a sink identifier")
    return f'"{name}"'


def create_table(table: str, columns: Sequence[tuple[str, str]], keys: Sequence[str],
                 nullable_keys: Sequence[str] = ()) -> str:
    """``CREATE TABLE`` with its key: a primary key when no key column may be null, else
    ``UNIQUE NULLS NOT DISTINCT`` (two null lots are the same lot)."""
    cols = [f"{ident(c)} {t}{' NOT NULL' if c in keys and c not in nullable_keys else ''}" for c, t in columns]
    kind = "UNIQUE NULLS NOT DISTINCT" if nullable_keys else "PRIMARY KEY"
    key = f"CONSTRAINT {ident(table + '_key')} {kind} ({', '.join(ident(k) for k in keys)})"
    return f"CREATE TABLE {ident(table)} (\n  " + ",\n  ".join([*cols, key]) + "\n)"


def add_column(table: str, column: str, pg_type: str) -> str:
    return f"ALTER TABLE {ident(table)} ADD COLUMN {ident(column)} {pg_type}"


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


def _zones(with_pass: bool) -> list[tuple[str, str]]:
    out = []
    for z in ("centre", "middle", "edge"):
        out.append((f"{z}_dies", "bigint"))
        if with_pass:
            out.append((f"{z}_pass_dies", "bigint"))
        out.append((f"{z}_yield_pct", "double precision"))
    return out


# Version 1's columns, as released (SUMMARY_VERSION 2 of yield_view/summaries.py).
_V1_WAFER_SUMMARY = [
    (DAY_COLUMN, "date"), ("source", "text"), ("lot", "text"), ("wafer", "text"), ("wafer_token", "text"),
    ("insertion", "text"), ("product", "text"), ("step", "text"), ("tester", "text"), ("file_time", "timestamp"),
    ("dies", "bigint"), ("pass_dies", "bigint"), ("yield_pct", "double precision"), *_zones(with_pass=True),
    ("bins", "jsonb"), ("latest", "boolean"), ("object_key", "text"), ("partner_key", "text"),
    ("source_format", "text"),
]
_V1_LOT_SUMMARY = [
    (DAY_COLUMN, "date"), ("source", "text"), ("lot", "text"), ("step", "text"), ("product", "text"),
    ("wafers", "bigint"), ("test_events", "bigint"), ("retested_wafers", "bigint"), ("dies", "bigint"),
    ("pass_dies", "bigint"), ("yield_pct", "double precision"), ("yield_pct_mean", "double precision"),
    ("yield_pct_min", "double precision"), ("yield_pct_max", "double precision"), ("worst_bins", "jsonb"),
    *_zones(with_pass=False),
]

# Version 4's columns, as released (PATTERNS_DAY_VERSION 1 of patterns/tables.py).
_V4_EVENT = [(DAY_COLUMN, "date"), ("commit_generation", "bigint"), ("source", "text"), ("wafer_token", "text"),
             ("object_key", "text")]
_V4_NEIGHBOUR = [("lot", "text"), ("wafer", "text"), ("product", "text"), ("step", "text"), ("label", "text")]
_V4_WAFER_SIGNATURES = [
    *_V4_EVENT, ("lot", "text"), ("wafer", "text"), ("insertion", "text"), ("product", "text"), ("step", "text"),
    ("file_time", "timestamp"), ("latest", "boolean"), ("flat", "text"), ("die_aspect", "double precision"),
    ("die_aspect_known", "boolean"), ("label", "text"), ("confidence", "double precision"), ("evidence", "text"),
    ("dies", "bigint"), ("fail_dies", "bigint"), ("embedding", "real[]"),
]
_V4_WAFER_ANOMALY = [
    *_V4_EVENT, *_V4_NEIGHBOUR, ("confidence", "double precision"), ("anomaly_score", "double precision"),
    ("threshold", "double precision"), ("anomalous", "boolean"), ("bank_size", "bigint"), ("index_version", "text"),
    ("reason", "text"),
]
_V4_SIMILAR_WAFERS = [
    *_V4_EVENT, *_V4_NEIGHBOUR, ("rank", "integer"), ("similar_day", "date"), ("similar_source", "text"),
    ("similar_wafer_token", "text"), ("similar_object_key", "text"),
    *[(f"similar_{c}", t) for c, t in _V4_NEIGHBOUR], ("similar_file_time", "timestamp"),
    ("similarity", "double precision"), ("distance", "double precision"), ("index_version", "text"),
]
_V4_EVENT_KEY = (DAY_COLUMN, "source", "object_key", "wafer_token")

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "wafer_summary and lot_summary", (
        create_table("wafer_summary", _V1_WAFER_SUMMARY, (DAY_COLUMN, "source", "object_key", "wafer_token")),
        create_table("lot_summary", _V1_LOT_SUMMARY, (DAY_COLUMN, "source", "lot", "step"),
                     nullable_keys=("lot", "step")),
    )),
    Migration(2, "commit_generation on every table; failmap_loaded_days", (
        add_column("wafer_summary", "commit_generation", "bigint"),
        add_column("lot_summary", "commit_generation", "bigint"),
        create_table(LOADED_DAYS_TABLE, [("table_name", "text"), (DAY_COLUMN, "date"), ("commit_generation", "bigint"),
                                         ("rows", "bigint"), ("loaded_at", "timestamptz")],
                     ("table_name", DAY_COLUMN)),
    )),
    Migration(3, "lot_summary: the lot's final result, its wafers merged over their insertions", (
        add_column("lot_summary", "merged_dies", "bigint"),
        add_column("lot_summary", "merged_pass_dies", "bigint"),
        add_column("lot_summary", "merged_yield_pct", "double precision"),
    )),
    Migration(4, "wafer_signatures, wafer_anomaly and similar_wafers (the pattern tables)", (
        create_table("wafer_signatures", _V4_WAFER_SIGNATURES, _V4_EVENT_KEY),
        create_table("wafer_anomaly", _V4_WAFER_ANOMALY, _V4_EVENT_KEY),
        create_table("similar_wafers", _V4_SIMILAR_WAFERS, (*_V4_EVENT_KEY, "rank")),
    )),
)
SCHEMA_VERSION = MIGRATIONS[-1].version

_VERSION_DDL = (f"CREATE TABLE IF NOT EXISTS {ident(VERSION_TABLE)} (version integer PRIMARY KEY, "
                "description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")


class SchemaTooNew(RuntimeError):
    """The database was migrated by a newer failmap-assets than this one."""


@dataclass(frozen=True)
class MigrationReport:
    before: int     # 0: a database the sink had never used
    after: int
    applied: tuple[int, ...]


def migrate(conn, migrations: Sequence[Migration] = MIGRATIONS) -> MigrationReport:
    """Bring the database to the last of ``migrations``: each missing one in its own
    transaction (with its row in failmap_schema_version), in order. ``conn`` is a
    psycopg2 connection outside any transaction; a failed migration rolls back alone
    and is raised (the versions before it stay applied)."""
    _check_order(migrations)
    with conn, conn.cursor() as cur:
        _lock(cur)
        cur.execute(_VERSION_DDL)
        before = _version(cur)
    target = migrations[-1].version
    if before > target:
        raise SchemaTooNew(f"the database's sink schema is version {before}, newer than this failmap-assets' "
                           f"{target}: upgrade failmap-assets before loading into it")
    applied = []
    for m in migrations:
        if m.version <= before:
            continue
        with conn, conn.cursor() as cur:
            _lock(cur)
            if _version(cur) >= m.version:   # another sink applied it while this one waited
                continue
            for statement in m.statements:
                cur.execute(statement)
            cur.execute(f"INSERT INTO {ident(VERSION_TABLE)} (version, description) VALUES (%s, %s)",
                        (m.version, m.description))
        applied.append(m.version)
    with conn, conn.cursor() as cur:
        after = _version(cur)
    return MigrationReport(before=before, after=after, applied=tuple(applied))


def schema_version(conn) -> int:
    """The database's sink schema version (0: none)."""
    with conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass(%s) IS NOT NULL", (VERSION_TABLE,))
        return _version(cur) if cur.fetchone()[0] else 0


def _lock(cur) -> None:
    cur.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_NAMESPACE, MIGRATION_LOCK))


def _version(cur) -> int:
    cur.execute(f"SELECT coalesce(max(version), 0) FROM {ident(VERSION_TABLE)}")
    return int(cur.fetchone()[0])


def _check_order(migrations: Sequence[Migration]) -> None:
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise ValueError(f"migrations must be numbered 1, 2, ... in order; got {versions}")
