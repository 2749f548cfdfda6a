"""Record ordinals grouped by record code (a counting sort over the record index), so that
each record type is decoded in one batch.
"""

from __future__ import annotations

import numpy as np

from failmap_assets.kernels.jit import kernel
from .. import records as R

#: records counted but not listed: their kernels walk the index themselves (PTR) or nothing
#: decodes them (PIR: the walk reads their head / site); ``_Ctx.positions`` lists on demand
UNLISTED = ("PTR", "PIR")


@kernel
def _group_by_code(codes, ncodes, skip):
    """Counting sort: record ordinals grouped by code (stable), and group starts. Records of
    a code with ``skip[code]`` are counted but not listed."""
    n = codes.shape[0]
    counts = np.zeros(ncodes + 1, dtype=np.int64)
    for i in range(n):
        counts[codes[i]] += 1
    starts = np.zeros(ncodes + 2, dtype=np.int64)
    listed = np.zeros(ncodes + 1, dtype=np.bool_)
    for c in range(ncodes + 1):
        listed[c] = not (c < skip.shape[0] and skip[c])
        starts[c + 1] = starts[c] + (counts[c] if listed[c] else 0)
    fill = starts[:-1].copy()
    out = np.empty(starts[ncodes + 1], dtype=np.int64)
    for i in range(n):
        c = codes[i]
        if listed[c]:
            out[fill[c]] = i
            fill[c] += 1
    return out, starts, counts


def skip_mask(skip=UNLISTED) -> np.ndarray:
    mask = np.zeros(len(R.RECORDS) + 1, dtype=np.bool_)
    for name in skip:
        mask[R.CODE[name]] = True
    return mask


_SKIP = skip_mask()


def group_by_code(codes: np.ndarray, skip=UNLISTED):
    """(ordinals grouped by code, group starts, counts per code); codes in ``skip`` counted only."""
    return _group_by_code(codes, len(R.RECORDS), _SKIP if skip == UNLISTED else skip_mask(skip))
