"""GDR GEN_DATA (Vn arrays) as JSON text, ``[[type_code, value], ...]`` per record.

A kernel flattens the typed values; Arrow compute builds the JSON text (floats and
strings through ``jsontext``). Its own module because Vn is the one field type that
is neither a column of numbers nor of strings.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa

from failmap_assets.kernels.jit import kernel
from ..jsontext import HEX_DIGITS, SHORT_ESCAPES, json_text, put_json_int, put_json_null, put_json_string
from .arrays import _list_offsets
from .primitives import _rd_int, _rd_uint
from .strings import _bitmap, _gather


@kernel
def _gdr_items(buf, starts, counts, be):
    """Flatten GDR GEN_DATA: per item its type code, integer / float value, data span."""
    n = starts.shape[0]
    offsets = _list_offsets(counts)
    total = offsets[n]
    code = np.empty(total, dtype=np.int64)
    ival = np.zeros(total, dtype=np.int64)
    fval = np.zeros(total, dtype=np.float64)
    sst = np.zeros(total, dtype=np.int64)
    sln = np.full(total, -1, dtype=np.int64)
    tmp4 = np.zeros(1, dtype=np.uint32)
    tmp8 = np.zeros(1, dtype=np.uint64)
    f4 = tmp4.view(np.float32)
    f8 = tmp8.view(np.float64)
    for r in range(n):
        p = starts[r]
        for k in range(offsets[r], offsets[r + 1]):
            c = np.int64(buf[p])
            p += 1
            code[k] = c
            if c == 1 or c == 2 or c == 3:
                sz = 1 if c == 1 else (2 if c == 2 else 4)
                ival[k] = _rd_int(buf, p, sz, be, False)
                p += sz
            elif c == 4 or c == 5 or c == 6:
                sz = 1 if c == 4 else (2 if c == 5 else 4)
                ival[k] = _rd_int(buf, p, sz, be, True)
                p += sz
            elif c == 7:
                tmp4[0] = np.uint32(_rd_uint(buf, p, 4, be))
                fval[k] = f4[0]
                p += 4
            elif c == 8:
                tmp8[0] = _rd_uint(buf, p, 8, be)
                fval[k] = f8[0]
                p += 8
            elif c == 10 or c == 11:
                ln = np.int64(buf[p])
                sst[k] = p + 1
                sln[k] = ln
                p += 1 + ln
            elif c == 12:
                bits = np.int64(_rd_uint(buf, p, 2, be))
                nb = (bits + 7) // 8
                ival[k] = bits
                sst[k] = p + 2
                sln[k] = nb
                p += 2 + nb
            elif c == 13:
                ival[k] = np.int64(buf[p]) & 0x0F
                p += 1
    return offsets, code, ival, fval, sst, sln


def _json_float(x: float):
    if math.isfinite(x):
        return x
    return "NaN" if math.isnan(x) else ("Infinity" if x > 0 else "-Infinity")


_BITS = np.frombuffer(b'{"bits": ', dtype=np.uint8)
_HEXKEY = np.frombuffer(b', "hex": "', dtype=np.uint8)


@kernel
def _put_bytes(out, q, src, s, n):
    for k in range(n):
        out[q + k] = src[s + k]
    return q + n


@kernel
def _put_hex(out, q, buf, s, n, hexd):
    for k in range(n):
        b = buf[s + k]
        out[q] = hexd[b >> 4]
        out[q + 1] = hexd[b & 0x0F]
        q += 2
    return q


@kernel
def _gdr_text(buf, be, offsets, code, ival, sst, sln, str_off, str_data, flt_at, flt_off, flt_data, valid,
              hexd, esc, bits_key, hex_key):
    """JSON text per record, ``[[code, value], ...]``, into one buffer -> (int64 offsets, data).

    Strings come pre-gathered as valid UTF-8 (str_off / str_data, item-aligned), floats
    pre-formatted (flt_data, the k-th float item at flt_at[item]): the kernel only lays
    out and escapes. Sizes are bounded first (no write past the end)."""
    n = offsets.shape[0] - 1
    cap = np.int64(0)
    for r in range(n):
        cap += 2
        for k in range(offsets[r], offsets[r + 1]):
            c = code[k]
            cap += 28                                   # "[", code, ", ", "]", ", ", integer
            if c == 7 or c == 8:
                f = flt_at[k]
                cap += flt_off[f + 1] - flt_off[f]
            elif c == 10:
                cap += 2 + 6 * (str_off[k + 1] - str_off[k])
            elif c == 11 or c == 12:
                cap += 2 * sln[k] + 40
    out = np.empty(cap, dtype=np.uint8)
    roff = np.empty(n + 1, dtype=np.int64)
    q = np.int64(0)
    roff[0] = 0
    for r in range(n):
        if valid[r]:
            out[q] = 91              # '['
            q += 1
            for k in range(offsets[r], offsets[r + 1]):
                if k > offsets[r]:
                    out[q] = 44
                    out[q + 1] = 32
                    q += 2
                out[q] = 91
                q += 1
                c = code[k]
                q = put_json_int(out, q, c)
                out[q] = 44
                out[q + 1] = 32
                q += 2
                if c == 0:
                    q = put_json_null(out, q)
                elif c == 7 or c == 8:
                    f = flt_at[k]
                    q = _put_bytes(out, q, flt_data, flt_off[f], flt_off[f + 1] - flt_off[f])
                elif c == 10:
                    q = put_json_string(out, q, str_data, str_off[k], str_off[k + 1] - str_off[k], hexd, esc)
                elif c == 11:
                    out[q] = 34
                    q = _put_hex(out, q + 1, buf, sst[k], sln[k], hexd)
                    out[q] = 34
                    q += 1
                elif c == 12:
                    q = _put_bytes(out, q, bits_key, 0, bits_key.shape[0])
                    q = put_json_int(out, q, ival[k])
                    q = _put_bytes(out, q, hex_key, 0, hex_key.shape[0])
                    q = _put_hex(out, q, buf, sst[k], sln[k], hexd)
                    out[q] = 34
                    out[q + 1] = 125
                    q += 2
                else:
                    q = put_json_int(out, q, ival[k])
                out[q] = 93
                q += 1
            out[q] = 93
            q += 1
        roff[r + 1] = q
    return roff, out[:q]


def gdr_json(buf: np.ndarray, starts: np.ndarray, counts: np.ndarray, valid: np.ndarray, be: bool) -> pa.Array:
    """GDR GEN_DATA per record as JSON text: [[type_code, value], ...]; pads are [0, null].

    Floats are formatted by Arrow (``jsontext.json_text``: shortest round-trip text, NaN /
    Infinity as strings), everything else is laid out by one kernel."""
    valid = np.ascontiguousarray(valid, dtype=np.bool_)
    offsets, code, ival, fval, sst, sln = _gdr_items(buf, np.ascontiguousarray(starts, dtype=np.int64),
                                                     np.where(valid, counts, 0).astype(np.int64), be)
    isf = (code == 7) | (code == 8)
    flt_at = np.cumsum(isf) - 1
    ftxt = json_text(pa.array(fval[isf])) if isf.any() else pa.array([], pa.string())
    fb = ftxt.buffers()
    flt_off = np.frombuffer(fb[1], dtype=np.int32, count=len(ftxt) + 1, offset=ftxt.offset * 4).astype(np.int64)
    flt_data = np.frombuffer(fb[2], dtype=np.uint8) if fb[2] is not None else np.zeros(0, np.uint8)
    str_off, str_data = _gather(buf, sst, np.where(code == 10, sln, -1), True)
    roff, data = _gdr_text(buf, be, offsets, code, ival, sst, sln, str_off, str_data, flt_at, flt_off,
                           flt_data if flt_data.size else np.zeros(1, np.uint8), valid, HEX_DIGITS, SHORT_ESCAPES,
                           _BITS, _HEXKEY)
    n = int(valid.shape[0])
    big = int(roff[-1]) >= 2**31
    bm, nulls = _bitmap(valid)
    typ = pa.large_string() if big else pa.string()
    off = roff if big else roff.astype(np.int32)
    arr = pa.Array.from_buffers(typ, n, [bm, pa.py_buffer(off), pa.py_buffer(data)], null_count=nulls)
    return arr.cast(pa.string()) if big else arr
