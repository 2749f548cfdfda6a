"""JSON text of whole Arrow columns (the generic table's ``fields``): the string kernel
must escape exactly as json.dumps(ensure_ascii=False) does."""

from __future__ import annotations

import json

import pyarrow as pa

from failmap_assets.stdf.jsontext import json_text, objects


def test_strings_escape_like_json_dumps():
    values = ["plain", "", None, 'q"uote', "back\\slash", "é ü 中 😀", "\x7f del"] + [
        f"c{chr(c)}x" for c in range(32)]
    got = json_text(pa.array(values, pa.string())).to_pylist()
    assert got == ["null" if v is None else json.dumps(v, ensure_ascii=False) for v in values]
    assert [json.loads(g) for g in got] == values


def test_sliced_and_large_strings():
    arr = pa.array(["skip", "a\nb", None, "c"], pa.string()).slice(1)
    assert json_text(arr).to_pylist() == ['"a\\nb"', "null", '"c"']
    assert json_text(pa.array(["x\ty"], pa.large_string())).to_pylist() == ['"x\\ty"']


def test_objects_round_trip():
    cols = {"A": pa.array(["l1\r\nl2", None]), "B": pa.array([1, None], pa.int32())}
    assert [json.loads(t) for t in objects(cols, 2).to_pylist()] == [{"A": "l1\r\nl2", "B": 1},
                                                                      {"A": None, "B": None}]
