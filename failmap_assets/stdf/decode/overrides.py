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

from failmap_assets.kernels.jit import inlined, kernel
from failmap_assets.kernels.memcpy import put_bytes
from .. import records as R
from .arrow import _bitmap_ge, null_array
from .fields import DN_MASK
from .primitives import _byte
from .ptr import _grow1, _grow2, _hash_slot, _rehash
from .strings import _put_text, _utf8_len, _valid_count, text_array

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
    nulls = n - _valid_count(valid, n)
    typ = pa.list_(item)
    if n and nulls == n:
        return null_array(typ, n)
    vals = pa.Array.from_buffers(item, int(off[-1]), [None, pa.py_buffer(values[:int(off[-1])])], null_count=0)
    return pa.ListArray.from_buffers(typ, n, [pa.py_buffer(valid) if nulls else None, pa.py_buffer(off)],
                                     null_count=nulls, children=[vals])


# How _override_arrays writes a default-data field: a number (its low ``width`` bytes), text
# (UTF-8, else Latin-1), bytes, or a list of ``width``-byte elements (byte order swapped by
# index XOR ``swap``, the width - 1 of a big-endian file).
OV_NUMBER, OV_TEXT, OV_BYTES, OV_LIST = 0, 1, 2, 3
_OV_ALIGN = 64                  # each field's buffers start on a cache line (64 values or bytes)
_WIDTHS = {1: 0, 2: 1, 4: 2, 8: 3}     # number width -> its values array
_LIST_ITEMS = ("U1", "U2", "U4", "U8", "I1", "I2", "I4", "I8", "R4", "R8")     # elements: their bytes
_OV_ERRORS = {1: "row outside the batch", 2: "field outside the default-data fields",
              3: "rows of a field not increasing", 4: "value outside the file's bytes",
              5: "override arrays of different lengths", 6: "bad field descriptions or row count"}


@inlined
def _fill_offsets(off32, off64, big, j, r0, r1, q):
    """Offsets r0..r1-1 of variable-length column j set to q (rows that add no data), in the
    int64 offsets when ``big``, else the int32 ones."""
    for rr in range(r0, r1):
        if big:
            off64[j, rr] = q
        else:
            off32[j, rr] = q


@kernel
def _override_arrays(buf, n, ov_row, ov_field, ov_val, ov_len, kind, width, swap, dn):
    """The default-data columns' Arrow buffers in one pass over a kernel's sparse override list
    (row, field k, value, length: -1 null; a text's or list's value is its start in ``buf``,
    under DN_MASK where ``dn[k]``), the rows of a field strictly increasing.

    Per field k with overrides, ``slot[k]`` (-1: none) indexes its validity bits
    ``bits[slot]`` (a row without an override is null) and, for a number, its n values start
    at ``vbase[k]`` in the array of its width among (v1, v2, v4, v8) (the value's low bytes;
    zero where no override); for text, bytes or a list, its offsets are ``off32[slot]`` (or
    ``off64`` when some field's data does not fit int32 offsets; a list's offsets count
    elements) over its ``total[k]`` bytes at ``dbase[k]`` in ``data``. Everything is checked
    before anything is written: status 0, else (status, index of the first bad override or
    -1) and no columns."""
    nf = kind.shape[0]
    nov = ov_row.shape[0]
    nbuf = buf.shape[0]
    nbm = (n + 7) // 8
    status = 0
    bad = -1
    if ov_field.shape[0] != nov or ov_val.shape[0] != nov or ov_len.shape[0] != nov:
        status = 5
    if width.shape[0] != nf or swap.shape[0] != nf or dn.shape[0] != nf or n < 0:
        status = 6
    for k in range(nf if status == 0 else 0):
        w = width[k]
        if not (w == 1 or w == 2 or w == 4 or w == 8) or swap[k] < 0 or swap[k] >= w:
            status = 6
    cnt = np.zeros(nf, np.int64)
    nvalid = np.zeros(nf, np.int64)
    total = np.zeros(nf, np.int64)         # data bytes (text: once made UTF-8)
    last = np.full(nf, -1, np.int64)
    utf8 = np.ones(nov, np.bool_)
    for i in range(nov if status == 0 else 0):
        r = ov_row[i]
        k = ov_field[i]
        ln = ov_len[i]
        if r < 0 or r >= n:
            status = 1
        elif k < 0 or k >= nf:
            status = 2
        elif r <= last[k]:
            status = 3
        elif ln >= 0 and kind[k] != OV_NUMBER:
            s = ov_val[i] & DN_MASK if dn[k] else ov_val[i]
            nb = ln * width[k] if ln <= nbuf else nbuf + 1
            if s < 0 or nb > nbuf or s > nbuf - nb:
                status = 4
            elif kind[k] == OV_TEXT and ln > 0:
                out_len, ok = _utf8_len(buf, s, ln)
                utf8[i] = ok
                total[k] += out_len
            else:
                total[k] += nb
        if status != 0:
            bad = i
            break
        last[k] = r
        cnt[k] += 1
        if ln >= 0:
            nvalid[k] += 1
    # one slot per field with overrides; numbers and data on aligned bases
    slot = np.full(nf, -1, np.int64)
    vbase = np.zeros(nf, np.int64)
    dbase = np.zeros(nf, np.int64)
    vsize = np.zeros(9, np.int64)           # values per width
    nbits, nvar, dsize = 0, 0, 0
    big = False
    for k in range(nf if status == 0 else 0):
        if cnt[k] == 0:
            continue
        nbits += 1
        if kind[k] == OV_NUMBER:
            vbase[k] = vsize[width[k]]
            vsize[width[k]] += (n + _OV_ALIGN - 1) // _OV_ALIGN * _OV_ALIGN
        else:
            slot[k] = nvar
            nvar += 1
            dbase[k] = dsize
            dsize += (total[k] + _OV_ALIGN - 1) // _OV_ALIGN * _OV_ALIGN
            if total[k] // (width[k] if kind[k] == OV_LIST else 1) >= 2147483648:
                big = True
    v1 = np.zeros(vsize[1], np.uint8)       # one typed store per value
    v2 = np.zeros(vsize[2], np.uint16)
    v4 = np.zeros(vsize[4], np.uint32)
    v8 = np.zeros(vsize[8], np.uint64)
    data = np.empty(dsize, np.uint8)
    bits = np.zeros((nbits, nbm), np.uint8)
    off32 = np.empty((0 if big else nvar, n + 1), np.int32)
    off64 = np.empty((nvar if big else 0, n + 1), np.int64)
    # bits slots: the variable-length fields first (their ``slot``), then the numbers
    b = nvar
    for k in range(nf if status == 0 else 0):
        if cnt[k] and kind[k] == OV_NUMBER:
            slot[k] = b
            b += 1
    pos = np.zeros(nf, np.int64)           # a variable-length field's next offset
    nxt = np.zeros(nf, np.int64)           # ... and its first row without one
    for i in range(nov if status == 0 else 0):
        r = ov_row[i]
        k = ov_field[i]
        ln = ov_len[i]
        j = slot[k]
        if ln >= 0:
            bits[j, r >> 3] |= np.uint8(1 << (r & 7))
        v = ov_val[i]
        if kind[k] == OV_NUMBER:
            w = width[k]
            o = vbase[k] + r
            if w == 4:
                v4[o] = np.uint32(v & 0xFFFFFFFF)
            elif w == 1:
                v1[o] = np.uint8(v & 0xFF)
            elif w == 8:
                v8[o] = np.uint64(v)
            else:
                v2[o] = np.uint16(v & 0xFFFF)
            continue
        q = pos[k]
        _fill_offsets(off32, off64, big, j, nxt[k], r + 1, q)     # rows since the last override: empty
        if ln >= 0:
            s = v & DN_MASK if dn[k] else v
            o = dbase[k] + q * (width[k] if kind[k] == OV_LIST else 1)
            if kind[k] == OV_TEXT:
                q += _put_text(buf, s, ln, utf8[i], data, o) - o
            elif kind[k] == OV_LIST:
                _copy_elements(buf, s, ln * width[k], swap[k], data, o)
                q += ln
            else:
                q += put_bytes(data, o, buf, s, s + ln) - o
        pos[k] = q
        nxt[k] = r + 1
    for k in range(nf if status == 0 else 0):
        if cnt[k] and kind[k] != OV_NUMBER:
            _fill_offsets(off32, off64, big, slot[k], nxt[k], n + 1, pos[k])
    return status, bad, slot, n - nvalid, (v1, v2, v4, v8), vbase, bits, off32, off64, data, dbase, total


_CODES: dict[tuple[int, bool], tuple] = {}


def _field_codes(fields: tuple[R.Field, ...], be: bool) -> tuple[np.ndarray, ...]:
    """(kind, width, swap, dn) per default-data field for ``_override_arrays``, made once per
    field tuple and byte order."""
    known = _CODES.get((id(fields), bool(be)))
    if known is not None and known[0] is fields:
        return known[1]
    kind, width, swap, dn = (np.zeros(len(fields), np.int64) for _ in range(4))
    for k, f in enumerate(fields):
        if f.is_array and f.type in _LIST_ITEMS:
            kind[k], width[k] = OV_LIST, R.FIXED_SIZE[f.type]
            swap[k] = width[k] - 1 if be else 0
        elif f.is_array:
            raise ValueError(f"default-data field {f.name}: no override column for arrays of {f.type}")
        elif f.type in ("Cn", "Sn"):
            kind[k], width[k] = OV_TEXT, 1
        elif f.type in ("Bn", "Dn"):
            kind[k], width[k], dn[k] = OV_BYTES, 1, f.type == "Dn"
        elif f.type in R.NUMPY_DTYPE:
            kind[k], width[k] = OV_NUMBER, R.NUMPY_DTYPE[f.type].itemsize
        else:
            raise ValueError(f"default-data field {f.name}: no override column for {f.type}")
    if len(_CODES) > 64:
        _CODES.clear()
    codes = (kind, width, swap, dn)
    _CODES[(id(fields), bool(be))] = (fields, codes)
    return codes


def override_columns(buf, be, fields: tuple[R.Field, ...], n: int, ov_row, ov_field, ov_val, ov_len
                     ) -> dict[str, pa.Array]:
    """Full-length default-data columns (one per field of ``fields``, a lasting tuple) from a
    kernel's sparse (row, field, value, length) list, rows of a field increasing: where a row
    has no override the value is null; a field without overrides is a null column."""
    kind, width, swap, dn = _field_codes(fields, be)
    (status, bad, slot, nulls, vals, vbase, bits, off32, off64, data, dbase,
     total) = _override_arrays(buf, n, ov_row, ov_field, ov_val, ov_len, kind, width, swap, dn)
    if status:
        raise ValueError(f"override {bad} of {len(ov_row)}: {_OV_ERRORS[status]}")
    cols = {}
    for k, f in enumerate(fields):
        j, typ, nk = int(slot[k]), f.arrow_type(), int(nulls[k])
        if j < 0:
            cols[f.column] = null_array(typ, n)
            continue
        bm = pa.py_buffer(bits[j])
        if kind[k] == OV_NUMBER:
            b0, v = int(vbase[k]), vals[_WIDTHS[int(width[k])]]
            cols[f.column] = pa.Array.from_buffers(typ, n, [bm, pa.py_buffer(v[b0:b0 + n])], null_count=nk)
            continue
        off = off32[j] if off32.shape[0] else off64[j]
        b0 = int(dbase[k])
        d = pa.py_buffer(data[b0:b0 + int(total[k])])
        bm = bm if nk else None
        if kind[k] == OV_LIST:
            if off.dtype != np.int32:
                if off[-1] >= 2**31:
                    raise ValueError(f"{f.name}: {int(off[-1])} list elements do not fit int32 offsets")
                off = off.astype(np.int32)
            item = typ.value_type
            values = pa.Array.from_buffers(item, int(off[-1]), [None, d], null_count=0)
            cols[f.column] = pa.ListArray.from_buffers(typ, n, [bm, pa.py_buffer(off)], null_count=nk,
                                                       children=[values])
            continue
        if off.dtype != np.int32 and off[-1] < 2**31:
            off = off.astype(np.int32)
        elif off.dtype != np.int32:
            typ = pa.large_string() if kind[k] == OV_TEXT else pa.large_binary()
        cols[f.column] = pa.Array.from_buffers(typ, n, [bm, pa.py_buffer(off), d], null_count=nk)
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
        nulls = self.n - _valid_count(valid, self.n)
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
