"""Parquet output (hive layout, atomic, sanitised partitions), batch conversion and DuckDB views."""

from __future__ import annotations

import io
import os

import pyarrow.parquet as pq
import pytest

from failmap_assets.stdf import SCHEMAS, TABLES, convert_many, open_views, parse_stdf, parse_to_parquet, sql_shell
from failmap_assets.stdf.sql import read_table
from failmap_synth.stdf_any import stdf
from tests.support.testdata import requires_shared


def _small(part_typ="PROD/X", test_cod="WS1"):
    mir = {"SETUP_T": 1, "START_T": 2, "STAT_NUM": 1, "MODE_COD": "P", "RTST_COD": " ", "PROT_COD": " ",
           "BURN_TIM": 0, "CMOD_COD": " ", "LOT_ID": "L", "PART_TYP": part_typ, "NODE_NAM": "n", "TSTR_TYP": "t",
           "JOB_NAM": "j", "JOB_REV": "", "SBLOT_ID": "", "OPER_NAM": "", "EXEC_TYP": "", "EXEC_VER": "",
           "TEST_COD": test_cod}
    return stdf([("PIR", {"HEAD_NUM": 1, "SITE_NUM": 1}),
                 ("PTR", {"TEST_NUM": 1, "HEAD_NUM": 1, "SITE_NUM": 1, "TEST_FLG": 0, "PARM_FLG": 0,
                          "RESULT": 0.5, "TEST_TXT": "t1", "ALARM_ID": ""}),
                 ("PRR", {"HEAD_NUM": 1, "SITE_NUM": 1, "PART_FLG": 0, "NUM_TEST": 1, "HARD_BIN": 1,
                          "SOFT_BIN": 1, "X_COORD": 0, "Y_COORD": 0})], mir=mir)


def test_layout_and_partitions(tmp_path):
    src = tmp_path / "a.stdf"
    src.write_bytes(_small())
    out = tmp_path / "out"
    s = parse_to_parquet(src, out)
    d = parse_stdf(src)
    assert (s.parts, s.tests, s.results, s.records, s.bytes) == (1, 1, 1, 6, src.stat().st_size)
    assert s.product.startswith("PROD_X-") and s.test_type == "WS1" and s.complete
    assert s.file_ids == [d.file_id]
    written = sorted(os.path.relpath(p, out) for p in s.files_written)
    expected = sorted(f"{t}/product={s.product}/test_type=WS1/{d.file_id}.parquet"
                      for t in ("files", "parts", "tests", "ptr_results"))
    assert written == expected
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]       # no temp files left
    # on disk: no per-row file id (it is the file name) and no column that is null in every row
    raw = pq.read_table(out / "ptr_results" / f"product={s.product}" / "test_type=WS1" / f"{d.file_id}.parquet")
    t = d.tables["ptr_results"]
    assert raw.column_names == [c for c in t.column_names if t[c].null_count < t.num_rows]
    assert raw.cast(t.select(raw.column_names).schema).equals(t.select(raw.column_names))
    # ... and every column here holds a value in every row: REQUIRED, no definition levels
    assert not [f.name for f in raw.schema if f.nullable]
    # read back with the full schema, file_id and partitions
    back = read_table(out, "ptr_results")
    assert back.column_names == ["file_id"] + SCHEMAS["ptr_results"].names + ["product", "test_type"]
    assert back.select(SCHEMAS["ptr_results"].names).equals(t)
    assert set(back["file_id"].to_pylist()) == {d.file_id}
    files = pq.read_table(out / "files" / f"product={s.product}" / "test_type=WS1" / f"{d.file_id}.parquet")
    assert files.schema.names == SCHEMAS["files"].names          # the one-row table keeps every column


@pytest.mark.parametrize("product,test_type", [("../../etc", "a=b"), ("", "  "), ("x" * 255, "ok/../..")])
def test_partition_values_are_sanitised(tmp_path, product, test_type):
    src = tmp_path / "a.stdf"
    src.write_bytes(_small(product, test_type))
    out = tmp_path / "out"
    s = parse_to_parquet(src, out)
    for p in s.files_written:
        rel = os.path.relpath(p, out)
        assert not rel.startswith("..") and os.path.realpath(p).startswith(os.path.realpath(out))
        table, prod, tt, _ = rel.split(os.sep)
        assert prod.startswith("product=") and tt.startswith("test_type=")
        assert "/" not in prod[8:] and "=" not in prod[8:] and "=" not in tt[10:] and len(prod) < 100
    s2 = parse_to_parquet(src, out, product="P1", test_type="FT")
    assert s2.product == "P1" and s2.test_type == "FT"


def test_rewrite_is_idempotent(tmp_path):
    src = tmp_path / "a.stdf"
    src.write_bytes(_small())
    out = tmp_path / "out"
    a = parse_to_parquet(src, out)
    b = parse_to_parquet(src, out)
    assert a.files_written == b.files_written
    assert len(list(out.rglob("*.parquet"))) == 4


@requires_shared
def test_real_file_roundtrip_and_views(stdf_path, parsed, tmp_path):
    out = tmp_path / "out"
    names = ["a595.stdf", "sort_4die_20times.stdf", "lot2.stdf.gz"]
    for n in names:
        parse_to_parquet(stdf_path(n), out)
    con = open_views(out)
    for table in TABLES:
        n_rows = con.execute(f"select count(*) from {table}").fetchone()[0]
        assert n_rows == sum(parsed(n).tables[table].num_rows for n in names), table
        cols = [r[0] for r in con.execute(f"describe {table}").fetchall()]
        assert cols == ["file_id"] + [c for c in SCHEMAS[table].names if c != "file_id"] + ["product", "test_type"]
    # every table of one file, read back through the views, equals the in-memory table
    d = parsed("a595.stdf")
    for table in TABLES:
        got = con.sql(f"select * exclude (file_id, product, test_type) from {table} "
                      f"where file_id = '{d.file_id}'").to_arrow_table()
        if table == "files":
            got = con.sql(f"select * exclude (product, test_type) from files "
                          f"where file_id = '{d.file_id}'").to_arrow_table()
        assert got.cast(SCHEMAS[table]).equals(d.tables[table]), table
    # product / test_type come from the hive path
    prods = dict(con.execute("select file_id, product from files").fetchall())
    assert prods[parsed("a595.stdf").file_id] == "mcc"
    # ptr_effective applies the default rule like our own reconstruction
    from failmap_assets.stdf import override_bits
    from tests.stdf.pystdf_ref import ours_as_records

    d = parsed("sort_4die_20times.stdf")
    ref = ours_as_records(d, override_bits)["PTR"]
    got = con.execute(f"select lo_limit, hi_limit, units, res_scal from ptr_effective where file_id = '{d.file_id}' "
                  "order by rec_idx").fetchall()
    assert got == [(r["LO_LIMIT"], r["HI_LIMIT"], r["UNITS"], r["RES_SCAL"]) for r in ref]
    # joins across tables by (file_id, part_idx)
    n = con.execute("select count(*) from ptr_results r join parts p using (file_id, part_idx)").fetchone()[0]
    assert n == sum(parsed(x).tables["ptr_results"]["part_idx"].drop_null().__len__() for x in names)


def test_views_without_data(tmp_path):
    con = open_views(tmp_path)
    assert con.execute("select count(*) from ptr_effective").fetchone()[0] == 0
    assert "product" in con.sql("select * from parts").columns


def test_sql_shell(tmp_path):
    src = tmp_path / "a.stdf"
    src.write_bytes(_small())
    parse_to_parquet(src, tmp_path / "out")
    buf = io.StringIO()
    assert sql_shell(tmp_path / "out", "select test_num, result from ptr_results", stdout=buf) == 0
    assert "test_num" in buf.getvalue() and "0.5" in buf.getvalue() and "(1 row)" in buf.getvalue()
    assert sql_shell(tmp_path / "out", "select nope", stdout=io.StringIO()) == 1
    buf = io.StringIO()
    sql_shell(tmp_path / "out", stdin=io.StringIO(".tables\nselect count(*) AS n\nfrom parts;\n.quit\n"), stdout=buf)
    assert "ptr_results" in buf.getvalue() and "n" in buf.getvalue() and "1" in buf.getvalue()


@requires_shared
def test_convert_many(stdf_path, tmp_path, capsys):
    files = [str(stdf_path(n)) for n in ("stdf4j_test.stdf", "makechip_x.stdf", "in_v3.std",
                                         "STS_001SRAM_8435_-30c_Nov_10_23h05m08s.stdf")]
    rc = convert_many(files + [str(tmp_path / "nothing*.stdf")], tmp_path / "out", workers=2, progress=True)
    err = capsys.readouterr().err
    assert rc == 1
    assert "in_v3.std: stdf_v3" in err and "not_found" in err
    assert "salvaged" in err and "zero_filled at byte 2180" in err
    assert "24/4" not in err and "4/4 files" in err
    lines = [x for x in err.splitlines() if x.startswith(("ok ", "salvaged ", "rejected ", "total "))]
    assert [x.split()[:2] for x in lines][:4] == [["ok", "2"], ["salvaged", "1"], ["rejected", "2"], ["total", "5"]]
    rc = convert_many([str(stdf_path("stdf4j_test.stdf"))], tmp_path / "out2", workers=1, progress=False)
    assert rc == 0


def _encodings(path, column: str) -> set[str]:
    meta = pq.ParquetFile(path).metadata
    k = meta.schema.names.index(column)
    return {e for g in range(meta.num_row_groups) for e in meta.row_group(g).column(k).encodings}


def test_part_index_encoding_follows_rows_per_part(tmp_path):
    """part_idx: delta-encoded in parts (0, 1, 2...) and in a result table of few rows per
    part; plain (lz4) in a result table whose parts hold many rows (long runs); the values
    read back the same either way."""
    from failmap_assets.stdf.parquet_file import LONG_PART_ROWS

    def parts(n, results_per_part):
        recs = []
        for p in range(n):
            recs.append(("PIR", {"HEAD_NUM": 1, "SITE_NUM": 1}))
            recs += [("PTR", {"TEST_NUM": t, "HEAD_NUM": 1, "SITE_NUM": 1, "TEST_FLG": 0, "PARM_FLG": 0,
                              "RESULT": 0.5 * p, "TEST_TXT": "t", "ALARM_ID": ""}) for t in range(results_per_part)]
            recs.append(("PRR", {"HEAD_NUM": 1, "SITE_NUM": 1, "PART_FLG": 0, "NUM_TEST": results_per_part,
                                 "HARD_BIN": 1, "SOFT_BIN": 1, "X_COORD": p, "Y_COORD": 0}))
        return stdf(recs)

    for per_part, delta in ((LONG_PART_ROWS, False), (LONG_PART_ROWS - 1, True)):
        src = tmp_path / f"p{per_part}.stdf"
        src.write_bytes(parts(20, per_part))
        out = tmp_path / f"out{per_part}"
        s = parse_to_parquet(src, out)
        by_table = {p.split(os.sep)[-4]: p for p in s.files_written}
        assert ("DELTA_BINARY_PACKED" in _encodings(by_table["ptr_results"], "part_idx")) is delta
        assert "DELTA_BINARY_PACKED" in _encodings(by_table["parts"], "part_idx")
        assert "DELTA_BINARY_PACKED" in _encodings(by_table["ptr_results"], "rec_idx")
        back = pq.read_table(by_table["ptr_results"])
        assert back["part_idx"].to_pylist() == [p for p in range(20) for _ in range(per_part)]


def test_required_in_one_file_nullable_in_the_next(tmp_path):
    """A column with no null is REQUIRED in its file; the next file of the same partition has
    nulls in it (a PTR outside any part: part_idx null). The views read both, with the
    published (nullable) schema and every value, as pyarrow does with schema promotion."""
    import pyarrow as pa

    out = tmp_path / "out"
    a, b = tmp_path / "a.stdf", tmp_path / "b.stdf"
    a.write_bytes(_small())
    orphan = ("PTR", {"TEST_NUM": 2, "HEAD_NUM": 1, "SITE_NUM": 1, "TEST_FLG": 0, "PARM_FLG": 0,
                      "RESULT": 1.5, "TEST_TXT": "t2", "ALARM_ID": ""})
    part = [("PIR", {"HEAD_NUM": 1, "SITE_NUM": 1}), dict(orphan[1], TEST_NUM=1, TEST_TXT="t1"),
            ("PRR", {"HEAD_NUM": 1, "SITE_NUM": 1, "PART_FLG": 0, "NUM_TEST": 1, "HARD_BIN": 1, "SOFT_BIN": 1,
                     "X_COORD": 0, "Y_COORD": 0})]
    b.write_bytes(stdf([orphan, part[0], ("PTR", part[1]), part[2]]))
    pa_, pb = (next(p for p in parse_to_parquet(f, out).files_written if f"{os.sep}ptr_results{os.sep}" in p)
               for f in (a, b))
    assert not pq.read_schema(pa_).field("part_idx").nullable
    assert pq.read_schema(pb).field("part_idx").nullable
    back = read_table(out, "ptr_results")
    assert back.schema.field("part_idx").type == pa.int32() and back.schema.field("part_idx").nullable
    got = sorted(zip(back["test_num"].to_pylist(), back["part_idx"].to_pylist()), key=str)
    assert got == [(1, 0), (1, 0), (2, None)]
    both = pa.concat_tables([pq.read_table(pa_), pq.read_table(pb)], promote_options="default")
    assert both["part_idx"].to_pylist() == [0, None, 0]


def test_long_empty_text_is_written_as_a_dictionary_and_reads_back_the_same(tmp_path):
    """A text column of EMPTY_TEXT_ROWS rows or more whose values are all empty (or null) is
    written as a one-entry dictionary; it reads back as the same text, nulls in place, also
    from chunks that are slices. Text with any character stays plain (a results table)."""
    import pyarrow as pa

    from failmap_assets.stdf.parquet_file import EMPTY_TEXT_ROWS, write_table_file

    n = EMPTY_TEXT_ROWS + 3
    empty = pa.array(["", None, ""] * n)
    chunked = pa.chunked_array([empty.slice(1, n), empty.slice(n + 1, n)])     # slices: offsets inside buffers
    text = pa.chunked_array([pa.array(["a", ""] * (n // 2) + ["b"] * (n % 2)), pa.array(["", "c"] * (n // 2) +
                                                                                   ["d"] * (n % 2))])
    rows = pa.table({"rec_idx": pa.chunked_array([pa.array(range(n)), pa.array(range(n, 2 * n))]),
                     "alarm_id": chunked, "test_txt": text,
                     "all_empty": pa.chunked_array([pa.array([""] * n), pa.array([""] * n)])})
    path = str(tmp_path / "t.parquet")
    write_table_file(rows, path, "ptr_results")
    back = pq.read_table(path)
    assert back.cast(rows.schema).equals(rows)
    assert back["alarm_id"].null_count == rows["alarm_id"].null_count > 0
    assert {c: bool({"PLAIN_DICTIONARY", "RLE_DICTIONARY"} & _encodings(path, c))
            for c in ("alarm_id", "all_empty", "test_txt")} == {"alarm_id": True, "all_empty": True, "test_txt": False}
    small = rows.slice(0, EMPTY_TEXT_ROWS - 1)                                  # below the threshold: plain
    write_table_file(small, path, "ptr_results")
    assert not {"PLAIN_DICTIONARY", "RLE_DICTIONARY"} & _encodings(path, "all_empty")
    assert pq.read_table(path).cast(small.schema).equals(small)
