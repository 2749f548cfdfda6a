"""The column schema of every table asset, for the UI.

Where the code declares a table's schema (the die table's Arrow schema, the STDF
tables, the listing, the state's rejects) it is used as it is. The listing's parsed
key fields and the pairs are shaped by polars expressions, so their columns are
stated here, and ``tests/yield_view/test_trends.py`` checks them against the files a
real day writes. Nothing here runs polars at import: the test fork server imports the
asset modules, and a forked child of a process whose polars thread pool has started
hangs.
"""

from __future__ import annotations

import polars as pl
import pyarrow as pa
from dagster import TableColumn, TableSchema

from failmap_assets.discovery.listing import LISTING_SCHEMA
from failmap_assets.pipeline import day_state as st
from failmap_assets.stdf.tables import SCHEMAS as STDF_SCHEMAS
from failmap_assets.wafer.model import DIE_TABLE_SCHEMA

#: What discovery/keys.parse_keys adds to a listing row.
PARSED_KEY_COLUMNS = {"valid": pl.Boolean, "day": pl.Date, "token": pl.String, "slot": pl.Int32,
                      "insertion": pl.String, "wafer_token": pl.String, "file_time": pl.Datetime("us"),
                      "ext": pl.String, "skip_reason": pl.String}
#: A bucket listing table: the object, its parsed key, and whether it is in the day's own folder.
LISTING_COLUMNS = {**LISTING_SCHEMA, **PARSED_KEY_COLUMNS, "in_partition": pl.Boolean}
#: A failmap_pairs row (pipeline/pairing.pair_day).
PAIRS_COLUMNS = {
    "a_key": pl.String, "a_etag": pl.String, "a_time": pl.Datetime("us"), "b_key": pl.String,
    "b_etag": pl.String, "b_time": pl.Datetime("us"), "status": pl.String, "wafer_token": pl.String,
    "token": pl.String, "slot": pl.Int32, "insertion": pl.String, "day": pl.Date, "ext": pl.String,
    "size": pl.Int64, "last_modified": pl.Datetime("us", "UTC"), "valid": pl.Boolean,
    "skip_reason": pl.String, "key_skip_reason": pl.String,
}
#: The rejects tables: the state's rejects without the unit and run that reported them.
REJECTS_COLUMNS = {k: v for k, v in st.REJECT_SCHEMA.items() if k not in ("unit_key", "run_id")}


def polars_schema(schema: pl.Schema | dict) -> TableSchema:
    return TableSchema(columns=[TableColumn(name, str(dtype)) for name, dtype in schema.items()])


def arrow_schema(schema: pa.Schema, prefix: str = "") -> list[TableColumn]:
    return [TableColumn(f"{prefix}{f.name}", str(f.type)) for f in schema]


def _failmap() -> dict[str, TableSchema]:
    return {
        "bucket_a_objects": polars_schema(LISTING_COLUMNS),
        "bucket_b_objects": polars_schema(LISTING_COLUMNS),
        "failmap_pairs": polars_schema(PAIRS_COLUMNS),
        "failmap_dies": TableSchema(columns=arrow_schema(DIE_TABLE_SCHEMA)),
        "failmap_rejects": polars_schema(REJECTS_COLUMNS),
    }


def _stdf() -> dict[str, TableSchema]:
    # stdf_tables is several Parquet tables: one column list, each column named <table>.<column>.
    return {
        "stdf_objects": polars_schema(LISTING_SCHEMA),
        "stdf_tables": TableSchema(columns=[c for table, schema in STDF_SCHEMAS.items()
                                            for c in arrow_schema(schema, f"{table}.")]),
        "stdf_rejects": polars_schema(REJECTS_COLUMNS),
    }


TABLE_SCHEMAS: dict[str, TableSchema] = {**_failmap(), **_stdf()}


def column_schema(asset: str) -> dict:
    """The spec metadata entry of a table asset's column schema."""
    return {"dagster/column_schema": TABLE_SCHEMAS[asset]}
