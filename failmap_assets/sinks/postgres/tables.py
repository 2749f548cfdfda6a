"""Which tables the sink loads, and how an Arrow column becomes a PostgreSQL column.

One ``TableSpec`` per table: the table it copies (a table of a pipeline's day
manifest), the natural key of a row within its day, and the source columns. Adding a
table is one spec here plus one migration creating it in ``schema.py``; the test of
the schema says which columns that migration must create. A spec may load a subset
of its source's columns (``columns_except``): a column it leaves out is not read
into PostgreSQL (``day_tables.conform`` drops it).

Every sink table has two columns of its own in front of the source's: ``day`` (the fab
day, the partition) and ``commit_generation`` (the generation of the day's commit the
row was loaded from, ``state/<pipeline>/date=<day>/manifest.json``).

Natural keys (a row's identity within its day; the table's key is ``day`` + these):
- ``wafer_summary``: one wafer test event = ``source`` + ``object_key`` (the A map or
  STDF file) + ``wafer_token`` (an archive or STDF file holds several wafers). A
  re-uploaded object keeps its key (the row is updated); a deleted or renamed one
  loses its row.
- ``lot_summary``: ``source`` + ``lot`` + ``step`` (one row per lot at one step per
  source). ``lot`` and ``step`` are null where the files do not name them, so the key
  is a ``UNIQUE NULLS NOT DISTINCT`` constraint (PostgreSQL 15+) rather than a
  primary key: two rows without a lot are the same lot.
- ``wafer_signatures`` and ``wafer_anomaly`` (schema version 4): one test event, the
  same key as ``wafer_summary`` (a BI tool joins them on ``day, source, object_key,
  wafer_token``). ``similar_wafers``: the test event + ``rank`` (1 = most similar;
  k rows per event). They come from two other pipelines' day commits
  (``patterns``: signatures; ``pattern_matches``: similar wafers and anomaly), so a
  day's tables may be committed at different moments and carry their own
  generations; each table is loaded from its own pipeline's commit.
- Left out: the signature's ``raster`` (32 x 32 floats per wafer: the embedding is
  what SQL compares; the raster stays in Parquet), and the pattern tables' own
  ``day`` column (it is the sink's ``day``, the partition).
- The embedding (a fixed-size float list) is a PostgreSQL array (``real[]``), not
  ``jsonb``: BI and SQL users index it (``embedding[1]``), ``unnest`` it, or feed it
  to pgvector (``embedding::vector``) without parsing JSON. Lists of numbers become
  arrays; lists of structs (``bins``) stay ``jsonb``.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
import pyarrow as pa

from failmap_assets.patterns.tables import ANOMALY_COLUMNS, SIGNATURE_COLUMNS, SIMILAR_COLUMNS
from failmap_assets.patterns.tables import schema_of as pattern_schema_of
from failmap_assets.storage.layout import MATCHES_PIPELINE, PATTERNS_PIPELINE, SUMMARY_PIPELINE
from failmap_assets.yield_view.summaries import EVENT, LOT, LOT_SUMMARY_COLUMNS, WAFER_SUMMARY_COLUMNS, schema_of

#: The fab day of a row (the partition it was loaded for).
DAY_COLUMN = "day"
#: The generation of the day's commit a row was loaded from (schema version 2).
GENERATION_COLUMN = "commit_generation"


@dataclass(frozen=True)
class TableSpec:
    """One sink table: ``name`` in PostgreSQL, loaded from ``source_table`` of the
    ``pipeline``'s day commits; ``keys`` identify a row within its day (``nullable_keys``
    of them may be null); ``columns`` are the source's columns as the code writes them."""

    name: str
    pipeline: str
    source_table: str
    keys: tuple[str, ...]
    columns: pl.Schema
    nullable_keys: tuple[str, ...] = ()

    @property
    def key_columns(self) -> tuple[str, ...]:
        """The table's key: the day and the natural key."""
        return (DAY_COLUMN, *self.keys)

    def arrow_schema(self) -> pa.Schema:
        """The source columns as Arrow types (what the column types come from)."""
        return pl.DataFrame(schema=self.columns).to_arrow().schema

    def pg_columns(self) -> list[tuple[str, str]]:
        """``(column, PostgreSQL type)`` of the whole table, sink columns first."""
        return [(DAY_COLUMN, "date"), (GENERATION_COLUMN, "bigint"),
                *[(f.name, pg_type(f.type, f.name)) for f in self.arrow_schema()]]

    def json_columns(self) -> list[str]:
        """Source columns stored as ``jsonb`` (lists and structs)."""
        return [f.name for f in self.arrow_schema() if pg_type(f.type, f.name) == "jsonb"]

    def array_columns(self) -> list[str]:
        """Source columns stored as PostgreSQL arrays (lists of numbers)."""
        return [f.name for f in self.arrow_schema() if pg_type(f.type, f.name).endswith("[]")]


def columns_except(columns: dict, *left_out: str) -> pl.Schema:
    """The source's columns without ``left_out`` (each must be one of them)."""
    unknown = set(left_out) - set(columns)
    if unknown:
        raise ValueError(f"no such source column(s): {sorted(unknown)}")
    return pl.Schema({c: t for c, t in columns.items() if c not in left_out})


WAFER_SUMMARY = TableSpec(
    name="wafer_summary", pipeline=SUMMARY_PIPELINE, source_table="wafer_summary",
    keys=("source", "object_key", "wafer_token"), columns=schema_of(WAFER_SUMMARY_COLUMNS))
LOT_SUMMARY = TableSpec(
    name="lot_summary", pipeline=SUMMARY_PIPELINE, source_table="lot_summary",
    keys=tuple(LOT), columns=schema_of(LOT_SUMMARY_COLUMNS), nullable_keys=("lot", "step"))

_EVENT_KEY = ("source", "object_key", "wafer_token")
WAFER_SIGNATURES = TableSpec(
    name="wafer_signatures", pipeline=PATTERNS_PIPELINE, source_table="wafer_signatures", keys=_EVENT_KEY,
    columns=columns_except(pattern_schema_of(SIGNATURE_COLUMNS), "raster"))
WAFER_ANOMALY = TableSpec(
    name="wafer_anomaly", pipeline=MATCHES_PIPELINE, source_table="wafer_anomaly", keys=_EVENT_KEY,
    columns=columns_except(pattern_schema_of(ANOMALY_COLUMNS), DAY_COLUMN))
SIMILAR_WAFERS = TableSpec(
    name="similar_wafers", pipeline=MATCHES_PIPELINE, source_table="similar_wafers", keys=(*_EVENT_KEY, "rank"),
    columns=columns_except(pattern_schema_of(SIMILAR_COLUMNS), DAY_COLUMN))

#: What the sink loads, in this order (within one transaction per day).
SINK_TABLES: tuple[TableSpec, ...] = (WAFER_SUMMARY, LOT_SUMMARY, WAFER_SIGNATURES, WAFER_ANOMALY, SIMILAR_WAFERS)

assert set(WAFER_SUMMARY.keys) == set(EVENT), "a wafer_summary row is one test event"


def pg_type(t: pa.DataType, column: str = "") -> str:
    """The PostgreSQL type of an Arrow type. Lists of numbers become arrays of that
    number type (``real[]``); other lists, structs and maps become ``jsonb`` (BI tools
    read them with ``jsonb_array_elements``); a type with no faithful PostgreSQL
    counterpart is an error naming the column."""
    if pa.types.is_dictionary(t):
        return pg_type(t.value_type, column)
    if _is_list(t) and (pa.types.is_integer(t.value_type) or pa.types.is_floating(t.value_type)):
        return pg_type(t.value_type, column) + "[]"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or _is_string_view(t) or pa.types.is_null(t):
        return "text"
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_int8(t) or pa.types.is_int16(t) or pa.types.is_uint8(t):
        return "smallint"
    if pa.types.is_int32(t) or pa.types.is_uint16(t):
        return "integer"
    if pa.types.is_int64(t) or pa.types.is_uint32(t):
        return "bigint"
    if pa.types.is_uint64(t) or pa.types.is_decimal(t):
        return "numeric"
    if pa.types.is_float16(t) or pa.types.is_float32(t):
        return "real"
    if pa.types.is_float64(t):
        return "double precision"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_timestamp(t):
        # fab time without a zone stays without one: a BI tool must not shift it
        return "timestamptz" if t.tz else "timestamp"
    if pa.types.is_nested(t):
        return "jsonb"
    raise TypeError(f"column {column!r}: no PostgreSQL type for Arrow {t}")


def _is_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


def _is_string_view(t: pa.DataType) -> bool:
    check = getattr(pa.types, "is_string_view", None)
    return bool(check and check(t))
