"""A fab day's objects in a bucket, as a polars table with the key grammar applied.

Listing is by date folder (``YYYYMMDD/``) with a prefix, never the whole bucket.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import polars as pl

from failmap_assets.discovery.keys import day_prefix, parse_keys
from failmap_assets.storage.object_store import ObjectStore

LISTING_SCHEMA = {
    "key": pl.String,
    "size": pl.Int64,
    "etag": pl.String,
    "last_modified": pl.Datetime("us", "UTC"),
}


def list_objects(store: ObjectStore, day: date) -> pl.DataFrame:
    """Every object in one date folder: key, size, etag, last modified."""
    rows = [(o.key, o.size, o.etag, o.last_modified) for o in store.list(day_prefix(day))]
    return pl.DataFrame(rows, schema=LISTING_SCHEMA, orient="row")


def list_folder(store: ObjectStore, day: date) -> pl.DataFrame:
    """Every object in one date folder, with parsed key fields (valid or not)."""
    listing = list_objects(store, day)
    parsed = parse_keys(listing["key"]).drop("key")
    return pl.concat([listing, parsed], how="horizontal")


def list_day_with_neighbours(
    store: ObjectStore, day: date, *, before: timedelta | None = None, after: timedelta | None = None
) -> pl.DataFrame:
    """The day's folder (``in_partition`` True) plus the edges of the neighbouring folders
    that pairing needs across midnight: the last ``before`` of the previous day and the
    first ``after`` of the next day (``in_partition`` False, valid keys only)."""
    frames = [list_folder(store, day).with_columns(pl.lit(True).alias("in_partition"))]
    start = datetime.combine(day, datetime.min.time())
    if before:
        prev = list_folder(store, day - timedelta(days=1)).filter(
            pl.col("valid") & (pl.col("file_time") >= start - before)
        )
        frames.insert(0, prev.with_columns(pl.lit(False).alias("in_partition")))
    if after:
        nxt = list_folder(store, day + timedelta(days=1)).filter(
            pl.col("valid") & (pl.col("file_time") < start + timedelta(days=1) + after)
        )
        frames.append(nxt.with_columns(pl.lit(False).alias("in_partition")))
    return pl.concat(frames, how="vertical_relaxed")
