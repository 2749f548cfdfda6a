"""Every real file's Parquet output reads back, with pyarrow and with polars, equal to the
in-memory tables (the writer settings - page version, encodings, dictionaries - change
nothing a reader sees). Columns null in every row are left out of the file (sql.py restores
them from SCHEMAS); columns with no null are REQUIRED in the file, the others nullable, and so are the elements
of a list column."""

from __future__ import annotations

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from failmap_assets.stdf.tables import write_parquet
from tests.stdf.conftest import ALL_V4_FILES
from tests.support.testdata import requires_shared

pytestmark = requires_shared


@pytest.mark.parametrize("name", ALL_V4_FILES)
def test_parquet_reads_back_equal(name, parsed, tmp_path):
    d = parsed(name)
    written = write_parquet(d, tmp_path)
    by_table = {p.split("/")[-4]: p for p in (str(x).replace("\\", "/") for x in written)}
    assert set(by_table) == {k for k, t in d.tables.items() if t.num_rows}
    for table, path in by_table.items():
        mem = d.tables[table]
        got = pq.read_table(path)
        assert got.column_names == [c for c in mem.column_names
                                    if table == "files" or mem[c].null_count < mem.num_rows], table
        want = mem.select(got.column_names)
        required = want.schema
        for i, c in enumerate(want.columns):
            f = required.field(i).with_nullable(c.null_count > 0)
            if pa.types.is_list(f.type) and not pc.is_null(pc.list_flatten(c)).to_numpy().any():
                f = f.with_type(pa.list_(f.type.value_field.with_nullable(False)))   # nor any element
            required = required.set(i, f)
        assert got.schema.equals(required), table
        assert got.cast(want.schema).equals(want), table
        assert pl.read_parquet(path).equals(pl.from_arrow(want)), table
