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

from failmap_assets.kernels.jit import kernel

HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
SHORT_ESCAPES = np.frombuffer(b"btnfr", dtype=np.uint8)    # for bytes 8, 9, 10, 12, 13


@kernel
def put_json_null(out, q):
    """The JSON literal ``null`` at out[q:]; returns the new end."""
    out[q] = 110
    out[q + 1] = 117
    out[q + 2] = 108
    out[q + 3] = 108
    return q + 4


@kernel
def put_json_uint(out, q, u):
    """Decimal digits of the uint64 u at out[q:] (counted first, written from the end: no
    scratch array); returns the new end."""
    k = 1
    t = u
    while t >= np.uint64(10):
        t //= np.uint64(10)
        k += 1
    for j in range(k - 1, -1, -1):
        out[q + j] = 48 + np.uint8(u % np.uint64(10))
        u //= np.uint64(10)
    return q + k


@kernel
def put_json_int(out, q, v):
    """Decimal text of the int64 v at out[q:]; returns the new end."""
    if v < 0:
        out[q] = 45          # '-'
        return put_json_uint(out, q + 1, np.uint64(-(v + 1)) + np.uint64(1))   # |v|, no overflow at int64 min
    return put_json_uint(out, q, np.uint64(v))


@kernel
def put_json_string(out, q, src, s, n, hexd, esc, utf8=True):
    """The JSON string literal of src[s:s+n] at out[q:], escaped as
    json.dumps(ensure_ascii=False) does: backslash and quote, b t n f r, other control
    characters as u00xx. The bytes are valid UTF-8 (``utf8``) or else Latin-1, each byte
    >= 0x80 written as its two UTF-8 bytes. Needs 2 + 6 * n bytes of room; returns the new
    end. The one JSON string rule of the STDF tables (generic records, GDR values, strings)."""
    out[q] = 34
    q += 1
    for k in range(n):
        c = src[s + k]
        if c == 34 or c == 92:
            out[q] = 92
            out[q + 1] = c
            q += 2
        elif c < 0x20:
            out[q] = 92
            if 8 <= c <= 13 and c != 11:
                out[q + 1] = esc[c - 8] if c < 11 else esc[c - 9]
                q += 2
            else:
                out[q + 1] = 117     # u00xx
                out[q + 2] = 48
                out[q + 3] = 48
                out[q + 4] = hexd[c >> 4]
                out[q + 5] = hexd[c & 0x0F]
                q += 6
        elif c >= 0x80 and not utf8:
            out[q] = 0xC0 | (c >> 6)
            out[q + 1] = 0x80 | (c & 0x3F)
            q += 2
        else:
            out[q] = c
            q += 1
    out[q] = 34
    return q + 1


@kernel
def _json_strings(offsets, data, valid, hexd, esc):
    """JSON text of every string of an Arrow string column (offsets relative to data);
    nulls become ``null``. -> (int64 offsets, bytes)."""
    n = valid.shape[0]
    cap = np.int64(0)
    for r in range(n):
        cap += 4 if not valid[r] else 2 + 6 * (np.int64(offsets[r + 1]) - np.int64(offsets[r]))
    out = np.empty(cap, dtype=np.uint8)
    roff = np.empty(n + 1, dtype=np.int64)
    roff[0] = 0
    q = np.int64(0)
    for r in range(n):
        if valid[r]:
            s = np.int64(offsets[r])
            q = put_json_string(out, q, data, s, np.int64(offsets[r + 1]) - s, hexd, esc)
        else:
            q = put_json_null(out, q)
        roff[r + 1] = q
    return roff, out[:q]


def _string_json(arr: pa.Array) -> pa.Array:
    """json_text of a string array, through ``_json_strings`` (one pass, no Python per value)."""
    n = len(arr)
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int32, count=n + 1, offset=arr.offset * 4)
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None and bufs[2].size else np.zeros(1, np.uint8)
    valid = (np.ones(n, dtype=np.bool_) if arr.null_count == 0
             else arr.is_valid().to_numpy(zero_copy_only=False))
    roff, out = _json_strings(offsets, data, valid, HEX_DIGITS, SHORT_ESCAPES)
    if roff[-1] >= 2**31:
        return pa.Array.from_buffers(pa.large_string(), n, [None, pa.py_buffer(roff), pa.py_buffer(out)])
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(roff.astype(np.int32)), pa.py_buffer(out)])


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
        out = _string_json(arr.cast(pa.string()) if pa.types.is_large_string(t) else arr)
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
