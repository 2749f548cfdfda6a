"""DuckDB views over every table both pipelines committed (``failmap sql``).

One view per table, named after it: the fail-map tables (``failmap_dies``,
``failmap_rejects``, ``failmap_pairs``, ``bucket_a_objects``, ``bucket_b_objects``), the
STDF listing tables (``stdf_objects``, ``stdf_rejects``) and the STDF data tables
(``files``, ``wafers``, ``parts``, ``tests``, ``ptr_results``, ... and ``ptr_effective``,
``mpr_effective``, ``ftr_effective``)
and the yield engineer's summaries (``wafer_summary``, ``lot_summary``, ``merged_dies``,
``merged_wafers``, ``stacked_lot_maps``),
each with a ``date`` column (the fab day); STDF views also carry ``product``,
``test_type`` and ``source_key``. Only files a committed day manifest names are read:
files of crashed or running runs never show.

Local outputs are read in place. Anything else (S3) is copied, manifest-named files
only, through our own ObjectStore into a temporary folder that lives as long as the
views: DuckDB's httpfs extension would be downloaded on first use, which we never do.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

import duckdb
import pyarrow as pa

from failmap_assets.stdf.sql import EFFECTIVE_VIEWS, create_effective_views, create_stdf_view
from failmap_assets.stdf.tables import TABLES as STDF_TABLES
from failmap_assets.storage.committed_tables import committed_days, live_table_files
from failmap_assets.storage.layout import (FAILMAP_TABLES, STDF_LISTING_TABLES, SUMMARY_PIPELINE, SUMMARY_TABLES,
                                           TRENDS_PIPELINE, TRENDS_TABLES)
from failmap_assets.storage.local_store import LocalObjectStore
from failmap_assets.storage.object_store import ObjectStore
from failmap_assets.wafer.model import DIE_TABLE_SCHEMA

PIPELINE_TABLES = {"failmap": FAILMAP_TABLES, "stdf": STDF_LISTING_TABLES + tuple(STDF_TABLES),
                   SUMMARY_PIPELINE: SUMMARY_TABLES, TRENDS_PIPELINE: TRENDS_TABLES}
#: A day recommitted (its old files collected) between reading its manifest and its files
#: is read again, this many times in all.
READ_ATTEMPTS = 3
# The pipeline writes an STDF file's rows with the object key; ``files`` stores the file
# id derived from it (layout.file_id_of: sha1 of the key), so every table joins on it.
_STDF_FILE_ID = "substr(sha1(source_key), 1, 16)"


@dataclass
class OutputViews:
    """An open DuckDB connection with the views; close it (or use ``with``) to drop the
    temporary copy of a remote output."""

    con: duckdb.DuckDBPyConnection
    views: list[str]
    days: dict[str, list[date]]               # pipeline -> committed days read
    files: dict[str, list[str]] = field(default_factory=dict)  # view -> keys read
    _tmp: tempfile.TemporaryDirectory | None = None

    def close(self) -> None:
        self.con.close()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> "OutputViews":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def is_pipeline_output(store: ObjectStore) -> bool:
    """Whether ``store`` holds a pipeline output (day manifests), as opposed to e.g. a
    ``stdf2parquet`` folder."""
    return any(committed_days(store, p) for p in PIPELINE_TABLES)


def open_output_views(store: ObjectStore, first: date | None = None, last: date | None = None,
                      log: Callable[[str], None] | None = None) -> OutputViews:
    """Views over the committed days in ``[first, last]`` (all when None) of ``store``."""
    log = log or (lambda line: print(line, file=sys.stderr))
    local = isinstance(store, LocalObjectStore)
    for attempt in range(1, READ_ATTEMPTS + 1):
        days, files = _live_files(store, first, last)
        tmp = None if local else tempfile.TemporaryDirectory(prefix="failmap-sql-")
        try:
            paths = _local_paths(store, files) if local else _copy(store, files, tmp.name)
            break
        except FileNotFoundError as exc:
            if tmp is not None:
                tmp.cleanup()
            if attempt == READ_ATTEMPTS:
                raise RuntimeError(f"days of {store.location} kept being recommitted while read ({exc}); "
                                   "run again") from exc
            log(f"a day was recommitted while it was read ({exc}); reading its new commit")
    con = duckdb.connect()
    views = []
    for pipeline, tables in PIPELINE_TABLES.items():
        for table in tables:
            _create_view(con, table, paths.get(table, []))
            views.append(table)
    create_effective_views(con)
    views.extend(EFFECTIVE_VIEWS)
    if not any(days.values()):
        log(f"no committed day in {store.location}"
            + (f" between {first or '...'} and {last or '...'}" if first or last else "") + ": every view is empty")
    return OutputViews(con, views, days, files, tmp)


def _live_files(store: ObjectStore, first, last) -> tuple[dict[str, list[date]], dict[str, list[str]]]:
    days: dict[str, list[date]] = {}
    files: dict[str, list[str]] = {}
    for pipeline in PIPELINE_TABLES:
        days[pipeline] = []
        for day in committed_days(store, pipeline, first, last):
            named = live_table_files(store, pipeline, day, stdf_tables=tuple(STDF_TABLES))
            if not named:
                continue  # a folder without a commit yet: a first run still working
            days[pipeline].append(day)
            for table, keys in named.items():
                files.setdefault(table, []).extend(keys)
    return days, files


def _local_paths(store: LocalObjectStore, files: dict[str, list[str]]) -> dict[str, list[str]]:
    """The files' paths, refusing any that a symlink leads elsewhere (keys were checked)."""
    out = {}
    for table, keys in files.items():
        paths = []
        for key in keys:
            path = os.path.join(store.root, *key.split("/"))
            if os.path.realpath(path) != path:
                raise ValueError(f"{key!r} in {store.location} is reached through a symlink: refused")
            if not os.path.isfile(path):
                raise FileNotFoundError(f"{key} named by a committed manifest is gone")
            paths.append(path)
        out[table] = paths
    return out


def _copy(store: ObjectStore, files: dict[str, list[str]], folder: str) -> dict[str, list[str]]:
    """Copies of the files under ``folder`` (same keys: the hive folders stay), written
    through a LocalObjectStore so that no key can choose a path outside it."""
    into = LocalObjectStore(folder)
    table_of = {key: table for table, keys in files.items() for key in keys}
    out: dict[str, list[str]] = {table: [] for table in files}
    for key, data in store.get_many(sorted(table_of)):
        if isinstance(data, BaseException):
            raise data
        into.put(key, data)
        out[table_of[key]].append(os.path.join(into.root, *key.split("/")))
    return {table: sorted(paths) for table, paths in out.items()}


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _create_view(con: duckdb.DuckDBPyConnection, table: str, paths: list[str]) -> None:
    src = None
    if paths:
        # hive_partitioning turns the layout's date=/product=/test_type= folders into columns.
        src = (f"read_parquet([{', '.join(_quote(p) for p in paths)}], hive_partitioning = true, "
               "union_by_name = true)")
    if table in STDF_TABLES:
        create_stdf_view(con, table, src, file_id=_STDF_FILE_ID, extra=("source_key", "date"))
    elif src is not None:
        con.execute(f"CREATE OR REPLACE VIEW {table} AS SELECT * FROM {src}")
    else:
        # No committed file yet: the die table keeps its columns so queries still bind.
        schema = DIE_TABLE_SCHEMA if table == "failmap_dies" else pa.schema([])
        empty = schema.empty_table().append_column("date", pa.array([], pa.date32()))
        con.register(f"_empty_{table}", empty)
        con.execute(f"CREATE OR REPLACE VIEW {table} AS SELECT * FROM _empty_{table}")
