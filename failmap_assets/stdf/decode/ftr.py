"""The specialised FTR kernel: one pass per record instead of the table-driven interpreter,
the default kernels and the column conversion (the same output, tests/stdf/test_kernels.py).

Per FTR it reads the fixed fields, finds the test (hash on TEST_NUM), writes RTN_INDX /
RTN_STAT / PGM_INDX / PGM_STAT (U2 and nibble arrays; null when equal to the test's first
record's, ``same_arrays.py``: then nothing is copied), FAIL_PIN and the seven strings
(TEST_TXT null when equal to the test's) straight into Arrow buffers, takes a new test's
PATG_NUM / SPIN_MAP defaults and arrays from its first record and writes, sparsely, the
records that override the defaults (``defaults.py`` rule). Every field is bounds-checked
against REC_LEN before it is read; a field that does not fit is missing, and so is every
later field.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from failmap_assets.kernels.jit import kernel
from .. import records as R
from .arrow import fixed_array, nullable_int
from .defaults import DefaultSpec, _effective_value, _first_value, _same
from .overrides import (GROW_HASH, GROW_TESTS, Tests, _put_array, _test_of, override_columns, SpanColumns,
                        _put_spans, valid_list_column)
from .primitives import _byte, _span_eq, _w2, _w4
from .same_arrays import ANCHOR, SAME_AS_TEST, _same_elements

# The layout this kernel is written for (records.py order); checked at import.
FTR_FIELDS = (("TEST_NUM", "U4"), ("HEAD_NUM", "U1"), ("SITE_NUM", "U1"), ("TEST_FLG", "B1"), ("OPT_FLAG", "B1"),
              ("CYCL_CNT", "U4"), ("REL_VADR", "U4"), ("REPT_CNT", "U4"), ("NUM_FAIL", "U4"), ("XFAIL_AD", "I4"),
              ("YFAIL_AD", "I4"), ("VECT_OFF", "I2"), ("RTN_ICNT", "U2"), ("PGM_ICNT", "U2"), ("RTN_INDX", "U2"),
              ("RTN_STAT", "N1"), ("PGM_INDX", "U2"), ("PGM_STAT", "N1"), ("FAIL_PIN", "Dn"), ("VECT_NAM", "Cn"),
              ("TIME_SET", "Cn"), ("OP_CODE", "Cn"), ("TEST_TXT", "Cn"), ("ALARM_ID", "Cn"), ("PROG_TXT", "Cn"),
              ("RSLT_TXT", "Cn"), ("PATG_NUM", "U1"), ("SPIN_MAP", "Dn"))
ND = 2           # default-data fields: PATG_NUM, SPIN_MAP (fields 26, 27)
NS = 8           # spans: FAIL_PIN, then the Cn fields VECT_NAM .. RSLT_TXT (fields 18..25)
N_OPT = 5        # fields up to and including OPT_FLAG
S_TXT = 4        # span row of TEST_TXT
NA = 4           # arrays stored once per test: RTN_INDX RTN_STAT PGM_INDX PGM_STAT (fields 14..17)
NF_ANCHOR = 19   # records holding FAIL_PIN (field 18) are compared with their test's arrays


@kernel
def _i32(x):
    return x - 4294967296 if x >= 2147483648 else x


@kernel
def _ftr_kernel(buf, offs, lens, pos, c0, i0, i1, be, use_bit, none_bit, blank, kind, esize, nt0, nov0,
                u4s, i4s, vect_off, u1s, cnts, nfields, used, mask,
                ri_off, rs_off, pi_off, ps_off, ri_ok, rs_ok, pi_ok, ps_ok, ri_val, rs_val, pi_val, ps_val,
                s_off, s_data, s_valid,
                hkeys, hvals, t_key, t_first, t_cnt, t_opt, t_txs, t_txl, dv, da, t_av, t_an,
                ov_row, ov_field, ov_val, ov_len):
    """Decode FTRs pos[i0:i1] (row = i - c0 of this chunk's outputs). ``u4s``: TEST_NUM CYCL_CNT
    REL_VADR REPT_CNT NUM_FAIL; ``i4s``: XFAIL_AD YFAIL_AD; ``u1s``: HEAD_NUM SITE_NUM TEST_FLG
    OPT_FLAG; ``cnts``: RTN_ICNT PGM_ICNT; ``*_off`` / ``*_ok``: offsets and validity bits of
    the four array columns. Returns (next i, tests, overrides, status): status 0 done, else the
    test arrays or the hash need room first."""
    nt = nt0
    nov = nov0
    cap = t_key.shape[0]
    hsize = hkeys.shape[0]
    nbuf = buf.shape[0]
    swap = 1 if be else 0
    v = np.zeros(ND, dtype=np.int64)
    a = np.zeros(ND, dtype=np.int64)
    ss = np.zeros(NS, dtype=np.int64)
    sl = np.zeros(NS, dtype=np.int64)
    for i in range(i0, i1):
        if nt >= cap:
            return i, nt, nov, GROW_TESTS
        if (nt + 1) * 2 > hsize:
            return i, nt, nov, GROW_HASH
        r = i - c0
        rec = pos[i]
        start = offs[rec] + 4
        ln = np.int64(lens[rec])
        if offs[rec] < 0 or ln < 0 or start + ln > nbuf:
            ln = 0                      # not from a valid index: nothing is read
        end = start + ln
        p = start
        for k in range(ND):
            v[k] = 0
            a[k] = -1
        for k in range(NS):
            ss[k] = 0
            sl[k] = -1
        for k in range(5):
            u4s[k, r] = 0
        i4s[0, r] = 0
        i4s[1, r] = 0
        vect_off[r] = 0
        for k in range(4):
            u1s[k, r] = 0
        ic = np.int64(0)
        gc = np.int64(0)
        xs = np.int64(0)        # start of the four arrays (one block)
        tn = np.int64(-1)
        ob = np.int64(0)
        nf = 0
        while True:
            if p + 4 > end:
                break
            tn = _w4(buf, p, be)
            u4s[0, r] = tn
            p += 4
            nf = 1
            # HEAD_NUM SITE_NUM TEST_FLG OPT_FLAG
            stop = False
            for k in range(4):
                if p + 1 > end:
                    stop = True
                    break
                u1s[k, r] = _byte(buf, p)
                p += 1
                nf += 1
            if stop:
                break
            ob = np.int64(u1s[3, r])
            # CYCL_CNT REL_VADR REPT_CNT NUM_FAIL
            for k in range(1, 5):
                if p + 4 > end:
                    stop = True
                    break
                u4s[k, r] = _w4(buf, p, be)
                p += 4
                nf += 1
            if stop:
                break
            # XFAIL_AD YFAIL_AD
            for k in range(2):
                if p + 4 > end:
                    stop = True
                    break
                i4s[k, r] = _i32(_w4(buf, p, be))
                p += 4
                nf += 1
            if stop:
                break
            if p + 2 > end:
                break
            x = _w2(buf, p, be)
            vect_off[r] = x - 65536 if x >= 32768 else x
            p += 2
            nf = 12
            if p + 2 > end:
                break
            ic = _w2(buf, p, be)
            p += 2
            nf = 13
            if p + 2 > end:
                break
            gc = _w2(buf, p, be)
            p += 2
            nf = 14
            # RTN_INDX RTN_STAT PGM_INDX PGM_STAT: located here, copied once the test is known
            xs = p
            if p + 2 * ic > end:
                break
            p += 2 * ic
            nf = 15
            if p + (ic + 1) // 2 > end:
                break
            p += (ic + 1) // 2
            nf = 16
            if p + 2 * gc > end:
                break
            p += 2 * gc
            nf = 17
            if p + (gc + 1) // 2 > end:
                break
            p += (gc + 1) // 2
            nf = 18
            # FAIL_PIN (Dn: U2 bit count, then the bytes)
            if p + 2 > end:
                break
            x = (_w2(buf, p, be) + 7) // 8
            if p + 2 + x > end:
                break
            ss[0] = p + 2
            sl[0] = x
            p += 2 + x
            nf = 19
            # VECT_NAM TIME_SET OP_CODE TEST_TXT ALARM_ID PROG_TXT RSLT_TXT
            for k in range(1, NS):
                if p + 1 > end:
                    stop = True
                    break
                x = np.int64(_byte(buf, p))
                if p + 1 + x > end:
                    stop = True
                    break
                ss[k] = p + 1
                sl[k] = x
                p += 1 + x
                nf += 1
            if stop:
                break
            # PATG_NUM SPIN_MAP
            if p + 1 > end:
                break
            v[0] = np.int64(_byte(buf, p))
            a[0] = 0
            p += 1
            nf = 27
            if p + 2 > end:
                break
            bits = _w2(buf, p, be)
            x = (bits + 7) // 8
            if p + 2 + x > end:
                break
            v[1] = (p + 2) | (bits << 40)
            a[1] = x
            p += 2 + x
            nf = 28
            break
        cnts[0, r] = ic
        cnts[1, r] = gc
        nfields[r] = nf
        used[r] = p - start
        has_opt = nf >= N_OPT
        # the arrays present (fields 14..17): data start and element count, -1 missing
        s0, s1 = xs, xs + 2 * ic
        s2 = s1 + (ic + 1) // 2
        s3 = s2 + 2 * gc
        n0 = ic if nf >= 15 else -1
        n1 = ic if nf >= 16 else -1
        n2 = gc if nf >= 17 else -1
        n3 = gc if nf >= 18 else -1
        ts = ss[S_TXT]
        tl = sl[S_TXT]
        # ---- the test: a new one takes its defaults from this (its first) record
        t, new = _test_of(hkeys, hvals, tn, nt)
        if new:
            nt += 1
            t_key[t] = tn
            t_first[t] = i
            t_cnt[t] = 0
            t_opt[t] = ob if has_opt else -1
            t_txs[t] = ts
            t_txl[t] = tl
            for k in range(ND):
                dv[t, k], da[t, k] = _first_value(buf, ob, v[k], a[k], use_bit[k], none_bit[k], blank[k], kind[k])
            t_av[t, 0], t_av[t, 1], t_av[t, 2], t_av[t, 3] = s0, s1, s2, s3
            t_an[t, 0], t_an[t, 1], t_an[t, 2], t_an[t, 3] = n0, n1, n2, n3
        t_cnt[t] += 1
        # the arrays: null when equal to the test's first record's (records that hold the anchor)
        cmp = nf >= NF_ANCHOR
        blk = s3 + (gc + 1) // 2 - s0
        if cmp and t_an[t, 3] >= 0 and t_an[t, 0] == ic and t_an[t, 2] == gc and \
                _span_eq(buf, s0, blk, t_av[t, 0], blk):
            # the usual case: the four arrays' bytes (one block) are the test's
            ri_off[r + 1] = ri_off[r]
            rs_off[r + 1] = rs_off[r]
            pi_off[r + 1] = pi_off[r]
            ps_off[r + 1] = ps_off[r]
        else:
            _put_array(buf, s0, n0, 2, swap, cmp and _same_elements(buf, s0, n0, t_av[t, 0], t_an[t, 0], 2),
                       ri_val, ri_off, ri_ok, r)
            _put_array(buf, s1, n1, 0, swap, cmp and _same_elements(buf, s1, n1, t_av[t, 1], t_an[t, 1], 0),
                       rs_val, rs_off, rs_ok, r)
            _put_array(buf, s2, n2, 2, swap, cmp and _same_elements(buf, s2, n2, t_av[t, 2], t_an[t, 2], 2),
                       pi_val, pi_off, pi_ok, r)
            _put_array(buf, s3, n3, 0, swap, cmp and _same_elements(buf, s3, n3, t_av[t, 3], t_an[t, 3], 0),
                       ps_val, ps_off, ps_ok, r)
        # TEST_TXT: null when equal to the test's
        if tl >= 0 and t_txl[t] == tl and _span_eq(buf, ts, tl, t_txs[t], tl):
            sl[S_TXT] = -1
        _put_spans(buf, ss, sl, r, s_off, s_data, s_valid)
        # ---- effective values that differ from the test's defaults
        m = np.int64(0)
        for k in range(ND if nf > 26 else 0):      # neither default field present: nothing overrides
            ev, ea = _effective_value(buf, has_opt, ob, v[k], a[k], dv[t, k], da[t, k], use_bit[k], none_bit[k],
                                      blank[k], kind[k])
            if _same(buf, ev, ea, dv[t, k], da[t, k], kind[k], esize[k]):
                continue
            m |= np.int64(1) << np.int64(k)
            ov_row[nov] = r
            ov_field[nov] = k
            ov_val[nov] = ev
            ov_len[nov] = ea
            nov += 1
        mask[r] = m
    return i1, nt, nov, 0


def ftr_chunk(buf, be, offs, lens, pos, c0: int, c1: int, nbytes: int, rec_part, tests: Tests,
              spec: DefaultSpec) -> tuple[dict[str, pa.Array], np.ndarray]:
    """The ftr_results columns of FTRs pos[c0:c1] (``nbytes``: their bytes, for the value
    buffers) and the body bytes each record's fields use."""
    rec = spec.rec
    n = c1 - c0
    u4s = np.empty((5, n), np.uint32)
    i4s = np.empty((2, n), np.int32)
    vect_off = np.empty(n, np.int16)
    u1s = np.empty((4, n), np.uint8)
    cnts = np.empty((2, n), np.uint16)
    nf = np.empty(n, np.uint8)
    used = np.empty(n, np.int64)
    mask = np.empty(n, np.uint16)
    a_off = [np.zeros(n + 1, np.int32) for _ in range(NA)]
    a_ok = [np.zeros((n + 7) // 8, np.uint8) for _ in range(NA)]
    # flat list values: U2 at most one per two bytes, nibbles at most two per byte
    ri_val, pi_val = np.empty(nbytes + 2, np.uint8), np.empty(nbytes + 2, np.uint8)    # U2 bytes, native order
    rs_val, ps_val = np.empty(2 * nbytes + 1, np.uint8), np.empty(2 * nbytes + 1, np.uint8)
    spans = SpanColumns(NS, n, nbytes)
    ov = [np.empty(n * ND, np.int64) for _ in range(4)]
    i, nov = c0, 0
    while True:
        i, tests.nt, nov, status = _ftr_kernel(
            buf, offs, lens, pos, c0, i, c1, be, spec.use_bit, spec.none_bit, spec.blank, spec.kind, spec.esize,
            tests.nt, nov, u4s, i4s, vect_off, u1s, cnts, nf, used, mask, *a_off, *a_ok, ri_val, rs_val, pi_val,
            ps_val, spans.off, spans.data, spans.valid, tests.hkeys, tests.hvals, *tests.t, tests.dv, tests.da,
            tests.av, tests.an, *ov)
        if status == 0:
            break
        tests.grow(status)
    nf_min = int(nf.min()) if n else 255
    f = rec.fields
    typed = {0: u4s[0], 1: u1s[0], 2: u1s[1], 3: u1s[2], 4: u1s[3], 5: u4s[1], 6: u4s[2], 7: u4s[3], 8: u4s[4],
             9: i4s[0], 10: i4s[1], 11: vect_off, 12: cnts[0], 13: cnts[1]}
    cols: dict[str, pa.Array] = {}
    for k, arr in typed.items():
        cols[f[k].column] = fixed_array(np.ascontiguousarray(arr), f[k].arrow_type(), nf, k + 1, nf_min)
    for k, (val, item) in enumerate(((ri_val[:2 * int(a_off[0][-1])].view(np.uint16), pa.uint16()),
                                     (rs_val, pa.uint8()),
                                     (pi_val[:2 * int(a_off[2][-1])].view(np.uint16), pa.uint16()),
                                     (ps_val, pa.uint8()))):
        cols[f[14 + k].column] = valid_list_column(a_off[k], val, item, a_ok[k])
    for k in range(NS):
        cols[f[18 + k].column] = spans.array(k, binary=(k == 0))
    cols["override_mask"] = fixed_array(mask, pa.uint16())
    fields_d = tuple(rec.fields[j] for j in spec.index)
    cols.update(override_columns(buf, be, fields_d, n, *(x[:nov] for x in ov)))
    p = pos[c0:c1]
    cols["rec_idx"] = fixed_array(np.ascontiguousarray(p, dtype=np.int64), pa.int64())
    cols["part_idx"] = nullable_int(rec_part[p], pa.int32())
    return cols, used


assert tuple((f.name, f.type) for f in R.BY_NAME["FTR"].fields) == FTR_FIELDS, "records.py FTR layout changed"
_SPEC = DefaultSpec(R.BY_NAME["FTR"])
assert list(_SPEC.index) == [26, 27], "FTR default fields moved"
assert (_SPEC.use_bit < 0).all() and (_SPEC.none_bit < 0).all(), "FTR defaults now depend on OPT_FLAG"
assert SAME_AS_TEST["FTR"] == tuple(n for n, _ in FTR_FIELDS[14:14 + NA]), "same_arrays.py FTR arrays changed"
assert FTR_FIELDS[NF_ANCHOR - 1][0] == ANCHOR["FTR"], "same_arrays.py FTR anchor changed"
