"""Reading a committed day back in tests: through its manifest, and as a plain glob would."""

from __future__ import annotations

import io
from datetime import date

import polars as pl

from failmap_assets.storage.day_manifest import committed_files
from failmap_assets.storage.object_store import ObjectStore


def committed(store: ObjectStore, pipeline: str, day: date, table: str) -> pl.DataFrame | None:
    files = committed_files(store, pipeline, day, table)
    if not files:
        return None
    return pl.concat([pl.read_parquet(io.BytesIO(store.get(k))) for k in files], how="diagonal_relaxed")


def globbed(store: ObjectStore, prefix: str) -> pl.DataFrame | None:
    files = [o.key for o in store.list(prefix) if o.key.endswith(".parquet")]
    if not files:
        return None
    return pl.concat([pl.read_parquet(io.BytesIO(store.get(k))) for k in files], how="diagonal_relaxed")
