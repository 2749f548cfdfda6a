"""The specialised PRR decoder: files of many small parts are mostly PIR / PRR pairs, and the
table-driven interpreter spends most of its time dispatching on PRR's twelve field types.

``prr_interpret`` gives exactly what ``fields.interpret`` gives for PRR (same ``val`` /
``aux`` / ``used``; tests/stdf/test_kernels.py holds them equal on every real file and on
random bodies of every length): the 17-byte fixed prefix is read with constant offsets,
the three 1-byte-length strings with the interpreter's truncation rule. Records shorter
than the prefix (truncated PRRs) go through the interpreter.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .. import records as R
from .fields import _ORDER, interpret
from .primitives import _u2, _u4

# PRR layout this kernel is written for (records.py order); checked at import.
PRR_FIELDS = (("HEAD_NUM", "U1"), ("SITE_NUM", "U1"), ("PART_FLG", "B1"), ("NUM_TEST", "U2"), ("HARD_BIN", "U2"),
              ("SOFT_BIN", "U2"), ("X_COORD", "I2"), ("Y_COORD", "I2"), ("TEST_T", "U4"), ("PART_ID", "Cn"),
              ("PART_TXT", "Cn"), ("PART_FIX", "Bn"))
PREFIX = 17     # bytes of the fixed fields


@njit(cache=True, nogil=True)
def _prr_kernel(buf, offs, lens, be, val, aux, used):
    """Decode PRRs; a record shorter than the fixed prefix (or past the buffer) gets
    used = -1 and is left to the interpreter. Returns how many were left."""
    n = offs.shape[0]
    nbuf = buf.shape[0]
    left = 0
    for r in range(n):
        start = offs[r] + 4
        end = start + lens[r]
        if lens[r] < PREFIX or start < 4 or end > nbuf:
            used[r] = -1
            left += 1
            continue
        p = start
        val[r, 0] = buf[p]
        val[r, 1] = buf[p + 1]
        val[r, 2] = buf[p + 2]
        val[r, 3] = _u2(buf, p + 3, be)
        val[r, 4] = _u2(buf, p + 5, be)
        val[r, 5] = _u2(buf, p + 7, be)
        x = _u2(buf, p + 9, be)
        val[r, 6] = x - 65536 if x >= 32768 else x
        x = _u2(buf, p + 11, be)
        val[r, 7] = x - 65536 if x >= 32768 else x
        val[r, 8] = _u4(buf, p + 13, be)
        for i in range(9):
            aux[r, i] = 0
        pos = start + PREFIX
        trunc = False
        for i in range(9, 12):
            # the interpreter's rule: a string whose length byte or bytes do not fit is
            # missing, and so is every later field
            if trunc or pos + 1 > end or pos + 1 + np.int64(buf[pos]) > end:
                trunc = True
                val[r, i] = 0
                aux[r, i] = -1
                continue
            ln = np.int64(buf[pos])
            val[r, i] = pos + 1
            aux[r, i] = ln
            pos += 1 + ln
        used[r] = pos - start
    return left


def prr_interpret(buf: np.ndarray, offs: np.ndarray, lens: np.ndarray, big_endian: bool
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``fields.interpret(buf, offs, lens, big_endian, PRR)``, faster."""
    rec = R.BY_NAME["PRR"]
    n = int(offs.shape[0])
    val = np.empty((n, len(PRR_FIELDS)), dtype=np.int64, order=_ORDER)
    aux = np.empty((n, len(PRR_FIELDS)), dtype=np.int32, order=_ORDER)
    used = np.empty(n, dtype=np.int64)
    offs = np.ascontiguousarray(offs, dtype=np.int64)
    lens = np.ascontiguousarray(lens, dtype=np.int64)
    if n and _prr_kernel(buf, offs, lens, big_endian, val, aux, used):
        short = np.flatnonzero(used < 0)
        v, a, u = interpret(buf, offs[short], lens[short], big_endian, rec)
        val[short], aux[short], used[short] = v, a, u
    return val, aux, used


assert tuple((f.name, f.type) for f in R.BY_NAME["PRR"].fields) == PRR_FIELDS, "records.py PRR layout changed"
