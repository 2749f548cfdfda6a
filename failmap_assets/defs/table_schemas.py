"""The column schema of every table asset, for the UI, from the schemas the code writes.

Each schema is taken from the code that shapes the table (an empty frame through the
same functions, or the Arrow schema the writer uses), so the UI cannot drift from the
files. Descriptions exist where the code documents a column; the rest carry the type.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl
import pyarrow as pa
from dagster import TableColumn, TableSchema

from failmap_assets.discovery.keys import parse_keys
from failmap_assets.discovery.listing import LISTING_SCHEMA
from failmap_assets.pipeline import day_state as st
from failmap_assets.pipeline.failmap_day import failmap_rejects_table
from failmap_assets.pipeline.pairing import pair_day
from failmap_assets.stdf.tables import SCHEMAS as STDF_SCHEMAS
from failmap_assets.wafer.model import DIE_TABLE_SCHEMA


def polars_schema(schema: pl.Schema | dict) -> TableSchema:
    return TableSchema(columns=[TableColumn(name, str(dtype)) for name, dtype in schema.items()])


def arrow_schema(schema: pa.Schema, prefix: str = "") -> list[TableColumn]:
    return [TableColumn(f"{prefix}{f.name}", str(f.type)) for f in schema]


def _listing() -> pl.DataFrame:
    """What a bucket listing table holds (discovery/listing.list_day_with_neighbours)."""
    listed = pl.DataFrame(schema=LISTING_SCHEMA)
    parsed = parse_keys(pl.Series("key", [], pl.String)).drop("key")
    return pl.concat([listed, parsed], how="horizontal").with_columns(pl.lit(True).alias("in_partition"))


def _failmap() -> dict[str, TableSchema]:
    listing = _listing()
    return {
        "bucket_a_objects": polars_schema(listing.schema),
        "bucket_b_objects": polars_schema(listing.schema),
        "failmap_pairs": polars_schema(pair_day(listing, listing, now=datetime(2000, 1, 1), window_s=0,
                                                grace_s=0).schema),
        "failmap_dies": TableSchema(columns=arrow_schema(DIE_TABLE_SCHEMA)),
        "failmap_rejects": polars_schema(failmap_rejects_table(pl.DataFrame(schema=st.REJECT_SCHEMA),
                                                               listing).schema),
    }


def _stdf() -> dict[str, TableSchema]:
    # stdf_tables is several Parquet tables: one column list, each column named <table>.<column>.
    return {
        "stdf_objects": polars_schema(LISTING_SCHEMA),
        "stdf_tables": TableSchema(columns=[c for table, schema in STDF_SCHEMAS.items()
                                            for c in arrow_schema(schema, f"{table}.")]),
        # stdf_day._commit drops the unit and run columns of its rejects
        "stdf_rejects": polars_schema({k: v for k, v in st.REJECT_SCHEMA.items() if k not in ("unit_key", "run_id")}),
    }


TABLE_SCHEMAS: dict[str, TableSchema] = {**_failmap(), **_stdf()}


def column_schema(asset: str) -> dict:
    """The spec metadata entry of a table asset's column schema."""
    return {"dagster/column_schema": TABLE_SCHEMAS[asset]}
