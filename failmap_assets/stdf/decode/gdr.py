"""GDR GEN_DATA (Vn arrays) as JSON text, ``[[type_code, value], ...]`` per record, and the
whole GDR's ``fields`` object around it.

Two passes over the typed items of the records, both Numba: the first collects the float
values and bounds the text's size; Arrow formats the floats (``jsontext.json_text``: shortest
round-trip text, NaN / Infinity as strings); the second writes the text straight from the
record bytes (integers, strings through ``put_json_string``, bytes as hex). A GDR can hold
tens of thousands of items (a tester's vector log): no per-item arrays between the passes.
Its own module because Vn is the one field type that is neither a column of numbers nor of
strings.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa

from failmap_assets.kernels.jit import kernel
from failmap_assets.kernels.memcpy import put_bytes
from ..jsontext import HEX_DIGITS, SHORT_ESCAPES, json_text, put_json_int, put_json_null, put_json_string
from .primitives import _rd_int, _rd_uint, _vn_size
from .strings import _bitmap, _is_utf8

# digits of the widest value of each integer type code (1-6: U1 U2 U4 I1 I2 I4; 13: N1)
_INT_WIDTH = np.array([0, 3, 5, 10, 4, 6, 11, 0, 0, 0, 0, 0, 0, 2], dtype=np.int64)


@kernel
def _gdr_walk(buf, starts, counts, valid, be):
    """Pass 1 over the items of the valid records -> (float values as float64 in item order,
    bound on the text's bytes other than the floats' digits, index of the first record whose
    items are unknown or run past the buffer, or -1)."""
    n = starts.shape[0]
    nb = np.int64(buf.shape[0])
    fval = np.empty(64, dtype=np.float64)
    nf = 0
    cap = np.int64(0)
    tmp4 = np.zeros(1, dtype=np.uint32)
    tmp8 = np.zeros(1, dtype=np.uint64)
    f4 = tmp4.view(np.float32)
    f8 = tmp8.view(np.float64)
    for r in range(n):
        cap += 2
        if not valid[r]:
            continue
        p = np.int64(starts[r])
        if p < 0:
            return fval[:nf], cap, r
        for _ in range(counts[r]):
            if p >= nb:
                return fval[:nf], cap, r
            c = np.int64(buf[p])
            p += 1
            sz = _vn_size(buf, p, nb, c, be)
            if sz < 0:
                return fval[:nf], cap, r
            cap += 9                                  # ", " "[" code ", " "]"
            if c == 7 or c == 8:
                if nf == fval.shape[0]:
                    grown = np.empty(2 * nf, dtype=np.float64)
                    grown[:nf] = fval
                    fval = grown
                if c == 7:
                    tmp4[0] = np.uint32(_rd_uint(buf, p, 4, be))
                    fval[nf] = f4[0]
                else:
                    tmp8[0] = _rd_uint(buf, p, 8, be)
                    fval[nf] = f8[0]
                nf += 1
            elif c == 10:
                cap += 2 + 6 * (sz - 1)
            elif c == 11:
                cap += 2 + 2 * (sz - 1)
            elif c == 12:
                cap += 40 + 2 * (sz - 2)
            elif c == 0:
                cap += 4
            else:
                cap += _INT_WIDTH[c]
            p += sz
    return fval[:nf], cap, np.int64(-1)


@kernel
def _put_hex(out, q, buf, s, n, hexd):
    for k in range(n):
        b = buf[s + k]
        out[q] = hexd[b >> 4]
        out[q + 1] = hexd[b & 0x0F]
        q += 2
    return q


@kernel
def _gdr_write(buf, be, starts, counts, valid, cap, flt_off, flt_data, hexd, esc, bits_key, hex_key,
               head, fc, fc_ok, mid, tail):
    """Pass 2: the JSON text per record into one buffer -> (int64 offsets, data). Only after
    ``_gdr_walk`` found every valid record's items inside the buffer, and with its bound
    ``cap`` plus the floats' text: nothing is written past the end.

    With a non-empty ``head`` every row is the record's object: head, FLD_CNT (``fc``, null
    unless ``fc_ok``), ``mid``, GEN_DATA (null for an invalid row), ``tail``."""
    n = starts.shape[0]
    wrap = head.shape[0] > 0
    if wrap:
        cap += n * (head.shape[0] + 20 + mid.shape[0] + 4 + tail.shape[0])
    out = np.empty(cap, dtype=np.uint8)
    roff = np.empty(n + 1, dtype=np.int64)
    q = np.int64(0)
    f = 0
    roff[0] = 0
    for r in range(n):
        if wrap:
            q = put_bytes(out, q, head, 0, head.shape[0])
            q = put_json_int(out, q, fc[r]) if fc_ok[r] else put_json_null(out, q)
            q = put_bytes(out, q, mid, 0, mid.shape[0])
            if not valid[r]:
                q = put_json_null(out, q)
        if valid[r]:
            p = np.int64(starts[r])
            out[q] = 91              # '['
            q += 1
            for k in range(counts[r]):
                if k:
                    out[q] = 44
                    out[q + 1] = 32
                    q += 2
                out[q] = 91
                c = np.int64(buf[p])
                p += 1
                q = put_json_int(out, q + 1, c)
                out[q] = 44
                out[q + 1] = 32
                q += 2
                if c == 0:
                    q = put_json_null(out, q)
                elif c == 1 or c == 2 or c == 3:
                    sz = 1 if c == 1 else (2 if c == 2 else 4)
                    q = put_json_int(out, q, _rd_int(buf, p, sz, be, False))
                    p += sz
                elif c == 4 or c == 5 or c == 6:
                    sz = 1 if c == 4 else (2 if c == 5 else 4)
                    q = put_json_int(out, q, _rd_int(buf, p, sz, be, True))
                    p += sz
                elif c == 7 or c == 8:
                    q = put_bytes(out, q, flt_data, flt_off[f], flt_off[f + 1])
                    f += 1
                    p += 4 if c == 7 else 8
                elif c == 10:
                    ln = np.int64(buf[p])
                    q = put_json_string(out, q, buf, p + 1, ln, hexd, esc, _is_utf8(buf, p + 1, ln))
                    p += 1 + ln
                elif c == 11:
                    ln = np.int64(buf[p])
                    out[q] = 34
                    q = _put_hex(out, q + 1, buf, p + 1, ln, hexd)
                    out[q] = 34
                    q += 1
                    p += 1 + ln
                elif c == 12:
                    bits = np.int64(_rd_uint(buf, p, 2, be))
                    ln = (bits + 7) // 8
                    q = put_bytes(out, q, bits_key, 0, bits_key.shape[0])
                    q = put_json_int(out, q, bits)
                    q = put_bytes(out, q, hex_key, 0, hex_key.shape[0])
                    q = _put_hex(out, q, buf, p + 2, ln, hexd)
                    out[q] = 34
                    out[q + 1] = 125
                    q += 2
                    p += 2 + ln
                else:                # 13: N1, the low nibble
                    q = put_json_int(out, q, np.int64(buf[p]) & 0x0F)
                    p += 1
                out[q] = 93
                q += 1
            out[q] = 93
            q += 1
        if wrap:
            q = put_bytes(out, q, tail, 0, tail.shape[0])
        roff[r + 1] = q
    return roff, out[:q]


def _json_float(x: float):
    if math.isfinite(x):
        return x
    return "NaN" if math.isnan(x) else ("Infinity" if x > 0 else "-Infinity")


def _bytes(s: bytes) -> np.ndarray:
    return np.frombuffer(s, dtype=np.uint8)


_BITS = _bytes(b'{"bits": ')
_HEXKEY = _bytes(b', "hex": "')
_NONE = np.zeros(0, np.uint8)
# the generic table's object of a GDR, as jsontext.objects lays out any record's fields
_HEAD, _MID, _TAIL = _bytes(b'{"FLD_CNT": '), _bytes(b', "GEN_DATA": '), _bytes(b"}")


def _text(buf, starts, counts, valid, be, fc, fc_ok, wrap: bool) -> pa.Array:
    starts = np.ascontiguousarray(starts, dtype=np.int64)
    valid = np.ascontiguousarray(valid, dtype=np.bool_)
    counts = np.ascontiguousarray(np.where(valid, counts, 0), dtype=np.int64)
    fval, cap, bad = _gdr_walk(buf, starts, counts, valid, be)
    if bad >= 0:
        raise ValueError(f"GDR row {bad}: its GEN_DATA items are unknown or run past the data "
                         f"(the records were not checked before the GDR kernel)")
    if fval.size:
        ftxt = json_text(pa.array(fval))
        fb = ftxt.buffers()
        flt_off = np.frombuffer(fb[1], dtype=np.int32, count=len(ftxt) + 1, offset=ftxt.offset * 4).astype(np.int64)
        flt_data = np.frombuffer(fb[2], dtype=np.uint8) if fb[2] is not None else np.zeros(1, np.uint8)
        cap += int(flt_off[-1] - flt_off[0])
    else:
        flt_off, flt_data = np.zeros(1, np.int64), np.zeros(1, np.uint8)
    head, mid, tail = (_HEAD, _MID, _TAIL) if wrap else (_NONE, _NONE, _NONE)
    roff, data = _gdr_write(buf, be, starts, counts, valid, cap, flt_off, flt_data, HEX_DIGITS, SHORT_ESCAPES,
                            _BITS, _HEXKEY, head, fc, fc_ok, mid, tail)
    n = int(valid.shape[0])
    big = int(roff[-1]) >= 2**31
    bm, nulls = (None, 0) if wrap else _bitmap(valid)
    typ = pa.large_string() if big else pa.string()
    off = roff if big else roff.astype(np.int32)
    arr = pa.Array.from_buffers(typ, n, [bm, pa.py_buffer(off), pa.py_buffer(data)], null_count=nulls)
    return arr.cast(pa.string()) if big else arr


def gdr_json(buf: np.ndarray, starts: np.ndarray, counts: np.ndarray, valid: np.ndarray, be: bool) -> pa.Array:
    """GDR GEN_DATA per record as JSON text: [[type_code, value], ...]; pads are [0, null];
    null where not ``valid``."""
    z = np.zeros(len(starts), np.int64)
    return _text(buf, starts, counts, valid, be, z, z.astype(np.bool_), False)


def gdr_objects(buf: np.ndarray, val: np.ndarray, aux: np.ndarray, be: bool) -> pa.Array:
    """The generic table's ``fields`` of GDRs from the interpreter's (val, aux) matrices:
    ``{"FLD_CNT": n, "GEN_DATA": [[type_code, value], ...]}``, either value null when the
    record does not hold it (the text ``jsontext.objects`` gives over the columns)."""
    fc_ok = np.ascontiguousarray(aux[:, 0] >= 0)
    fc = np.ascontiguousarray(np.where(fc_ok, val[:, 0], 0), dtype=np.int64)
    valid = aux[:, 1] >= 0
    return _text(buf, val[:, 1], aux[:, 1], valid, be, fc, fc_ok, True)
