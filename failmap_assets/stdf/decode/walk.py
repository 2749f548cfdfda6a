"""The part / wafer walk over the whole record index: which part (PIR..PRR of a
head / site) each record belongs to, which wafer (WIR..WRR of a head) each part
belongs to, in one pass.
"""

from __future__ import annotations

import numpy as np

from failmap_assets.kernels.jit import kernel
from .. import records as R


NO_HS = 65536   # slot for records too short to hold HEAD_NUM / SITE_NUM


@kernel
def _walk(buf, offs, lens, codes, hs_at, is_result, c_pir, c_prr, c_wir, c_wrr, part_cap, wafer_cap,
          rec_part, part_pir, part_prr, part_first, part_head, part_site, part_wafer, part_results,
          wafer_wir, wafer_wrr, wafer_head):
    """Assign every result record to its part (open PIR/PRR with the same head/site), every
    part to its wafer (open WIR of the head), every WRR to its WIR."""
    open_part = np.full(NO_HS + 1, -1, dtype=np.int64)
    cur_wafer = np.full(257, -1, dtype=np.int64)
    last_wafer = np.int64(-1)
    n_parts = 0
    n_wafers = 0
    n = offs.shape[0]
    for i in range(n):
        c = codes[i]
        rec_part[i] = -1
        at = hs_at[c]
        if at < 0:
            if c == c_wir or c == c_wrr:
                head = np.int64(256)
                if lens[i] >= 1:
                    head = np.int64(buf[offs[i] + 4])
                if c == c_wir:
                    if n_wafers >= wafer_cap:
                        continue
                    w = n_wafers
                    n_wafers += 1
                    wafer_wir[w] = i
                    wafer_wrr[w] = -1
                    wafer_head[w] = head
                    cur_wafer[head] = w
                    last_wafer = w
                else:
                    w = cur_wafer[head]
                    if w < 0:
                        if n_wafers >= wafer_cap:
                            continue
                        w = n_wafers
                        n_wafers += 1
                        wafer_wir[w] = -1
                        wafer_head[w] = head
                        last_wafer = w
                    wafer_wrr[w] = i
                    cur_wafer[head] = -1
            continue
        hs = NO_HS
        head = np.int64(-1)
        site = np.int64(-1)
        if lens[i] >= at + 2:
            head = np.int64(buf[offs[i] + 4 + at])
            site = np.int64(buf[offs[i] + 5 + at])
            hs = head * 256 + site
        p = open_part[hs]
        if c == c_pir or p < 0:
            if n_parts >= part_cap:
                continue
            p = n_parts
            n_parts += 1
            part_pir[p] = i if c == c_pir else -1
            part_prr[p] = -1
            part_first[p] = i
            part_head[p] = head
            part_site[p] = site
            part_wafer[p] = -1
            part_results[p] = 0
            open_part[hs] = p
        rec_part[i] = p
        if is_result[c]:
            part_results[p] += 1
        if c == c_prr:
            part_prr[p] = i
            w = np.int64(-1)
            if head >= 0:
                w = cur_wafer[head]
            if w < 0:
                w = last_wafer
            part_wafer[p] = w
            open_part[hs] = -1
    return n_parts, n_wafers


@kernel
def _remap(rec_part, rank, n_parts):
    for i in range(rec_part.shape[0]):
        p = rec_part[i]
        rec_part[i] = rank[p] if p >= 0 else -1


@kernel
def _kept_parts(part_pir, part_prr, part_first, n):
    """(the parts ``walk`` keeps, in final order; whether they stood in that order already;
    whether the reordering is the identity).

    A part is kept when it has a PIR or a PRR; final order is PRR order, unclosed parts
    after (by first record, + n), stable. When every part is kept and in order (one site,
    every part closed: the common case) the list is left empty: nothing to reorder."""
    m = min(part_pir.shape[0], part_prr.shape[0], part_first.shape[0])
    k = 0
    prev = np.int64(-1)
    in_order = True
    for i in range(m):
        if part_prr[i] >= 0:
            key = part_prr[i]
        elif part_pir[i] >= 0:
            key = n + part_first[i]
        else:
            continue
        k += 1
        if key < prev:
            in_order = False
        prev = key
    if in_order and k == m:
        return np.zeros(0, dtype=np.int64), True, True
    kept = np.empty(k, dtype=np.int64)
    keys = np.empty(k, dtype=np.int64)
    k = 0
    for i in range(m):
        if part_prr[i] >= 0 or part_pir[i] >= 0:
            kept[k] = i
            keys[k] = part_prr[i] if part_prr[i] >= 0 else n + part_first[i]
            k += 1
    if in_order:
        return kept, True, False
    return kept[np.argsort(keys, kind="mergesort")], False, False     # mergesort: stable


@kernel
def _parts_per_wafer(part_wafer, part_prr, n):
    """Parts closed by a PRR per wafer row (0..n-1; other rows are not counted)."""
    cnt = np.zeros(n, dtype=np.int64)
    for i in range(min(part_wafer.shape[0], part_prr.shape[0])):
        wf = part_wafer[i]
        if part_prr[i] >= 0 and 0 <= wf < n:
            cnt[wf] += 1
    return cnt


class Walk:
    """Result of the part / wafer walk; parts are ordered by PRR (unclosed parts last)."""

    def __init__(self, **kw):
        self.rec_part = kw["rec_part"]            # int32 per record: part row (-1 none)
        self.part_pir = kw["part_pir"]            # int64 per part: record ordinal of the PIR (-1)
        self.part_prr = kw["part_prr"]            # ... of the PRR (-1: part never closed)
        self.part_first = kw["part_first"]
        self.part_head = kw["part_head"]
        self.part_site = kw["part_site"]
        self.part_wafer = kw["part_wafer"]        # wafer row (-1)
        self.part_results = kw["part_results"]    # PTR + MPR + FTR records of the part
        self.wafer_wir = kw["wafer_wir"]
        self.wafer_wrr = kw["wafer_wrr"]
        self.wafer_head = kw["wafer_head"]

    def parts_per_wafer(self, n: int) -> np.ndarray:
        """Parts closed by a PRR in each of wafer rows 0..n-1 (one pass: the masks and
        bincount it replaces cost ~3 ms on a million parts)."""
        return _parts_per_wafer(self.part_wafer, self.part_prr, n)


_HS_AT = np.full(256, -1, dtype=np.int64)
_IS_RESULT = np.zeros(256, dtype=np.bool_)
for _r in R.RECORDS:
    if _r.head_site_at >= 0:
        _HS_AT[R.CODE[_r.name]] = _r.head_site_at
for _k in ("PTR", "MPR", "FTR"):
    _IS_RESULT[R.CODE[_k]] = True


def walk(buf, index, counts) -> Walk:
    c = R.CODE
    part_cap = int(sum(counts[c[r.name]] for r in R.RECORDS if r.head_site_at >= 0)) + 1
    wafer_cap = int(counts[c["WIR"]] + counts[c["WRR"]]) + 1
    n = len(index)
    rec_part = np.empty(n, dtype=np.int32)
    pa_ = [np.empty(part_cap, dtype=np.int64) for _ in range(7)]
    wa_ = [np.empty(wafer_cap, dtype=np.int64) for _ in range(3)]
    n_parts, n_wafers = _walk(buf, index.offset, index.length, index.code, _HS_AT, _IS_RESULT,
                              c["PIR"], c["PRR"], c["WIR"], c["WRR"], part_cap, wafer_cap,
                              rec_part, *pa_, *wa_)
    part_pir, part_prr, part_first, part_head, part_site, part_wafer, part_results = (a[:n_parts] for a in pa_)
    wafer_wir, wafer_wrr, wafer_head = (a[:n_wafers] for a in wa_)
    # A part opened implicitly by a result (no PIR) is a part only if a PRR closes it
    # (files without PIRs); otherwise its results are orphans (e.g. the default-only
    # PTRs the spec allows before the first PIR). Parts in PRR order, then parts whose
    # PIR was never closed by a PRR (truncated files), in order of appearance.
    # (one pass: numpy masks, keys and a sort cost ~3-9 ms on a million parts already in order)
    order, _, identity = _kept_parts(part_pir, part_prr, part_first, n)
    if identity:
        # already in order (one site, every part closed): the sort and the remap are the identity
        return Walk(rec_part=rec_part, part_pir=part_pir, part_prr=part_prr, part_first=part_first,
                    part_head=part_head, part_site=part_site, part_wafer=part_wafer, part_results=part_results,
                    wafer_wir=wafer_wir, wafer_wrr=wafer_wrr, wafer_head=wafer_head)
    rank = np.full(n_parts + 1, -1, dtype=np.int64)
    rank[order] = np.arange(order.shape[0])
    _remap(rec_part, rank, n_parts)
    return Walk(rec_part=rec_part, part_pir=part_pir[order], part_prr=part_prr[order],
                part_first=part_first[order], part_head=part_head[order], part_site=part_site[order],
                part_wafer=part_wafer[order], part_results=part_results[order], wafer_wir=wafer_wir,
                wafer_wrr=wafer_wrr, wafer_head=wafer_head)
