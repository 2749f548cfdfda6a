"""A day's load: every sink table of the day in ONE transaction.

Per table, inside that transaction:
1. ``COPY`` the day's rows (CSV, encoded by polars) into a temporary staging table;
2. one ``INSERT ... SELECT FROM staging ON CONFLICT (key) DO UPDATE`` (rows whose
   values did not change are left alone: no dead tuples for a re-run);
3. ``DELETE`` the day's rows whose key is not in staging: objects that disappeared
   or were replaced since the last load.

So after a load the day holds exactly the rows of the commit that was loaded,
whatever was there before: a re-run, any sequence of runs, or runs that crashed
leave what one clean run leaves. Readers see the day before or after, never half of
it (one transaction), and a connection lost anywhere rolls the whole day back.

Two loads of the same day serialize on an advisory lock of that day
(``pg_advisory_xact_lock``). ``failmap_loaded_days`` records the commit generation
each table of each day was loaded from; a load holding an older commit than the one
already loaded leaves that table alone (a slow run must not undo a newer one). The
generation compared is the table's own pipeline's (summaries, patterns and
pattern_matches commit a day apart, each counting its own generations), kept per
table, never compared across tables.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import polars as pl

from failmap_assets.sinks.postgres.schema import LOADED_DAYS_TABLE, LOCK_NAMESPACE, ident
from failmap_assets.sinks.postgres.tables import DAY_COLUMN, GENERATION_COLUMN, TableSpec


@dataclass(frozen=True)
class DayTable:
    """What to load for one table: the day's committed rows and their commit's generation."""

    spec: TableSpec
    frame: pl.DataFrame
    generation: int


@dataclass(frozen=True)
class TableLoad:
    table: str
    rows: int              # rows of the day after the load
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    generation: int = 0
    skipped: str = ""      # why the table was left alone

    @property
    def unchanged(self) -> int:
        return 0 if self.skipped else self.rows - self.inserted - self.updated


class DuplicateKey(ValueError):
    """Two rows of a day share a table's key (the source broke its own contract)."""


def load_day(conn, day: date, tables: Sequence[DayTable]) -> list[TableLoad]:
    """Load ``tables`` of ``day`` in one transaction of ``conn`` (a psycopg2 connection
    outside any transaction, schema migrated). Raises on any error, after PostgreSQL
    rolled the day back."""
    encoded = [(t, _csv(t, day)) for t in tables]     # before the transaction: keep it short
    out = []
    with conn, conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_NAMESPACE, day.toordinal()))
        for t, csv in encoded:
            out.append(_load_table(cur, day, t, csv))
    return out


def _load_table(cur, day: date, t: DayTable, csv: bytes) -> TableLoad:
    spec = t.spec
    cur.execute(f"SELECT commit_generation FROM {ident(LOADED_DAYS_TABLE)} WHERE table_name = %s AND day = %s "
                "FOR UPDATE", (spec.name, day))
    loaded = cur.fetchone()
    if loaded is not None and loaded[0] is not None and loaded[0] > t.generation:
        cur.execute(f"SELECT count(*) FROM {ident(spec.name)} WHERE {ident(DAY_COLUMN)} = %s", (day,))
        return TableLoad(spec.name, rows=cur.fetchone()[0], generation=loaded[0],
                         skipped=f"commit generation {loaded[0]} is loaded, newer than this run's {t.generation}")

    table, stage = ident(spec.name), ident(f"failmap_stage_{spec.name}")
    columns = [c for c, _ in spec.pg_columns()]
    col_list = ", ".join(ident(c) for c in columns)
    cur.execute(f"CREATE TEMPORARY TABLE {stage} (LIKE {table}) ON COMMIT DROP")
    cur.copy_expert(f"COPY {stage} ({col_list}) FROM STDIN WITH (FORMAT csv)", io.BytesIO(csv))

    keys = spec.key_columns
    values = [c for c in columns if c not in keys]
    cur.execute(f"""
        WITH up AS (
            INSERT INTO {table} AS t ({col_list}) SELECT {col_list} FROM {stage}
            ON CONFLICT ({', '.join(ident(k) for k in keys)}) DO UPDATE
            SET {', '.join(f'{ident(c)} = EXCLUDED.{ident(c)}' for c in values)}
            WHERE ({', '.join(f't.{ident(c)}' for c in values)})
                  IS DISTINCT FROM ({', '.join(f'EXCLUDED.{ident(c)}' for c in values)})
            RETURNING (xmax = 0) AS inserted
        )
        SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM up""")
    inserted, updated = cur.fetchone()

    # = where a key column is never null (a hash anti-join), IS NOT DISTINCT FROM where it may be
    same = " AND ".join(f"s.{ident(k)} IS NOT DISTINCT FROM d.{ident(k)}" if k in spec.nullable_keys
                        else f"s.{ident(k)} = d.{ident(k)}" for k in spec.keys)
    cur.execute(f"DELETE FROM {table} AS d WHERE d.{ident(DAY_COLUMN)} = %s "
                f"AND NOT EXISTS (SELECT 1 FROM {stage} AS s WHERE {same})", (day,))
    deleted = cur.rowcount

    rows = t.frame.height
    cur.execute(f"""
        INSERT INTO {ident(LOADED_DAYS_TABLE)} (table_name, day, commit_generation, rows, loaded_at)
        VALUES (%s, %s, %s, %s, now())
        ON CONFLICT (table_name, day) DO UPDATE
        SET commit_generation = EXCLUDED.commit_generation, rows = EXCLUDED.rows, loaded_at = EXCLUDED.loaded_at""",
                (spec.name, day, t.generation, rows))
    return TableLoad(spec.name, rows=rows, inserted=inserted, updated=updated, deleted=deleted,
                     generation=t.generation)


def check_keys(t: DayTable) -> None:
    """DuplicateKey when two rows share the key, ValueError when a key column that
    may not be null is: a clear error before any statement, not a constraint name."""
    spec, frame = t.spec, t.frame
    for k in spec.keys:
        if k not in spec.nullable_keys and frame[k].null_count():
            raise ValueError(f"{spec.name}: {frame[k].null_count()} row(s) without {k}, a key column")
    dup = frame.group_by(list(spec.keys)).len().filter(pl.col("len") > 1)
    if dup.height:
        first = dup.row(0, named=True)
        raise DuplicateKey(f"{spec.name}: {dup.height} key(s) on more than one row, e.g. "
                           + ", ".join(f"{k}={str(first[k])[:200]!r}" for k in spec.keys))


def _csv(t: DayTable, day: date) -> bytes:
    """The day's rows as CSV in the order of ``spec.pg_columns()``: strings quoted (so an empty
    string stays one), nulls as unquoted empty fields (COPY's CSV null), lists of numbers
    as array literals, other lists and structs as JSON text for ``jsonb``. PostgreSQL text cannot hold NUL characters:
    they become U+FFFD rather than failing the day."""
    check_keys(t)
    spec, frame = t.spec, t.frame
    json_cols, array_cols = set(spec.json_columns()), set(spec.array_columns())
    exprs = [pl.lit(day).alias(DAY_COLUMN), pl.lit(t.generation, dtype=pl.Int64).alias(GENERATION_COLUMN)]
    for name, dtype in spec.columns.items():
        col = pl.col(name)
        if name in json_cols:
            # {"v": <value>} with the wrapper cut off: the value's JSON, whatever its nesting
            text = pl.struct(col.alias("v")).struct.json_encode().str.slice(5).str.strip_suffix("}")
            col = pl.when(col.is_not_null()).then(text.str.replace_all("\\u0000", "\\ufffd", literal=True))
        elif name in array_cols:
            # PostgreSQL's array literal {1.5,NaN,NULL}: numbers as polars prints them
            # (shortest round-trip text, so a real[] holds the Float32 exactly)
            items = col.cast(pl.List(dtype.inner)).list.eval(pl.element().cast(pl.String).fill_null("NULL"))
            col = pl.when(col.is_not_null()).then(pl.concat_str(pl.lit("{"), items.list.join(","), pl.lit("}")))
        elif dtype == pl.String:
            col = col.str.replace_all("\x00", "\ufffd", literal=True)
        exprs.append(col.alias(name))
    order = [c for c, _ in spec.pg_columns()]
    out = frame.select(exprs).select(order)
    buf = io.BytesIO()
    out.write_csv(buf, include_header=False, quote_style="non_numeric", null_value="",
                  datetime_format="%Y-%m-%d %H:%M:%S%.6f", date_format="%Y-%m-%d")
    return buf.getvalue()
