"""Every real file's tables, schema and every value, equal those of the commit before
issue 16's speed work (``tables_digest.json``, made by ``python -m tests.stdf.table_digest``).

Speed work must not change the output. A deliberate change of the tables regenerates the
file (and says so in its commit)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from tests.stdf.conftest import ALL_V4_FILES
from tests.stdf.table_digest import digests, table_digest
from tests.support.testdata import requires_shared

EXPECTED = json.loads((Path(__file__).parent / "tables_digest.json").read_text())


def test_digest_sees_values_not_buffers():
    t = pa.table({"s": pa.array(["a", None, "ccc"]), "l": pa.array([[1], None, [2, 3]], pa.list_(pa.int16())),
                  "f": pa.array([1.5, None, 2.0], pa.float32())})
    rechunked = pa.Table.from_batches(t.to_batches(max_chunksize=1))
    sliced = pa.concat_tables([t.slice(0, 2), t.slice(2)])
    assert table_digest(t) == table_digest(rechunked) == table_digest(sliced)
    assert table_digest(t) != table_digest(t.set_column(0, "s", pa.array(["a", None, "ccd"])))
    assert table_digest(t) != table_digest(t.set_column(0, "s", pa.array(["a", "", "ccc"])))
    assert table_digest(t) != table_digest(t.set_column(2, "f", pa.array([1.5, None, 2.0], pa.float64())))
    assert table_digest(t) != table_digest(t.set_column(1, "l", pa.array([[1], [], [2, 3]], pa.list_(pa.int16()))))


@requires_shared
@pytest.mark.parametrize("name", ALL_V4_FILES)
def test_tables_unchanged(name):
    got = digests([name])[name]
    assert set(got) == set(EXPECTED[name])
    changed = [t for t in got if got[t] != EXPECTED[name][t]]
    assert not changed, f"{name}: tables {changed} differ from tables_digest.json"
