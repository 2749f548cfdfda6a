"""Record ordinals grouped by record code (a counting sort over the record index), so that
each record type is decoded in one batch.
"""

from __future__ import annotations

import numpy as np

from failmap_assets.kernels.jit import kernel
from .. import records as R


@kernel
def _group_by_code(codes, ncodes, skip):
    """Counting sort: record ordinals grouped by code (stable), and group starts. Records of
    code ``skip`` are counted but not listed (the PTR kernel walks the index itself)."""
    n = codes.shape[0]
    counts = np.zeros(ncodes + 1, dtype=np.int64)
    for i in range(n):
        counts[codes[i]] += 1
    starts = np.zeros(ncodes + 2, dtype=np.int64)
    for c in range(ncodes + 1):
        starts[c + 1] = starts[c] + (counts[c] if c != skip else 0)
    fill = starts[:-1].copy()
    out = np.empty(starts[ncodes + 1], dtype=np.int64)
    for i in range(n):
        c = codes[i]
        if c != skip:
            out[fill[c]] = i
            fill[c] += 1
    return out, starts, counts


def group_by_code(codes: np.ndarray, skip: str | None = "PTR"):
    return _group_by_code(codes, len(R.RECORDS), R.CODE[skip] if skip else -1)
