"""Array fields (``kx`` element counts): list offsets and the kernels that flatten
fixed-width, nibble and string arrays out of the record bytes, and the Arrow list
builder over them.

Below ``gdr.py`` (which flattens Vn arrays with the same list offsets) and
``columns.py`` (which picks the right flattening per field type).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from failmap_assets.kernels.jit import kernel
from .primitives import _rd_int, _rd_uint
from .strings import _bitmap


@kernel
def _list_offsets(counts):
    """List offsets for rows of ``counts`` elements each (a negative count is an empty row)."""
    n = counts.shape[0]
    offsets = np.empty(n + 1, dtype=np.int64)
    offsets[0] = 0
    total = 0
    for r in range(n):
        if counts[r] > 0:
            total += counts[r]
        offsets[r + 1] = total
    return offsets


@kernel
def _expand_fixed(buf, starts, counts, widths, be, signed, nibble):
    """Flatten fixed-width arrays (width per row; nibble=True: N1) -> (list offsets, int64 values)."""
    n = starts.shape[0]
    offsets = _list_offsets(counts)
    total = offsets[n]
    out = np.empty(total, dtype=np.int64)
    for r in range(n):
        c = counts[r]
        if c <= 0:
            continue
        o = offsets[r]
        s = starts[r]
        if nibble:
            for k in range(c):
                b = buf[s + k // 2]
                out[o + k] = (b >> 4) if (k & 1) else (b & 0x0F)
        else:
            w = widths[r]
            for k in range(c):
                out[o + k] = _rd_int(buf, s + k * w, w, be, signed)
    return offsets, out


@kernel
def _expand_strings(buf, starts, counts, be, kind, widths):
    """Flatten arrays of strings: kind 0 = Cn, 1 = Sn, 2 = Cf (fixed width per row).

    Returns (list offsets, element starts, element lengths)."""
    n = starts.shape[0]
    offsets = _list_offsets(counts)
    total = offsets[n]
    es = np.empty(total, dtype=np.int64)
    el = np.empty(total, dtype=np.int64)
    for r in range(n):
        c = counts[r]
        if c <= 0:
            continue
        o = offsets[r]
        p = starts[r]
        for k in range(c):
            if kind == 0:
                ln = np.int64(buf[p])
                es[o + k] = p + 1
                el[o + k] = ln
                p += 1 + ln
            elif kind == 1:
                ln = np.int64(_rd_uint(buf, p, 2, be))
                es[o + k] = p + 2
                el[o + k] = ln
                p += 2 + ln
            else:
                w = widths[r]
                es[o + k] = p
                el[o + k] = w
                p += w
    return offsets, es, el


def _list_array(offsets: np.ndarray, values: pa.Array, valid: np.ndarray, item_type: pa.DataType) -> pa.Array:
    n = int(valid.shape[0])
    bm, nulls = _bitmap(valid)
    return pa.ListArray.from_buffers(pa.list_(item_type), n, [bm, pa.py_buffer(offsets.astype(np.int32))],
                                     null_count=nulls, children=[values])
