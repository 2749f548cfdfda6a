"""The day's source tables of the sink, read as their committed manifests name them.

Only a committed manifest says which files are the day's (a crashed run's files, a run
still writing, superseded ones may lie beside them), so the sink reads exactly those,
like every downstream reader (``storage/committed_tables.py``). A pipeline whose day
has no commit yet is reported, not loaded as an empty day: it would delete rows a
later commit is about to replace.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import date

import polars as pl

from failmap_assets.sinks.postgres.load import DayTable
from failmap_assets.sinks.postgres.tables import TableSpec
from failmap_assets.storage.committed_tables import named_table_files
from failmap_assets.storage.day_manifest import DayManifest, read_manifest
from failmap_assets.storage.object_store import ObjectStore


def read_day_tables(store: ObjectStore, day: date, specs: Sequence[TableSpec]) -> tuple[list[DayTable], dict[str, str]]:
    """``(tables to load, {table: why not})`` of ``day``."""
    manifests: dict[str, DayManifest | None] = {}
    tables, missing = [], {}
    for spec in specs:
        if spec.pipeline not in manifests:
            manifests[spec.pipeline] = read_manifest(store, spec.pipeline, day)[0]
        manifest = manifests[spec.pipeline]
        if manifest is None:
            missing[spec.name] = f"no committed {spec.pipeline} day yet"
            continue
        keys = named_table_files(manifest).get(spec.source_table)
        if keys is None:
            missing[spec.name] = f"the {spec.pipeline} commit (generation {manifest.generation}) has no {spec.source_table}"
            continue
        frames = [pl.read_parquet(io.BytesIO(store.get(k))) for k in keys]
        tables.append(DayTable(spec, conform(frames, spec.columns), manifest.generation))
    return tables, missing


def conform(frames: list[pl.DataFrame], columns: pl.Schema) -> pl.DataFrame:
    """The files' rows with exactly ``columns``: a column an older commit did not write
    is null, one the sink has no column for is left out (it needs a migration)."""
    if not frames:
        return pl.DataFrame(schema=columns)
    rows = pl.concat(frames, how="diagonal_relaxed")
    missing = [pl.lit(None, dtype=t).alias(c) for c, t in columns.items() if c not in rows.columns]
    return rows.with_columns(missing).select(list(columns)).cast(dict(columns))
