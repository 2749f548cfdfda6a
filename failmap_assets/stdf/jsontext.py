"""JSON text for whole Arrow columns at once (the ``generic`` table's ``fields``).

Built with Arrow compute kernels, column by column, instead of one ``json.dumps`` per
record: strings are escaped (control characters through ``json.dumps``), floats keep
their float64 value (``"NaN"``, ``"Infinity"`` as strings), lists become JSON arrays,
bytes become hex strings, nulls become ``null``.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def _concat(*parts) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


def _python(values: list) -> pa.Array:
    return pa.array(["null" if v is None else json.dumps(v, ensure_ascii=False) for v in values], pa.string())


def json_text(arr: pa.Array) -> pa.Array:
    """One JSON value (as text) per element; never null."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    t = arr.type
    n = len(arr)
    if n == 0:
        return pa.array([], pa.string())
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        arr = arr.cast(pa.string())
        esc = pc.replace_substring(arr, "\\", "\\\\")
        esc = pc.replace_substring(esc, '"', '\\"')
        out = _concat('"', esc, '"')
        bad = pc.match_substring_regex(arr, "[\\x00-\\x1f]").fill_null(False)
        if pc.any(bad).as_py():
            idx = np.flatnonzero(bad.to_numpy(zero_copy_only=False))
            fixed = _python([arr[int(i)].as_py() for i in idx])
            out = pc.replace_with_mask(out, bad, fixed)
    elif pa.types.is_integer(t) or pa.types.is_boolean(t):
        out = pc.cast(arr, pa.string())
        if pa.types.is_boolean(t):
            out = pc.utf8_lower(out)
    elif pa.types.is_floating(t):
        f = arr.cast(pa.float64())
        out = pc.cast(f, pa.string())
        nan = pc.is_nan(f).fill_null(False)
        inf = pc.is_inf(f).fill_null(False)
        if pc.any(pc.or_(nan, inf)).as_py():
            pos = pc.greater(f, 0).fill_null(False)
            special = pc.if_else(nan, '"NaN"', pc.if_else(pos, '"Infinity"', '"-Infinity"'))
            out = pc.if_else(pc.or_(nan, inf), special, out)
    elif pa.types.is_list(t) or pa.types.is_large_list(t):
        items = json_text(arr.values)
        lst = pa.ListArray.from_arrays(arr.offsets, items)
        out = _concat("[", pc.binary_join(lst, ", "), "]")
        out = pc.if_else(arr.is_null(), pa.scalar(None, pa.string()), out)
    elif pa.types.is_binary(t) or pa.types.is_large_binary(t):
        out = pa.array([None if b is None else f'"{b.hex()}"' for b in arr.to_pylist()], pa.string())
    else:
        out = _python(arr.to_pylist())
    return out.fill_null("null")


def objects(columns: dict[str, pa.Array], n: int, raw_json: dict[str, pa.Array] | None = None) -> pa.Array:
    """One JSON object per row: {"NAME": value, ...} in column order.

    ``raw_json`` columns already hold JSON text (null -> null)."""
    raw_json = raw_json or {}
    if not columns and not raw_json:
        return pa.array(["{}"] * n, pa.string())
    parts: list = []
    first = True
    for name, a in list(columns.items()) + list(raw_json.items()):
        key = ("{" if first else ", ") + json.dumps(name) + ": "
        first = False
        val = a.fill_null("null") if name in raw_json else json_text(a)
        parts += [key, val]
    parts.append("}")
    return _concat(*parts)
