"""One STDF table as one Parquet file: the layout rules (encodings, REQUIRED columns, text
written plain or as a dictionary) and the atomic write. ``tables.write_parquet`` names the files
(``<table>/product=<P>/test_type=<T>/<file id>.parquet``) and calls :func:`write_table_file`
for each table."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

# Parquet settings (measured on the benchmark files): lz4; data pages V2 (15-30 % less
# writer time than V1 at the same size; pyarrow, polars and DuckDB read them); dictionaries
# for text only, and not for the per-result and per-part tables whose text is mostly unique
# (plain + lz4 measured faster at the same size; dictionary-encoding small integers costs twice
# the time of plain + lz4); delta encoding for record ordinals and part indexes (non-decreasing:
# parts.part_idx shrinks 10x), except a result table's part_idx when its parts hold
# ``LONG_PART_ROWS`` rows or more on average: long runs of one value, which plain + lz4 writes
# 2-3x faster at about the same size (40 MB tiles: ayad_ws 3.0 -> 1.1 ms, LX7730 2.5 -> 1.0);
# statistics on the usual filter keys only.
_DELTA = {"rec_idx", "first_rec_idx", "pir_rec_idx", "prr_rec_idx", "wir_rec_idx", "wrr_rec_idx", "offset",
          "part_idx"}
_STATS = {"part_idx", "test_num", "wafer_idx", "hard_bin", "soft_bin", "kind", "bin_num", "bin_type", "rec_name",
          "file_id"}
_RESULTS = {"ptr_results", "mpr_results", "ftr_results"}
_PLAIN_TEXT = _RESULTS | {"parts"}
LONG_PART_ROWS = 8


_OPTIONS: dict[tuple, tuple[pa.Schema, pa.Schema, dict]] = {}


def file_layout(schema: pa.Schema, nulls: tuple | None, results: bool, key: tuple,
                long_parts: bool = False) -> tuple[pa.Schema | None, dict]:
    """The schema a table of ``schema`` is written with (None: ``schema`` itself) and the
    writer options. ``nulls``: per column, (has a null, may hold a null list element); None
    for a table without rows.

    Schema: the columns that hold no null declared not nullable (Parquet REQUIRED), and the
    elements of a list column too when none is null. A nullable column costs its definition
    levels, one per row even when no value is null: ~1.3 ms per 600 k rows, a quarter of a
    PTR table's write (stdf-convert, the peer of benchmarks/stdf_parse.py, declares every
    column REQUIRED). Readers see the same values; a column is REQUIRED in one file and
    nullable in the next, as a column can be missing from one file: read the files with
    ``union_by_name`` or ``SCHEMAS`` (sql.py).

    Options: ``results``: a big per-result or per-part table, whose text is written plain (no
    dictionary); ``long_parts``: part_idx in long runs, written plain. Both are cached: a small
    file writes ten tables. ``key``: a cheap name of the schema (table name, columns kept,
    ``nulls``...): hashing a 76-column schema costs ~30 us, comparing it to the cached one a
    tenth of a microsecond."""
    k = (key, nulls, results, long_parts)
    hit = _OPTIONS.get(k)
    if hit is None or not hit[0].equals(schema):
        if len(_OPTIONS) > 512:
            _OPTIONS.clear()
        written = None
        if nulls is not None:
            fields = [_required(f, *nn) for f, nn in zip(schema, nulls)]
            written = pa.schema(fields, metadata=schema.metadata) if fields != list(schema) else None
        hit = _OPTIONS[k] = (schema, written, _options(schema, results, long_parts))
    return hit[1], hit[2]


def _required(f: pa.Field, has_null: bool, element_nulls: bool) -> pa.Field:
    """``f`` not nullable when its column has no null; a list's elements too, when none is
    null (RTN_RSLT, RTN_INDX...: no definition level per element either)."""
    if pa.types.is_list(f.type) and f.type.value_field.nullable and not element_nulls:
        f = f.with_type(pa.list_(f.type.value_field.with_nullable(False)))
    return f.with_nullable(False) if f.nullable and not has_null else f


def _element_nulls(column: pa.ChunkedArray) -> bool:
    """Whether a list column may hold a null element (its chunks' child arrays: a sliced chunk's
    elements outside the slice count too, which can only keep the elements nullable)."""
    return column.type.id == _LIST_ID and any(ch.values.null_count for ch in column.chunks)


_LIST_ID = pa.list_(pa.int8()).id
_STRING_ID = pa.string().id
#: a text column of this many rows or more whose every value is empty (ALARM_ID in most PTR
#: tables, several FTR texts) is written as a one-entry dictionary: 1.9 -> 0.75 ms per
#: 520 k rows, ~10x smaller; below it the check costs more than it saves
EMPTY_TEXT_ROWS = 4096
_EMPTY_TEXT = pa.dictionary(pa.int8(), pa.string())


def _empty_text(column: pa.ChunkedArray) -> bool:
    """Whether ``column`` is text whose values are all empty or null (its offsets say so)."""
    if column.type.id != _STRING_ID:
        return False
    for ch in column.chunks:
        offsets = np.frombuffer(ch.buffers()[1], np.int32)
        if offsets[ch.offset] != offsets[ch.offset + len(ch)]:
            return False
    return True


def _empty_text_as_dictionary(schema: pa.Schema, cols: list, empty: tuple) -> tuple[pa.Schema, list]:
    """``schema`` and ``cols`` with the all-empty text columns ``empty`` as dictionaries of
    one entry ("") and zero indices, their nulls kept: a reader without the Arrow schema (none
    is stored) reads them back as the same text column."""
    cols = list(cols)
    for i in empty:
        chunks = []
        for ch in cols[i].chunks:
            zeros = pa.py_buffer(np.zeros(ch.offset + len(ch), np.int8))
            idx = pa.Array.from_buffers(pa.int8(), len(ch), [ch.buffers()[0], zeros], ch.null_count, ch.offset)
            chunks.append(pa.DictionaryArray.from_arrays(idx, pa.array([""])))
        cols[i] = pa.chunked_array(chunks, _EMPTY_TEXT)
        schema = schema.set(i, schema.field(i).with_type(_EMPTY_TEXT))
    return schema, cols


def _options(schema: pa.Schema, results: bool, long_parts: bool = False) -> dict:
    dict_cols, enc = [], {}
    for f in schema:
        t = f.type
        if f.name in _DELTA and pa.types.is_integer(t) and not (long_parts and f.name == "part_idx"):
            enc[f.name] = "DELTA_BINARY_PACKED"
        elif pa.types.is_dictionary(t) or (pa.types.is_string(t) and not results):
            dict_cols.append(f.name)           # a dictionary column unpacked would cost ~6x
    # write_batch_size: values handed to the encoders at a time (pyarrow's default 1,024): a
    # result or parts table of 0.2-1 M rows is written 5-15 % faster, the file the same size
    return dict(compression="lz4", use_dictionary=dict_cols, column_encoding=enc or None,
                write_statistics=[c for c in schema.names if c in _STATS] or False, store_schema=False,
                data_page_version="2.0", write_batch_size=65536)


def write_table_file(table: pa.Table, path: str, name: str, keep_null_columns: bool = False, parts: int = 0) -> None:
    """Write table ``name`` atomically (temporary name, then rename). Columns that are null in
    every row are left out unless ``keep_null_columns``: readers restore them from ``SCHEMAS``
    (see sql.py). Columns with no null are written REQUIRED (see file_layout), long text
    columns of empty values as dictionaries (``EMPTY_TEXT_ROWS``). ``parts``: the file's part
    count (how a result table's part_idx is encoded).

    The file is encoded in memory and written with one system call: a writer on the file
    itself costs ~0.5 ms more per file (filesystem lookup, many small writes), which is most
    of the fixed cost of a small STDF file's ten tables. The folders are made only when the
    first open says they are missing (an output tree is usually there from the files before)."""
    keep = None
    n = table.num_rows
    cols = table.columns          # ~1 us per column each time it is asked for: asked once
    if not keep_null_columns and n:
        keep = tuple(i for i, c in enumerate(cols) if c.null_count < n)
        if len(keep) < len(cols):
            table, cols = table.select(keep), [cols[i] for i in keep]
    schema = table.schema
    empty = tuple(i for i, c in enumerate(cols) if _empty_text(c)) if n >= EMPTY_TEXT_ROWS else ()
    if empty:
        schema, cols = _empty_text_as_dictionary(schema, cols, empty)
    nulls = tuple((c.null_count > 0, _element_nulls(c)) for c in cols) if n else None
    long_parts = name in _RESULTS and n >= LONG_PART_ROWS * parts
    written, options = file_layout(schema, nulls, name in _PLAIN_TEXT, key=(name, keep, empty), long_parts=long_parts)
    if written is not None or empty:
        table = pa.Table.from_arrays(cols, schema=written or schema)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, **options)
    data = sink.getvalue()
    folder, leaf = os.path.split(path)
    tmp = os.path.join(folder, f".{leaf}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    except FileNotFoundError:
        os.makedirs(folder, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        try:
            with memoryview(data) as view:
                done = 0
                while done < len(view):
                    done += os.write(fd, view[done:])
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
