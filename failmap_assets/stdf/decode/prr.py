"""The specialised PRR decoder: files of many small parts are mostly PIR / PRR pairs, and the
table-driven interpreter spends its time dispatching on PRR's twelve field types and
filling two int64 / int32 matrices (144 bytes per record) that are then converted.

``prr_columns`` reads each PRR once, straight into typed column arrays (the fixed fields,
how many fields each record holds, the spans of its three strings) and returns the same
Arrow arrays as ``columns(interpret(...))`` for PRR, with the same truncation rule: a field
that does not fit in REC_LEN is missing, and so is every later field
(tests/stdf/test_kernels.py holds them equal on every real file and on random bodies of
every length).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from failmap_assets.kernels.jit import kernel
from .. import records as R
from .arrow import fixed_array
from .primitives import _u2, _u4
from .strings import string_array

# PRR layout this kernel is written for (records.py order); checked at import.
PRR_FIELDS = (("HEAD_NUM", "U1"), ("SITE_NUM", "U1"), ("PART_FLG", "B1"), ("NUM_TEST", "U2"), ("HARD_BIN", "U2"),
              ("SOFT_BIN", "U2"), ("X_COORD", "I2"), ("Y_COORD", "I2"), ("TEST_T", "U4"), ("PART_ID", "Cn"),
              ("PART_TXT", "Cn"), ("PART_FIX", "Bn"))
_FIXED_END = np.array([1, 2, 3, 5, 7, 9, 11, 13, 17], dtype=np.int64)   # end offset of each fixed field


@kernel
def _prr_kernel(buf, offs, lens, be, fixed_end, head, site, flg, ntest, hbin, sbin, x, y, tt, nf, s_start, s_len,
                used):
    """One pass over the PRRs: fixed fields (0 where missing), ``nf`` = fields present,
    string spans (length -1 where missing), body bytes used."""
    n = offs.shape[0]
    nbuf = buf.shape[0]
    for r in range(n):
        start = offs[r] + 4
        ln = np.int64(lens[r])
        if offs[r] < 0 or ln < 0 or start + ln > nbuf:
            ln = 0                     # not from a valid index: nothing is read
        end = start + ln
        k = 0
        while k < 9 and fixed_end[k] <= ln:
            k += 1
        p = start
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
        trunc = k < 9
        for i in range(3):
            s_start[i, r] = 0
            s_len[i, r] = -1
            if trunc or pos + 1 > end or pos + 1 + np.int64(buf[pos]) > end:
                trunc = True
                continue
            s_start[i, r] = pos + 1
            s_len[i, r] = np.int64(buf[pos])
            pos += 1 + np.int64(buf[pos])
            k += 1
        nf[r] = k
        used[r] = pos - start


def prr_columns(buf: np.ndarray, offs: np.ndarray, lens: np.ndarray, big_endian: bool
                ) -> tuple[dict[str, pa.Array], np.ndarray]:
    """({column: Arrow array} as ``columns(interpret(..., PRR))`` gives them, bytes used per record)."""
    n = int(offs.shape[0])
    typed = [np.empty(n, dtype=d) for d in (np.uint8, np.uint8, np.uint8, np.uint16, np.uint16, np.uint16,
                                             np.int16, np.int16, np.uint32)]
    nf = np.empty(n, dtype=np.uint8)
    s_start = np.empty((3, n), dtype=np.int64)
    s_len = np.empty((3, n), dtype=np.int64)
    used = np.empty(n, dtype=np.int64)
    if n:
        _prr_kernel(buf, np.ascontiguousarray(offs, dtype=np.int64), np.ascontiguousarray(lens, dtype=np.int64),
                    big_endian, _FIXED_END, *typed, nf, s_start, s_len, used)
    nf_min = int(nf.min()) if n else 255
    rec = R.BY_NAME["PRR"]
    cols: dict[str, pa.Array] = {}
    for k, f in enumerate(rec.fields[:9]):
        cols[f.column] = fixed_array(typed[k], f.arrow_type(), nf, k + 1, nf_min)
    for i, f in enumerate(rec.fields[9:]):
        cols[f.column] = string_array(buf, s_start[i], s_len[i], binary=(f.type == "Bn"))
    return cols, used


assert tuple((f.name, f.type) for f in R.BY_NAME["PRR"].fields) == PRR_FIELDS, "records.py PRR layout changed"
