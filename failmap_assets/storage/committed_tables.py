"""The live files of every table over many days, as the days' manifests name them.

A table's folder can hold files no commit names: a crashed run's, a run still writing,
superseded ones not yet collected. Only a committed manifest says which files are the
day's, so a reader that must never see garbage or half a day reads exactly these.
Manifests are data written by runs: every file they name is checked to lie in its own
table's folder of that day before anyone opens it.
"""

from __future__ import annotations

import re
from datetime import date

from failmap_assets.storage.day_manifest import DayManifest, read_manifest
from failmap_assets.storage.layout import committed_table_dir, day_of_state_dir, pipeline_state_dir
from failmap_assets.storage.local_store import check_key
from failmap_assets.storage.object_store import ObjectStore, UnsafeKey

#: A table name a manifest may use (it becomes a SQL view name).
_TABLE_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")


def committed_days(store: ObjectStore, pipeline: str, first: date | None = None,
                   last: date | None = None) -> list[date]:
    """Days of ``pipeline`` with a folder in the output, within ``[first, last]``, sorted.
    (A day with a folder may still have no manifest: a first run still working.)"""
    try:
        prefixes = store.list_prefixes(pipeline_state_dir(pipeline))
    except FileNotFoundError:  # a local output folder nobody wrote yet
        return []
    days = sorted(d for d in (day_of_state_dir(p, pipeline) for p in prefixes) if d is not None)
    return [d for d in days if (first is None or d >= first) and (last is None or d <= last)]


def live_table_files(store: ObjectStore, pipeline: str, day: date,
                     stdf_tables: tuple[str, ...] = ()) -> dict[str, list[str]]:
    """``table -> keys`` the day's committed manifest names ({} when the day has none).

    ``stdf_tables`` are the tables stored under ``parquet/stdf/``. UnsafeKey when the
    manifest names a table or file outside the layout (never opened, never a path)."""
    manifest, _ = read_manifest(store, pipeline, day)
    if manifest is None:
        return {}
    return named_table_files(manifest, stdf_tables)


def named_table_files(manifest: DayManifest, stdf_tables: tuple[str, ...] = ()) -> dict[str, list[str]]:
    """``table -> keys`` of a manifest already read, each checked to lie in its table's
    folder of the manifest's day (UnsafeKey otherwise)."""
    pipeline, day = manifest.pipeline, manifest.day
    out: dict[str, list[str]] = {}
    for table, keys in manifest.tables.items():
        if not _TABLE_NAME.fullmatch(table):
            raise UnsafeKey(f"the {pipeline} manifest of {day} names a table {table[:80]!r} outside the layout")
        folder = committed_table_dir(table, day, stdf_tables)
        for key in keys:
            check_key(key)
            if not (key.startswith(folder) and key.endswith(".parquet")):
                raise UnsafeKey(f"the {pipeline} manifest of {day} names {key[:200]!r} for table {table}, "
                                f"outside its folder {folder}")
        out[table] = sorted(keys)
    return out
