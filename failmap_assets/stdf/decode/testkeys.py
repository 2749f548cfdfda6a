"""Test keys of PTR / MPR / FTR records: the test number of each record, the distinct
tests in order of first appearance, and each record's test index.

(Not named ``test_keys.py``: pytest would take a ``test_*.py`` file for a test module.)
"""

from __future__ import annotations

import numpy as np

from failmap_assets.kernels.jit import kernel
from .primitives import _rd_uint


@kernel
def _u4_at(buf, offs, lens, at, be):
    """U4 at body offset ``at`` of each record; -1 when the record is too short."""
    n = offs.shape[0]
    out = np.empty(n, dtype=np.int64)
    for r in range(n):
        if lens[r] >= at + 4:
            out[r] = np.int64(_rd_uint(buf, offs[r] + 4 + at, 4, be))
        else:
            out[r] = -1
    return out


def test_keys(buf, offs, lens, big_endian, at=0):
    """(test number per record or -1, unique keys in order of first appearance, index per record, first rows)."""
    keys = _u4_at(buf, np.ascontiguousarray(offs, dtype=np.int64), np.ascontiguousarray(lens, dtype=np.int64),
                  at, big_endian)
    if keys.shape[0] == 0:
        e = np.zeros(0, dtype=np.int64)
        return keys, e, np.zeros(0, dtype=np.int32), e
    uniq, first, inv = np.unique(keys, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.shape[0])
    return keys, uniq[order], rank[inv].astype(np.int32), first[order]
