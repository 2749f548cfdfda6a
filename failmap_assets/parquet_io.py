"""Parquet to and from an ObjectStore: one atomic PUT per file, read back with polars."""

from __future__ import annotations

import io

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from failmap_assets.resources.object_store import ObjectStore


def write_table(store: ObjectStore, key: str, table: pa.Table | pl.DataFrame) -> int:
    """Write ``table`` as one Parquet object (zstd); returns its size in bytes."""
    if isinstance(table, pl.DataFrame):
        table = table.to_arrow()
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    data = buf.getvalue()
    store.put(key, data, content_type="application/vnd.apache.parquet")
    return len(data)


def read_table(store: ObjectStore, key: str) -> pl.DataFrame | None:
    """The Parquet object at ``key`` as a polars DataFrame, or None when absent."""
    if store.head(key) is None:
        return None
    return pl.read_parquet(io.BytesIO(store.get(key)))
