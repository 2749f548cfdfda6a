"""The per-record arrays a result row holds only when they differ from its test's first
record's: FTR RTN_INDX, RTN_STAT, PGM_INDX, PGM_STAT and MPR RTN_STAT.

In real files these are nearly always the first record's (all 22 files: 14273 of 14274 FTRs,
every FTR and MPR of bcdm), so writing them per row was most of the Parquet write of FTR / MPR
files. ``tests`` holds the first record's arrays; a result row holds null where its array
equals them (the rule of ``test_txt``), else its own array ([] included). MPR RTN_INDX is not
here: it is default data (``defaults.py``).

Lossless with truncated records: a record is compared only when it reaches its kind's
*anchor*, the first later field that is never nulled (FTR FAIL_PIN, MPR RTN_RSLT). So a
null array with the anchor present means "the test's", and a null array without it means
the record ended before the array (the ``ftr_effective`` / ``mpr_effective`` views, sql.py).

The kernels (mpr.py, ftr.py) and the table-driven path (``_dedupe_arrays``) share
``_same_elements``: one definition of "equal". The table-driven path's TEST_TXT rule ("null
when equal to the test's") is ``_dedupe_arrays`` too (bytes, the text its own anchor).
"""

from __future__ import annotations

import numpy as np

from failmap_assets.kernels.jit import inlined, kernel
from .primitives import _byte, _span_eq

#: the arrays stored once per test, per kind (records.py names), and each kind's anchor
SAME_AS_TEST: dict[str, tuple[str, ...]] = {"MPR": ("RTN_STAT",), "FTR": ("RTN_INDX", "RTN_STAT", "PGM_INDX",
                                                                          "PGM_STAT")}
ANCHOR: dict[str, str] = {"MPR": "RTN_RSLT", "FTR": "FAIL_PIN"}


@inlined
def _same_elements(buf, s1, n1, s2, n2, width):
    """The n1 elements at s1 equal the n2 elements at s2 (a count < 0: missing, never equal).
    ``width``: bytes per element, 0 for nibbles (N1: an odd count's pad nibble is ignored)."""
    if n1 < 0 or n1 != n2:
        return False
    if width > 0:
        return _span_eq(buf, s1, n1 * width, s2, n1 * width)
    h = n1 >> 1
    if not _span_eq(buf, s1, h, s2, h):
        return False
    return (n1 & 1) == 0 or (_byte(buf, s1 + h) & 15) == (_byte(buf, s2 + h) & 15)


@kernel
def _dedupe_arrays(buf, v, a, anchor, tidx, tv, ta, width):
    """The table-driven path's rule: element counts ``a`` (interpreter aux of one array or
    string field) with -1 where the record holds its anchor (``anchor`` aux >= 0) and its array equals its
    test's first record's (``tv`` / ``ta``: data offset and count per test)."""
    n = a.shape[0]
    if v.shape[0] != n or anchor.shape[0] != n or tidx.shape[0] != n or tv.shape[0] != ta.shape[0]:
        raise ValueError("_dedupe_arrays: inputs of different lengths")
    out = np.empty(n, np.int64)
    nt = ta.shape[0]
    for r in range(n):
        x = np.int64(a[r])
        out[r] = x
        t = tidx[r]
        if x >= 0 and anchor[r] >= 0 and 0 <= t < nt and _same_elements(buf, v[r], x, tv[t], ta[t], width):
            out[r] = -1
    return out
