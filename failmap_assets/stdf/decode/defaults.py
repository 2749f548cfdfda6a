"""The default-data rule of PTR / MPR / FTR.

The first record of a test sets its defaults (limits, units, formats, ...); later
records of the test may leave those fields blank or flag them in OPT_FLAG.
``DefaultSpec`` compiles a record type's default-data fields (from ``records.py``)
for the kernels; ``defaults`` takes the defaults per test from its first record and
``effective`` applies the rule per record and keeps only the values that override
the default (with a bit mask of which fields do).
"""

from __future__ import annotations

import numpy as np

from failmap_assets.kernels.jit import kernel
from .. import records as R
from .primitives import _byte, _span_eq


# Kinds of default-data fields, for comparing values.
K_NUM, K_SPAN, K_ARRAY, K_DN = 0, 1, 2, 3


class DefaultSpec:
    """The default-data fields of one record type, compiled for the kernels."""

    def __init__(self, rec: R.RecordDef):
        self.rec = rec
        idx = [i for i, f in enumerate(rec.fields) if f.default is not None]
        self.fields = [rec.fields[i] for i in idx]
        self.index = np.array(idx, dtype=np.int64)
        self.use_bit = np.array([f.default.use_default_bit for f in self.fields], dtype=np.int64)
        self.none_bit = np.array([f.default.none_bit for f in self.fields], dtype=np.int64)
        self.blank = np.array([-1 if f.default.blank is None else f.default.blank for f in self.fields],
                              dtype=np.int64)
        kinds, esize = [], []
        for f in self.fields:
            if f.is_array:
                kinds.append(K_ARRAY)
                esize.append(R.FIXED_SIZE[f.type])
            elif f.type in ("Cn", "Sn", "Bn"):
                kinds.append(K_SPAN)
                esize.append(1)
            elif f.type == "Dn":
                kinds.append(K_DN)
                esize.append(1)
            else:
                kinds.append(K_NUM)
                esize.append(0)
        self.kind = np.array(kinds, dtype=np.int64)
        self.esize = np.array(esize, dtype=np.int64)
        self.opt = rec.index("OPT_FLAG")
        self.bits = {f.name: 1 << k for k, f in enumerate(self.fields)}


@kernel
def _span(v, a, kind, esize):
    """(start, byte length) of a span-like default field value."""
    if kind == 3:
        return v & ((np.int64(1) << np.int64(40)) - 1), np.int64(a)
    if kind == 2:
        return v, np.int64(a) * esize
    return v, np.int64(a)


@kernel
def _same(buf, v1, a1, v2, a2, kind, esize):
    if (a1 < 0) != (a2 < 0):
        return False
    if a1 < 0:
        return True
    if kind == 0:
        return v1 == v2
    if kind == 3 and (v1 >> np.int64(40)) != (v2 >> np.int64(40)):
        return False
    s1, l1 = _span(v1, a1, kind, esize)
    s2, l2 = _span(v2, a2, kind, esize)
    if l1 != l2:
        return False
    if s1 == s2:
        return True
    return _span_eq(buf, s1, l1, s2, l2)


@kernel
def _is_nul_string(buf, v, a, kind):
    return kind == 1 and a == 1 and _byte(buf, v) == 0


@kernel
def _is_blank(buf, v, a, kind, blank):
    if a < 0:
        return True
    if kind == 0:
        return blank >= 0 and v == blank
    if kind == 3:
        return (v >> np.int64(40)) == 0
    return a == 0


@kernel
def _first_value(buf, ob, v, a, use_bit, none_bit, blank, kind):
    """The default one field of a test's first record sets: (value, aux), (0, -1) for none.

    ``ob``: the record's OPT_FLAG (0 when missing). Shared by the batch kernels below and
    the specialised MPR / FTR kernels (one definition of the rule)."""
    if a < 0:
        return np.int64(0), np.int64(-1)
    if none_bit >= 0 and (ob >> none_bit) & 1:
        return np.int64(0), np.int64(-1)
    if use_bit >= 0 and (ob >> use_bit) & 1:
        return np.int64(0), np.int64(-1)
    if kind == 0 and blank >= 0 and v == blank:
        return np.int64(0), np.int64(-1)
    if _is_nul_string(buf, v, a, kind):
        return np.int64(0), np.int64(-1)
    return np.int64(v), np.int64(a)


@kernel
def _effective_value(buf, has_opt, ob, v, a, dv, da, use_bit, none_bit, blank, kind):
    """A record's effective value of one field (value, aux) given its test's default (dv, da)."""
    if has_opt and none_bit >= 0 and (ob >> none_bit) & 1:
        return np.int64(0), np.int64(-1)
    if has_opt and use_bit >= 0 and (ob >> use_bit) & 1:
        return np.int64(dv), np.int64(da)
    if not _is_blank(buf, v, a, kind, blank):
        if _is_nul_string(buf, v, a, kind):
            return np.int64(0), np.int64(-1)
        return np.int64(v), np.int64(a)
    return np.int64(dv), np.int64(da)


@kernel
def _defaults(buf, val, aux, first_rows, opt, index, use_bit, none_bit, blank, kind, dval, daux):
    """Default values per test from the test's first record."""
    nt = first_rows.shape[0]
    nd = index.shape[0]
    for t in range(nt):
        r = first_rows[t]
        ob = np.int64(0)
        if aux[r, opt] >= 0:
            ob = val[r, opt]
        for j in range(nd):
            i = index[j]
            dval[t, j], daux[t, j] = _first_value(buf, ob, val[r, i], np.int64(aux[r, i]), use_bit[j], none_bit[j],
                                                  blank[j], kind[j])


@kernel
def _effective(buf, val, aux, tidx, opt, index, use_bit, none_bit, blank, kind, esize, dval, daux,
               oval, oaux, mask):
    """Apply the default rule; write the override (effective value when it differs from the default)."""
    n = val.shape[0]
    nd = index.shape[0]
    for r in range(n):
        t = tidx[r]
        ob = np.int64(0)
        has_opt = aux[r, opt] >= 0
        if has_opt:
            ob = val[r, opt]
        m = np.int64(0)
        for j in range(nd):
            i = index[j]
            ev, ea = _effective_value(buf, has_opt, ob, val[r, i], np.int64(aux[r, i]), dval[t, j],
                                      np.int64(daux[t, j]), use_bit[j], none_bit[j], blank[j], kind[j])
            if _same(buf, ev, ea, dval[t, j], daux[t, j], kind[j], esize[j]):
                oval[r, j] = 0
                oaux[r, j] = -1
            else:
                oval[r, j] = ev
                oaux[r, j] = ea
                m |= np.int64(1) << np.int64(j)
        mask[r] = m


def defaults(buf, spec: DefaultSpec, val_first, aux_first):
    nt = val_first.shape[0]
    nd = spec.index.shape[0]
    dval = np.zeros((nt, nd), dtype=np.int64)
    daux = np.full((nt, nd), -1, dtype=np.int32)
    if nt:
        _defaults(buf, val_first, aux_first, np.arange(nt, dtype=np.int64), spec.opt, spec.index, spec.use_bit,
                  spec.none_bit, spec.blank, spec.kind, dval, daux)
    return dval, daux


def effective(buf, spec: DefaultSpec, val, aux, tidx, dval, daux):
    n = val.shape[0]
    nd = spec.index.shape[0]
    oval = np.empty((n, nd), dtype=np.int64)
    oaux = np.empty((n, nd), dtype=np.int32)
    mask = np.empty(n, dtype=np.int64)
    if n:
        _effective(buf, val, aux, np.ascontiguousarray(tidx, dtype=np.int64), spec.opt, spec.index, spec.use_bit,
                   spec.none_bit, spec.blank, spec.kind, spec.esize, dval, daux, oval, oaux, mask)
    return oval, oaux, mask
