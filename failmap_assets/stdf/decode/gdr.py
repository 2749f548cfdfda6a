"""GDR GEN_DATA (Vn arrays) as JSON text, ``[[type_code, value], ...]`` per record.

A kernel flattens the typed values; Arrow compute builds the JSON text (floats and
strings through ``jsontext``). Its own module because Vn is the one field type that
is neither a column of numbers nor of strings.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

from ..jsontext import json_text
from .arrays import _list_offsets
from .primitives import _rd_int, _rd_uint
from .strings import string_array


@njit(cache=True, nogil=True)
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


def gdr_json(buf: np.ndarray, starts: np.ndarray, counts: np.ndarray, valid: np.ndarray, be: bool) -> pa.Array:
    """GDR GEN_DATA per record as JSON text: [[type_code, value], ...]; pads are [0, null]."""
    offsets, code, ival, fval, sst, sln = _gdr_items(buf, np.ascontiguousarray(starts, dtype=np.int64),
                                                     np.where(valid, counts, 0).astype(np.int64), be)
    m = len(code)
    val = pc.cast(pa.array(ival), pa.string())
    val = pc.if_else(pa.array(code == 0), "null", val)
    isf = (code == 7) | (code == 8)
    if isf.any():
        val = pc.if_else(pa.array(isf), json_text(pa.array(fval)), val)
    ist = code == 10
    if ist.any():
        txt = json_text(string_array(buf, sst, np.where(ist, sln, -1)))
        val = pc.if_else(pa.array(ist), txt, val)
    isb = (code == 11) | (code == 12)
    if isb.any():
        raw = string_array(buf, sst, np.where(isb, sln, -1), binary=True).to_pylist()
        iv = ival.tolist()
        fix = [None] * m
        for k in np.flatnonzero(isb).tolist():
            fix[k] = f'"{raw[k].hex()}"' if code[k] == 11 else f'{{"bits": {iv[k]}, "hex": "{raw[k].hex()}"}}'
        val = pc.if_else(pa.array(isb), pa.array(fix, pa.string()), val)
    items = pc.binary_join_element_wise("[", pc.cast(pa.array(code), pa.string()), ", ", val, "]", "")
    lst = pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), items)
    out = pc.binary_join_element_wise("[", pc.binary_join(lst, ", "), "]", "")
    return pc.if_else(pa.array(valid), out, pa.scalar(None, pa.string()))
