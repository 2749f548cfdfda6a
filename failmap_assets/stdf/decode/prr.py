"""The specialised PRR decoder: files of many small parts are mostly PIR / PRR pairs, and the
table-driven interpreter spends its time dispatching on PRR's twelve field types and
filling two int64 / int32 matrices (144 bytes per record) that are then converted.

``prr_columns`` reads each PRR once, straight into typed column arrays (the fixed fields,
how many fields each record holds) and copies its three strings into packed per-column
buffers while the record is in cache: gathering them in separate passes afterwards cost
more than the decoding (each pass waits on memory again for every record).

It returns the same Arrow arrays as ``columns(interpret(...))`` for PRR, with the same
truncation rule: a field that does not fit in REC_LEN is missing, and so is every later
field (tests/stdf/test_kernels.py holds them equal on every real file and on random
bodies of every length).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from failmap_assets.kernels.jit import inlined, kernel
from failmap_assets.kernels.memcpy import put_bytes
from .. import records as R
from .arrow import _bitmap_ge, fixed_array
from .primitives import AHEAD, _far_apart, _touch, _u2, _u4
from .strings import string_array, text_array

# PRR layout this kernel is written for (records.py order); checked at import.
PRR_FIELDS = (("HEAD_NUM", "U1"), ("SITE_NUM", "U1"), ("PART_FLG", "B1"), ("NUM_TEST", "U2"), ("HARD_BIN", "U2"),
              ("SOFT_BIN", "U2"), ("X_COORD", "I2"), ("Y_COORD", "I2"), ("TEST_T", "U4"), ("PART_ID", "Cn"),
              ("PART_TXT", "Cn"), ("PART_FIX", "Bn"))
#: buffers from this size on get int64 string offsets; below it int32, which is what Arrow's
#: string arrays take (the strings are copied from the buffer, so they hold fewer bytes than
#: it): no conversion of three million offsets. ``failmap warm`` lowers it to compile the
#: int64 variant on a small file.
WIDE_OFFSETS_FROM = 2**31
_FIXED_END = np.array([1, 2, 3, 5, 7, 9, 11, 13, 17], dtype=np.int64)   # end offset of each fixed field
_FIXED_DTYPES = (np.uint8, np.uint8, np.uint8, np.uint16, np.uint16, np.uint16, np.int16, np.int16, np.uint32)


@inlined
def _string(buf, pos, end, trunc, text, o):
    """Copy the Cn / Bn at ``pos`` to text[o:] unless missing: (present, its length)."""
    if trunc or pos + 1 > end or pos + 1 + np.int64(buf[pos]) > end:
        return False, 0
    m = np.int64(buf[pos])
    put_bytes(text, o, buf, pos + 1, pos + 1 + m)     # memcpy: a byte loop costs ~1 ns a byte
    return True, m


@kernel
def _prr_kernel(buf, offs, lens, be, fixed_end, head, site, flg, ntest, hbin, sbin, x, y, tt, nf, text_off, used):
    """One pass over the PRRs: fixed fields (0 where missing), ``nf`` = fields present, the
    three strings appended to rows 0..2 of the returned text buffer (``text_off[i]``: offsets;
    copied while the record is in cache), body bytes used."""
    n = min(offs.shape[0], lens.shape[0], nf.shape[0], used.shape[0], text_off.shape[1] - 1)
    nbuf = buf.shape[0]
    cap = 0
    held = 0
    for r in range(n):          # room: a string is at most 255 bytes and fits after the 17 fixed + its length byte
        if offs[r] >= 0 and lens[r] > 18 and offs[r] + 4 + lens[r] <= nbuf:
            cap += min(np.int64(lens[r]) - 18, 255)
        held += 4 + np.int64(lens[r])
    text = np.empty((3, cap), dtype=np.uint8)
    if text_off.shape[1] > 0:
        text_off[:, 0] = 0
    sink = np.uint8(0)
    # records far apart (other records between them) are fetched a block ahead: each would
    # otherwise wait on its own cache miss; PRRs next to each other the prefetcher streams
    spread = n > 1 and _far_apart(offs[n - 1] - offs[0], held)
    for b0 in range(0, n, AHEAD):
        b1 = min(b0 + AHEAD, n)
        if spread:
            for r in range(b0, b1):
                sink ^= _touch(buf, offs[r], 4 + np.int64(lens[r]), nbuf)
        for r in range(b0, b1):
            start = offs[r] + 4
            ln = np.int64(lens[r])
            if offs[r] < 0 or ln < 0 or start + ln > nbuf:
                ln = 0                     # not from a valid index: nothing is read
            end = start + ln
            p = start
            if ln >= 17:                   # every fixed field present (the branch-free common case)
                k = 9
                head[r] = buf[p]
                site[r] = buf[p + 1]
                flg[r] = buf[p + 2]
                ntest[r] = _u2(buf, p + 3, be)
                hbin[r] = _u2(buf, p + 5, be)
                sbin[r] = _u2(buf, p + 7, be)
                x[r] = np.int16(np.uint16(_u2(buf, p + 9, be)))
                y[r] = np.int16(np.uint16(_u2(buf, p + 11, be)))
                tt[r] = np.uint32(_u4(buf, p + 13, be))
            else:
                k = 0
                while k < 9 and fixed_end[k] <= ln:
                    k += 1
                head[r] = buf[p] if k > 0 else 0
                site[r] = buf[p + 1] if k > 1 else 0
                flg[r] = buf[p + 2] if k > 2 else 0
                ntest[r] = _u2(buf, p + 3, be) if k > 3 else 0
                hbin[r] = _u2(buf, p + 5, be) if k > 4 else 0
                sbin[r] = _u2(buf, p + 7, be) if k > 5 else 0
                x[r] = np.int16(np.uint16(_u2(buf, p + 9, be))) if k > 6 else 0
                y[r] = np.int16(np.uint16(_u2(buf, p + 11, be))) if k > 7 else 0
                tt[r] = np.uint32(_u4(buf, p + 13, be)) if k > 8 else 0
            pos = start + (fixed_end[k - 1] if k > 0 else 0)
            ok = k >= 9                    # PART_ID, PART_TXT, PART_FIX: each only after all before it
            for i in range(3):
                o = np.int64(text_off[i, r])
                ok, m = _string(buf, pos, end, not ok, text[i], o)
                if ok:
                    o += m
                    pos += 1 + m
                    k += 1
                text_off[i, r + 1] = o
            nf[r] = k
            used[r] = pos - start
    if n and sink == 255 and used[0] < 0:      # never true: keeps the touches' loads
        text_off[0, 0] = 0
    return text


def _text_column(f: R.Field, i: int, nf: np.ndarray, off: np.ndarray, data: np.ndarray, nf_min: int) -> pa.Array:
    """String i of the PRRs (valid where the record holds it) over the packed text, as
    ``columns`` builds it: text as valid UTF-8 (else Latin-1), PART_FIX as binary.
    ``nf_min``: the fewest fields of a record (every record holds the string: no bitmap)."""
    n = int(nf.shape[0])
    if off[-1] >= 2**31:          # int32 offsets cannot hold it: the general builder (large types)
        return string_array(data, off[:-1], np.where(nf > 9 + i, np.diff(off), -1), binary=(f.type == "Bn"))
    valid, nulls = (None, 0) if nf_min >= 10 + i else _bitmap_ge(nf, 10 + i)
    off32 = off if off.dtype == np.int32 else off.astype(np.int32)
    if f.type != "Bn":
        return text_array(off32, data, valid, n, nulls)
    return pa.Array.from_buffers(pa.binary(), n, [pa.py_buffer(valid) if nulls else None, pa.py_buffer(off32),
                                                  pa.py_buffer(data)], null_count=nulls)


def prr_columns(buf: np.ndarray, offs: np.ndarray, lens: np.ndarray, big_endian: bool
                ) -> tuple[dict[str, pa.Array], np.ndarray]:
    """({column: Arrow array} as ``columns(interpret(..., PRR))`` gives them, bytes used per record)."""
    n = int(min(offs.shape[0], lens.shape[0]))
    typed = [np.empty(n, dtype=d) for d in _FIXED_DTYPES]
    nf = np.empty(n, dtype=np.uint8)
    text_off = np.empty((3, n + 1), dtype=np.int64 if buf.shape[0] >= WIDE_OFFSETS_FROM else np.int32)
    used = np.empty(n, dtype=np.int64)
    text = _prr_kernel(buf, np.ascontiguousarray(offs[:n], dtype=np.int64),
                       np.ascontiguousarray(lens[:n], dtype=np.int64), big_endian, _FIXED_END, *typed, nf, text_off,
                       used)
    nf_min = int(nf.min()) if n else 255
    rec = R.BY_NAME["PRR"]
    cols: dict[str, pa.Array] = {}
    for k, f in enumerate(rec.fields[:9]):
        cols[f.column] = fixed_array(typed[k], f.arrow_type(), nf, k + 1, nf_min)
    for i, f in enumerate(rec.fields[9:]):
        off = text_off[i]
        cols[f.column] = _text_column(f, i, nf, off, text[i][:int(off[-1])], nf_min)
    return cols, used


assert tuple((f.name, f.type) for f in R.BY_NAME["PRR"].fields) == PRR_FIELDS, "records.py PRR layout changed"
