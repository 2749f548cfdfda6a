"""Arrow arrays over kernel output without copying: all-null columns from one shared
zero buffer, fixed-width columns valid where a record holds the field, and integers
with negative = null.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from failmap_assets.kernels.jit import kernel


@kernel
def _bitmap_ge(nf, k):
    """Validity bitmap (LSB first) of nf >= k, and the null count."""
    n = nf.shape[0]
    out = np.zeros((n + 7) // 8, dtype=np.uint8)
    nulls = 0
    for i in range(n):
        if nf[i] >= k:
            out[i >> 3] |= np.uint8(1 << (i & 7))
        else:
            nulls += 1
    return out, nulls


@kernel
def _bitmap_nonneg(x):
    n = x.shape[0]
    out = np.zeros((n + 7) // 8, dtype=np.uint8)
    nulls = 0
    for i in range(n):
        if x[i] >= 0:
            out[i >> 3] |= np.uint8(1 << (i & 7))
        else:
            nulls += 1
    return out, nulls


class _Zeros:
    """One lazily-zeroed buffer shared by all-null columns (calloc: pages are never touched).

    Files are parsed on several threads: the buffer is swapped for a larger one as a
    whole (one reference), so a thread never slices a buffer another thread has just
    declared larger than it is."""

    def __init__(self):
        self.buf: pa.Buffer | None = None

    def get(self, nbytes: int) -> pa.Buffer:
        buf = self.buf
        if buf is None or nbytes > buf.size:
            buf = pa.py_buffer(np.zeros(max(nbytes, 1 << 16), dtype=np.uint8))
            self.buf = buf
        return buf.slice(0, max(nbytes, 0))


ZEROS = _Zeros()


_SMALL = 64
_SMALL_NULLS: dict[tuple[int, int], tuple[pa.DataType, pa.Array]] = {}


def null_array(typ: pa.DataType, n: int) -> pa.Array:
    """An all-null array without touching n * width bytes; made once per type object for the
    small lengths of small files (a small file asks for ~100 of them)."""
    if n > _SMALL:
        return _null_array(typ, n)
    hit = _SMALL_NULLS.get((id(typ), n))
    if hit is None or hit[0] is not typ:
        if len(_SMALL_NULLS) > 4096:
            _SMALL_NULLS.clear()
        hit = _SMALL_NULLS[(id(typ), n)] = (typ, _null_array(typ, n))
    return hit[1]


def _null_array(typ: pa.DataType, n: int) -> pa.Array:
    bm = ZEROS.get((n + 7) // 8)
    if pa.types.is_string(typ) or pa.types.is_binary(typ):
        return pa.Array.from_buffers(typ, n, [bm, ZEROS.get(4 * (n + 1)), ZEROS.get(0)], null_count=n)
    if pa.types.is_list(typ):
        return pa.Array.from_buffers(typ, n, [bm, ZEROS.get(4 * (n + 1))], null_count=n,
                                     children=[pa.array([], typ.value_type)])
    if not (pa.types.is_integer(typ) or pa.types.is_floating(typ)):
        return pa.nulls(n, typ)         # booleans, structs...: rare, and small
    width = typ.bit_width // 8
    return pa.Array.from_buffers(typ, n, [bm, ZEROS.get(width * n)], null_count=n)


def fixed_array(values: np.ndarray, typ: pa.DataType, nf: np.ndarray | None = None, k: int = 0,
                nf_min: int = 255) -> pa.Array:
    """Arrow array over ``values`` (zero-copy) with validity nf >= k."""
    n = int(values.shape[0])
    if nf is None or nf_min >= k:
        return pa.Array.from_buffers(typ, n, [None, pa.py_buffer(values)], null_count=0)
    bm, nulls = _bitmap_ge(nf, k)
    if nulls == n:
        return null_array(typ, n)
    return pa.Array.from_buffers(typ, n, [pa.py_buffer(bm), pa.py_buffer(values)], null_count=nulls)


def nullable_int(values: np.ndarray, typ: pa.DataType) -> pa.Array:
    """Integers with negative = null."""
    v = np.ascontiguousarray(values)
    n = int(v.shape[0])
    bm, nulls = _bitmap_nonneg(v)
    data = v.astype(typ.to_pandas_dtype(), copy=False)
    return pa.Array.from_buffers(typ, n, [pa.py_buffer(bm) if nulls else None, pa.py_buffer(data)],
                                 null_count=nulls)
