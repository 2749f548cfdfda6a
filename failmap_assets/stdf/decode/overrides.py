"""What the specialised MPR and FTR kernels share: the growing per-test state (test number
hash, first record, default values), the kernels' sparse override list turned into the
default-data columns, Arrow lists and text / bytes columns over buffers a kernel wrote,
the element copies (nibbles, byte order) and the record batches.

A kernel never reallocates (that would put reference counting in its loop): when the test
arrays or the hash are full it returns a status and ``Tests.grow`` makes room. For the same
reason the helpers a kernel calls once per record with arrays (``_test_of``, ``_put_spans``,
``_nibbles``, ``_copy_elements``) are inlined into it (``inline="always"``): as calls they
kept their reference counting and blocked LLVM's optimisation across them (FTR kernel on
20 MB tiles: spreadsheet14 238 -> 188 ns per record, d10_1 157 -> 114, bcdm 417 -> 351).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from failmap_assets.kernels.jit import inlined
from .. import records as R
from .arrow import _bitmap_ge, null_array
from .columns import _numeric_from_int64, column
from .fields import DN_MASK
from .primitives import _byte
from .ptr import _grow1, _grow2, _hash_slot, _rehash
from .strings import string_array, text_array

GROW_TESTS, GROW_HASH = 1, 2     # kernel status: make room and call again


@inlined
def _test_of(hkeys, hvals, tn, nt):
    """(test index, is new) of test number ``tn``; a new test gets index ``nt`` (hash updated)."""
    s = _hash_slot(hkeys, tn)
    if hkeys[s] == tn:
        return hvals[s], False
    hkeys[s] = tn
    hvals[s] = nt
    return nt, True


class Tests:
    """Per-test state of one record kind across a file's chunks (tests are per file): ``nd``
    default-data fields, ``na`` arrays stored once per test (``same_arrays.py``)."""

    def __init__(self, nd: int, na: int = 0, cap: int = 256):
        self.nt = 0
        self.hkeys = np.full(1024, -2, np.int64)
        self.hvals = np.zeros(1024, np.int64)
        # key, first (position within the kind), count, OPT_FLAG (-1 none), TEST_TXT start, length
        self.t = [np.empty(cap, np.int64) for _ in range(6)]
        self.dv = np.empty((cap, nd), np.int64)
        self.da = np.empty((cap, nd), np.int64)
        # the first record's arrays: data start in the buffer, element count (-1 missing)
        self.av = np.empty((cap, na), np.int64)
        self.an = np.empty((cap, na), np.int64)

    def grow(self, status: int) -> None:
        if status == GROW_TESTS:
            cap = self.t[0].shape[0] * 4
            self.t = [_grow1(x, cap) for x in self.t]
            self.dv, self.da = _grow2(self.dv, cap), _grow2(self.da, cap)
            self.av, self.an = _grow2(self.av, cap), _grow2(self.an, cap)
        elif status == GROW_HASH:
            self.hkeys, self.hvals = _rehash(self.hkeys, self.hvals)
        else:
            raise ValueError(f"unknown kernel status {status}")

    def arrays(self) -> dict:
        nt = self.nt
        key, first, cnt, opt, txs, txl = (x[:nt] for x in self.t)
        return dict(key=key, first=first, count=cnt, opt=opt, txt_s=txs, txt_l=txl, dval=self.dv[:nt],
                    daux=self.da[:nt].astype(np.int32), arr_val=self.av[:nt], arr_aux=self.an[:nt])


def list_column(off: np.ndarray, values: np.ndarray, item: pa.DataType, nf: np.ndarray, k: int, nf_min: int
                ) -> pa.Array:
    """Arrow list over int32 offsets and flat values a kernel wrote; valid where nf >= k."""
    n = int(off.shape[0]) - 1
    vals = pa.Array.from_buffers(item, int(off[-1]), [None, pa.py_buffer(values[:int(off[-1])])], null_count=0)
    typ = pa.list_(item)
    if nf_min >= k:
        return pa.ListArray.from_buffers(typ, n, [None, pa.py_buffer(off)], null_count=0, children=[vals])
    bm, nulls = _bitmap_ge(nf, k)
    if nulls == n:
        return null_array(typ, n)
    return pa.ListArray.from_buffers(typ, n, [pa.py_buffer(bm), pa.py_buffer(off)], null_count=nulls,
                                     children=[vals])


def valid_list_column(off: np.ndarray, values: np.ndarray, item: pa.DataType, valid: np.ndarray) -> pa.Array:
    """Arrow list over int32 offsets, flat values and validity bits a kernel wrote (``_put_array``)."""
    n = int(off.shape[0]) - 1
    nulls = n - int(np.unpackbits(valid, bitorder="little", count=n).sum()) if n else 0
    typ = pa.list_(item)
    if n and nulls == n:
        return null_array(typ, n)
    vals = pa.Array.from_buffers(item, int(off[-1]), [None, pa.py_buffer(values[:int(off[-1])])], null_count=0)
    return pa.ListArray.from_buffers(typ, n, [pa.py_buffer(valid) if nulls else None, pa.py_buffer(off)],
                                     null_count=nulls, children=[vals])


def override_columns(buf, be, rec: R.RecordDef, fields: tuple[R.Field, ...], n: int, ov_row, ov_field, ov_val,
                     ov_len) -> dict[str, pa.Array]:
    """Full-length default-data columns from a kernel's sparse (row, field, value, aux) list:
    the same arrays as ``column`` over the batch kernels' dense override matrices."""
    cols = {}
    for k, f in enumerate(fields):
        sel = ov_field == k
        if not sel.any():
            cols[f.column] = null_array(f.arrow_type(), n)
            continue
        rows, vals, lens = ov_row[sel], ov_val[sel], ov_len[sel]
        if f.type in ("Cn", "Sn", "Bn", "Dn") and not f.is_array:
            ln = np.full(n, -1, dtype=np.int64)
            st = np.zeros(n, dtype=np.int64)
            ln[rows] = lens
            st[rows] = vals & DN_MASK if f.type == "Dn" else vals
            cols[f.column] = string_array(buf, st, ln, binary=f.type in ("Bn", "Dn"))
        elif f.is_array:
            v2 = np.zeros((n, 2), dtype=np.int64)
            a2 = np.full((n, 2), -1, dtype=np.int32)
            v2[rows, 0] = np.where(lens >= 0, lens, 0)
            a2[rows, 0] = 0
            v2[rows, 1] = vals
            a2[rows, 1] = lens
            fake = (R.Field("_CNT", "U2", ""), R.Field(f.name, f.type, f.desc, "_CNT"))
            cols[f.column] = column(buf, be, rec, 1, v2, a2, fake)
        else:
            arr = np.zeros(n, dtype=R.NUMPY_DTYPE[f.type])
            arr[rows] = _numeric_from_int64(vals, f.type)
            valid = np.zeros(n, dtype=bool)
            valid[rows] = lens >= 0
            # over the buffers: pa.array(arr, mask=~valid) costs ~5x more on a full-length column
            bm = np.packbits(valid, bitorder="little")
            nulls = n - int(np.count_nonzero(valid))
            cols[f.column] = pa.Array.from_buffers(f.arrow_type(), n, [pa.py_buffer(bm), pa.py_buffer(arr)],
                                                   null_count=nulls)
    return cols


BATCH_BYTES = 1 << 26


def chunk_bounds(lens: np.ndarray, max_records: int, max_bytes: int | None = None) -> list[tuple[int, int, int]]:
    """(first, end, bytes) of consecutive record batches of at most ``max_records`` records and
    ``max_bytes`` bytes (default ``BATCH_BYTES``: the kernels' int32 list and string offsets
    always fit, and their per-column buffers sized by the batch's bytes stay small)."""
    if max_bytes is None:
        max_bytes = BATCH_BYTES
    cum = np.zeros(len(lens) + 1, dtype=np.int64)
    np.cumsum(np.asarray(lens, dtype=np.int64) + 4, out=cum[1:])
    out = []
    c0, n = 0, len(lens)
    while c0 < n:
        lim = int(np.searchsorted(cum, cum[c0] + max_bytes, side="right")) - 1
        c1 = max(c0 + 1, min(n, c0 + max_records, lim))
        out.append((c0, c1, int(cum[c1] - cum[c0])))
        c0 = c1
    return out


@inlined
def _put_spans(buf, ss, sl, r, off, data, valid):
    """Row ``r`` of the kernels' text / bytes columns: the record's spans (start ``ss[k]``,
    length ``sl[k]``, -1 = null) copied into column k's Arrow buffers (int32 offsets, data,
    validity bits) while the record is in cache."""
    for k in range(ss.shape[0]):
        q = off[k, r]
        ln = sl[k]
        if ln >= 0:
            s = ss[k]
            for j in range(ln):
                data[k, q + j] = _byte(buf, s + j)
            q += ln
            valid[k, r >> 3] |= np.uint8(1 << (r & 7))
        off[k, r + 1] = q


class SpanColumns:
    """Arrow buffers for ``ns`` text / bytes columns of ``n`` rows whose data fits ``nbytes``
    each (a column's strings are parts of the records: at most the records' bytes)."""

    def __init__(self, ns: int, n: int, nbytes: int):
        self.n = n
        self.off = np.zeros((ns, n + 1), np.int32)
        self.data = np.empty((ns, nbytes + 1), np.uint8)     # pages past the last string untouched
        self.valid = np.zeros((ns, (n + 7) // 8), np.uint8)

    def array(self, k: int, binary: bool = False) -> pa.Array:
        """Column k: text as ``text_array`` (UTF-8, else Latin-1 per value), or binary."""
        off, data, valid = self.off[k], self.data[k, :int(self.off[k, -1])], self.valid[k]
        if not binary:
            return text_array(off, data, valid, self.n)
        nulls = self.n - int(np.unpackbits(valid, bitorder="little", count=self.n).sum()) if self.n else 0
        return pa.Array.from_buffers(pa.binary(), self.n, [pa.py_buffer(valid) if nulls else None,
                                                           pa.py_buffer(off), pa.py_buffer(data)], null_count=nulls)


@inlined
def _nibbles(buf, p, k, out, o):
    """k N1 values (low nibble first) from buf[p:] to out[o:]."""
    for j in range(k >> 1):
        b = _byte(buf, p + j)
        out[o + 2 * j] = b & 0x0F
        out[o + 2 * j + 1] = b >> 4
    if k & 1:
        out[o + k - 1] = _byte(buf, p + (k >> 1)) & 0x0F


@inlined
def _put_array(buf, s, n, width, swap, same, out, off, valid, r):
    """Row ``r`` of a kernel's list column (offsets ``off``, validity bits ``valid``): the
    record's ``n`` elements at ``s`` (n < 0: missing, null) copied into ``out`` (element bytes,
    native order; ``width`` 0: nibbles) from element ``off[r]`` on, unless ``same`` (equal to
    its test's first record's: null)."""
    o = off[r]
    if n >= 0 and not same:
        if width == 0:
            _nibbles(buf, s, n, out, o)
        else:
            _copy_elements(buf, s, width * n, swap, out, width * o)
        o += n
        valid[r >> 3] |= np.uint8(1 << (r & 7))
    off[r + 1] = o


@inlined
def _copy_elements(buf, p, nbytes, swap, out, o):
    """Array element bytes from buf[p:] to out[o:] (bytes), in native (little-endian) order:
    ``swap`` = element width - 1 for a big-endian file (index XOR reverses each element), else 0."""
    if swap == 0 and nbytes >= 32:       # long runs: one memcpy; short ones: the loop (no call)
        out[o:o + nbytes] = buf[p:p + nbytes]
    else:
        for q in range(nbytes):
            out[o + q] = _byte(buf, p + (q ^ swap))
