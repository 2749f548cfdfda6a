"""Parquet to and from an ObjectStore: one atomic PUT per file, read back with polars."""

from __future__ import annotations

import io

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from failmap_assets.storage.object_store import ObjectStore


def write_table(store: ObjectStore, key: str, table: pa.Table | pl.DataFrame) -> int:
    """Write ``table`` as one Parquet object (zstd); returns its size in bytes.

    Dictionary-encoded string columns (die rows carry per-wafer strings that way) are
    written as ordinary Parquet strings: their dictionaries are unified first, so the
    writer copies the dictionary pages as they are instead of hashing every value, and
    the Arrow schema is left out of the file, so every reader sees plain strings.
    """
    if isinstance(table, pl.DataFrame):
        table = table.to_arrow()
    has_dictionaries = any(pa.types.is_dictionary(f.type) for f in table.schema)
    if has_dictionaries:
        table = table.unify_dictionaries().combine_chunks()
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd", store_schema=not has_dictionaries)
    data = buf.getvalue()
    store.put(key, data, content_type="application/vnd.apache.parquet")
    return len(data)


def read_table(store: ObjectStore, key: str) -> pl.DataFrame | None:
    """The Parquet object at ``key`` as a polars DataFrame, or None when absent."""
    if store.head(key) is None:
        return None
    return pl.read_parquet(io.BytesIO(store.get(key)))
