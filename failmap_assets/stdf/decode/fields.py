"""The table-driven field interpreter: one Numba kernel decodes every record type.

``interpret`` runs a record type's compiled field program (``records.program``) over
a batch of records and returns two matrices, one row per record and one column per
field: ``val`` holds the value (integers sign-extended, floats as their raw bits,
strings / arrays / bit fields as the byte offset of their data) and ``aux`` holds -1
when the field is missing (past REC_LEN), else 0 for scalars, the length for strings
and the element count for arrays. Truncation is monotonic: once a field does not fit,
it and every later field are missing. ``columns.py`` turns these matrices into Arrow.
"""

from __future__ import annotations

import numpy as np

from failmap_assets.kernels.jit import kernel
from .. import records as R
from ..records import T_BN, T_CF, T_CN, T_DN, T_I1, T_I2, T_I4, T_I8, T_N1, T_SN, T_UF, T_VN
from .primitives import _rd_int, _rd_uint, _vn_size

DN_SHIFT = 40           # Dn: val = data offset | bit count << 40
DN_MASK = (1 << DN_SHIFT) - 1
_ORDER = "F"


@kernel
def _interp(buf, offs, lens, be, ftype, fcount, fwidth, fsize, signed, val, aux, used):
    nrec = offs.shape[0]
    nf = ftype.shape[0]
    for r in range(nrec):
        start = offs[r] + 4
        pos = start
        end = start + lens[r]
        trunc = False
        for i in range(nf):
            if trunc:
                val[r, i] = 0
                aux[r, i] = -1
                continue
            t = ftype[i]
            ci = fcount[i]
            if ci >= 0:
                # ---------------------------------------------------- array
                if aux[r, ci] < 0:
                    trunc = True
                    val[r, i] = 0
                    aux[r, i] = -1
                    continue
                k = val[r, ci]
                if k < 0:
                    k = 0
                nbytes = np.int64(-1)
                if fsize[i] > 0:
                    nbytes = k * fsize[i]
                elif t == T_N1:
                    nbytes = (k + 1) // 2
                elif t == T_UF or t == T_CF:
                    wi = fwidth[i]
                    w = np.int64(-1)
                    if aux[r, wi] >= 0:
                        w = val[r, wi]
                    if t == T_UF:
                        if w == 1 or w == 2 or w == 4 or w == 8:
                            nbytes = k * w
                    elif w >= 0:
                        nbytes = k * w
                elif t == T_CN or t == T_BN or t == T_SN:
                    p = pos
                    ok = True
                    for _j in range(k):
                        if t == T_SN:
                            if p + 2 > end:
                                ok = False
                                break
                            ln = np.int64(_rd_uint(buf, p, 2, be))
                            p += 2 + ln
                        else:
                            if p >= end:
                                ok = False
                                break
                            p += 1 + np.int64(buf[p])
                        if p > end:
                            ok = False
                            break
                    if ok:
                        nbytes = p - pos
                elif t == T_VN:
                    p = pos
                    ok = True
                    for _j in range(k):
                        if p >= end:
                            ok = False
                            break
                        code = buf[p]
                        p += 1
                        sz = _vn_size(buf, p, end, code, be)
                        if sz < 0:
                            ok = False
                            break
                        p += sz
                    if ok:
                        nbytes = p - pos
                if nbytes < 0 or pos + nbytes > end:
                    trunc = True
                    val[r, i] = 0
                    aux[r, i] = -1
                    continue
                val[r, i] = pos
                aux[r, i] = k
                pos += nbytes
            else:
                # --------------------------------------------------- scalar
                sz = fsize[i]
                if sz > 0:
                    if pos + sz > end:
                        trunc = True
                        val[r, i] = 0
                        aux[r, i] = -1
                        continue
                    val[r, i] = _rd_int(buf, pos, sz, be, signed[i])
                    aux[r, i] = 0
                    pos += sz
                elif t == T_CN or t == T_BN:
                    if pos + 1 > end:
                        trunc = True
                        val[r, i] = 0
                        aux[r, i] = -1
                        continue
                    ln = np.int64(buf[pos])
                    if pos + 1 + ln > end:
                        trunc = True
                        val[r, i] = 0
                        aux[r, i] = -1
                        continue
                    val[r, i] = pos + 1
                    aux[r, i] = ln
                    pos += 1 + ln
                elif t == T_SN:
                    if pos + 2 > end:
                        trunc = True
                        val[r, i] = 0
                        aux[r, i] = -1
                        continue
                    ln = np.int64(_rd_uint(buf, pos, 2, be))
                    if pos + 2 + ln > end:
                        trunc = True
                        val[r, i] = 0
                        aux[r, i] = -1
                        continue
                    val[r, i] = pos + 2
                    aux[r, i] = ln
                    pos += 2 + ln
                elif t == T_DN:
                    if pos + 2 > end:
                        trunc = True
                        val[r, i] = 0
                        aux[r, i] = -1
                        continue
                    bits = np.int64(_rd_uint(buf, pos, 2, be))
                    nb = (bits + 7) // 8
                    if pos + 2 + nb > end:
                        trunc = True
                        val[r, i] = 0
                        aux[r, i] = -1
                        continue
                    val[r, i] = (pos + 2) | (bits << 40)
                    aux[r, i] = nb
                    pos += 2 + nb
                else:
                    trunc = True
                    val[r, i] = 0
                    aux[r, i] = -1
        used[r] = pos - start


_SIGNED: dict[int, np.ndarray] = {}


def _signed_flags(prog: R.FieldProgram) -> np.ndarray:
    """Which fields are signed integers (once per program: np.isin per call was a tenth of a
    small file's parse time)."""
    f = _SIGNED.get(id(prog))
    if f is None:
        f = _SIGNED[id(prog)] = np.isin(prog.ftype, (T_I1, T_I2, T_I4, T_I8)).astype(np.bool_)
    return f


def interpret(buf: np.ndarray, offs: np.ndarray, lens: np.ndarray, big_endian: bool,
              rec: R.RecordDef, alt: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode the records at ``offs`` (header offsets) with ``rec``'s layout."""
    prog = R.program(rec, alt)
    n = int(offs.shape[0])
    nf = int(prog.ftype.shape[0])
    # column-major: every consumer reads whole fields (val[:, i]), which are then contiguous
    val = np.empty((n, nf), dtype=np.int64, order=_ORDER)
    aux = np.empty((n, nf), dtype=np.int32, order=_ORDER)
    used = np.empty(n, dtype=np.int64)
    if n:
        _interp(buf, np.ascontiguousarray(offs, dtype=np.int64), np.ascontiguousarray(lens, dtype=np.int64),
                big_endian, prog.ftype, prog.fcount, prog.fwidth, prog.fsize, _signed_flags(prog), val, aux, used)
    return val, aux, used
