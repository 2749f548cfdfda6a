"""DuckDB over the STDF Parquet (``failmap sql --out DIR``).

``open_views(out_dir)`` returns an in-memory DuckDB connection with one view per table
(``files``, ``wafers``, ``parts``, ``tests``, ``ptr_results``, ...) over
``<out>/<table>/product=*/test_type=*/*.parquet`` with hive partitioning (so
``product`` and ``test_type`` are columns), plus ``ptr_effective``, ``mpr_effective`` and
``ftr_effective``: the results with the default-data rule applied (limits, scales, units
of every result), the test's name where the record's TEST_TXT is blank, and (MPR, FTR)
the arrays a row leaves null when they equal its test's first record's
(decode/same_arrays.py) restored from ``tests``.

``sql_shell(out_dir, query)`` runs one query and prints it, or without a query reads
statements (ending with ``;``) from stdin: ``.tables`` lists the views, ``.quit`` ends.
"""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb

import pyarrow as pa

from .decode.same_arrays import ANCHOR, SAME_AS_TEST
from . import records as R
from .tables import SCHEMAS, TABLES, override_bits

EFFECTIVE_VIEWS = ("ptr_effective", "mpr_effective", "ftr_effective")


def _quote(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _effective_sql(kind: str) -> str:
    """The results of ``kind`` (PTR, MPR, FTR) with every value a record has, spelled out: the
    default-data rule, the test's name where TEST_TXT is blank, and the arrays stored once
    per test (null with the anchor present = the test's; without it the record ended before)."""
    bits = override_bits(kind)
    rec = R.BY_NAME[kind]
    arrays = {rec.field(n).column for n in SAME_AS_TEST.get(kind, ())}
    anchor = rec.field(ANCHOR[kind]).column if arrays else None
    cols = ["r.file_id", "r.product", "r.test_type"]
    for c in SCHEMAS[f"{kind.lower()}_results"].names:
        name = c.upper()
        if name in bits:
            cols.append(f"CASE WHEN (r.override_mask & {bits[name]}) <> 0 THEN r.{c} ELSE t.{c} END AS {c}")
        elif c == "test_txt":
            cols.append("coalesce(nullif(r.test_txt, ''), t.test_txt) AS test_txt")
        elif c in arrays:
            cols.append(f"CASE WHEN r.{c} IS NULL AND r.{anchor} IS NOT NULL THEN t.{c} ELSE r.{c} END AS {c}")
        else:
            cols.append(f"r.{c}")
    return (f"SELECT {', '.join(cols)} FROM {kind.lower()}_results r LEFT JOIN tests t "
            f"ON t.file_id = r.file_id AND t.kind = '{kind}' AND t.test_num = r.test_num")


def duck_type(t: pa.DataType) -> str:
    """DuckDB type name of an Arrow type (for the NULL columns of the views)."""
    simple = {
        pa.uint8(): "UTINYINT", pa.uint16(): "USMALLINT", pa.uint32(): "UINTEGER", pa.uint64(): "UBIGINT",
        pa.int8(): "TINYINT", pa.int16(): "SMALLINT", pa.int32(): "INTEGER", pa.int64(): "BIGINT",
        pa.float32(): "FLOAT", pa.float64(): "DOUBLE", pa.string(): "VARCHAR", pa.binary(): "BLOB",
        pa.bool_(): "BOOLEAN",
    }
    if t in simple:
        return simple[t]
    if pa.types.is_list(t):
        return duck_type(t.value_type) + "[]"
    if pa.types.is_struct(t):
        return "STRUCT(" + ", ".join(f'"{f.name}" {duck_type(f.type)}' for f in t) + ")"
    raise TypeError(t)


_FILE_ID = r"regexp_extract(filename, '([^/\\]+)[.]parquet$', 1)"


def create_stdf_view(con: duckdb.DuckDBPyConnection, name: str, src: str | None, *,
                     file_id: str | None = None, extra: tuple[str, ...] = ()) -> None:
    """Create view ``name`` over ``src`` (a DuckDB table expression over the table's Parquet
    files, hive columns ``product`` / ``test_type`` included; None: no files) with the full
    published schema. ``file_id`` is the SQL of the file id column (default: the Parquet
    file's name; ``files`` stores its own); ``extra`` are further columns kept as they are
    (the pipeline's ``source_key`` and ``date``)."""
    schema = SCHEMAS[name]
    if src is None:
        empty = schema.empty_table()
        if "file_id" not in empty.column_names:
            empty = empty.add_column(0, "file_id", pa.array([], pa.string()))
        empty = empty.append_column("product", pa.array([], pa.string()))
        empty = empty.append_column("test_type", pa.array([], pa.string()))
        con.register(f"_empty_{name}", empty)
        nulls = "".join(f", CAST(NULL AS {'DATE' if c == 'date' else 'VARCHAR'}) AS \"{c}\"" for c in extra)
        con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT *{nulls} FROM _empty_{name}")
        return
    present = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()}
    cols = [f'"{f.name}"' if f.name in present else f'CAST(NULL AS {duck_type(f.type)}) AS "{f.name}"'
            for f in schema if f.name != "file_id"]
    fid = '"file_id"' if name == "files" else f"{file_id or _FILE_ID} AS file_id"
    kept = "".join(f', "{c}"' for c in extra)
    con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT {fid}, {', '.join(cols)}, "
                f"CAST(product AS VARCHAR) AS product, CAST(test_type AS VARCHAR) AS test_type{kept} FROM {src}")


def create_effective_views(con: duckdb.DuckDBPyConnection) -> None:
    """``ptr_effective``, ``mpr_effective``, ``ftr_effective`` over the views ``*_results`` and ``tests``."""
    for view in EFFECTIVE_VIEWS:
        con.execute(f"CREATE OR REPLACE VIEW {view} AS {_effective_sql(view.split('_')[0].upper())}")


def open_views(out_dir, con: duckdb.DuckDBPyConnection | None = None) -> duckdb.DuckDBPyConnection:
    """DuckDB connection with one view per STDF table under ``out_dir`` (empty views when absent).

    Every view has the full published schema (``SCHEMAS``; columns a file left out because
    they were null in all its rows come back as NULL), plus ``file_id`` (the Parquet file's
    name; ``files`` stores it) and the hive partition columns ``product`` and ``test_type``."""
    out = Path(out_dir)
    con = con or duckdb.connect()
    for name in TABLES:
        src = None
        if any((out / name).glob("product=*/test_type=*/*.parquet")):
            pattern = str(out / name / "*" / "*" / "*.parquet")
            src = (f"read_parquet({_quote(pattern)}, hive_partitioning = true, union_by_name = true, "
                   f"filename = true)")
        create_stdf_view(con, name, src)
    create_effective_views(con)
    return con


def read_table(out_dir, table: str) -> pa.Table:
    """One table of ``out_dir`` as Arrow, with the full schema, ``file_id``, ``product`` and ``test_type``."""
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}")
    return open_views(out_dir).sql(f"SELECT * FROM {table}").to_arrow_table()


def _run(con, q: str, out) -> bool:
    try:
        rel = con.sql(q)
    except duckdb.Error as e:
        print(f"error: {e}", file=out)
        return False
    if rel is not None:
        print(_format(rel), file=out)
    return True


def _format(rel, max_rows: int = 200) -> str:
    cols = rel.columns
    rows = rel.limit(max_rows + 1).fetchall()
    more = len(rows) > max_rows
    rows = rows[:max_rows]
    text = [[("NULL" if v is None else str(v)) for v in r] for r in rows]
    widths = [min(max([len(c)] + [len(r[i]) for r in text]), 60) for i, c in enumerate(cols)]
    line = "  ".join(c.ljust(w)[:w] for c, w in zip(cols, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(v.ljust(w)[:w] for v, w in zip(r, widths)) for r in text]
    out.append(f"({len(rows)}{'+' if more else ''} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(out)


def sql_shell(out_dir, query: str | None = None, *, stdin=None, stdout=None) -> int:
    """Run ``query`` (exit code 0 / 1), or a small REPL on stdin when no query is given."""
    return run_shell(open_views(out_dir), list(TABLES) + list(EFFECTIVE_VIEWS), query, stdin=stdin, stdout=stdout)


def run_shell(con: duckdb.DuckDBPyConnection, views: list[str], query: str | None = None, *,
              stdin=None, stdout=None) -> int:
    """Run ``query`` on ``con`` and print it (exit code 0 / 1), or without a query read
    statements (ending with ``;``) from stdin: ``.tables`` lists ``views``, ``.quit`` ends."""
    out = stdout or sys.stdout
    if query is not None:
        return 0 if _run(con, query, out) else 1
    inp = stdin or sys.stdin
    interactive = hasattr(inp, "isatty") and inp.isatty()
    buf = ""
    while True:
        if interactive:
            out.write("failmap-sql> " if not buf else "        ...> ")
            out.flush()
        line = inp.readline()
        if not line:
            break
        s = line.strip()
        if not buf and s in (".quit", ".exit", "\\q"):
            break
        if not buf and s == ".tables":
            print("  ".join(views), file=out)
            continue
        buf += line
        if buf.strip().endswith(";"):
            _run(con, buf, out)
            buf = ""
    if buf.strip():
        _run(con, buf, out)
    return 0
