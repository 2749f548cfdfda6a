"""The specialised MPR kernel: one pass per record instead of the table-driven interpreter,
the default kernels and the column conversion (the same output, tests/stdf/test_kernels.py).

Per MPR it reads the fixed fields, finds the test (hash on TEST_NUM), writes RTN_STAT
(nibbles; null when equal to the test's first record's, ``same_arrays.py``: then nothing is
copied), RTN_RSLT, TEST_TXT (null when equal to the test's) and ALARM_ID straight into Arrow
buffers, takes a new test's defaults and RTN_STAT from its first record and writes, sparsely,
the default-data fields whose effective value differs from the test's (``defaults.py`` rule).
Every field is bounds-checked against REC_LEN before it is read; a field that does not
fit is missing, and so is every later field (the interpreter's truncation rule).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from failmap_assets.kernels.jit import kernel
from .. import records as R
from .arrow import fixed_array, nullable_int
from .defaults import DefaultSpec, _effective_value, _first_value, _same
from .overrides import (GROW_HASH, GROW_TESTS, Tests, _copy_elements, _put_array, _test_of, list_column,
                        override_columns, SpanColumns, _put_spans, valid_list_column)
from .primitives import AHEAD, _byte, _span_eq, _spread, _touch, _w2, _w4
from .same_arrays import ANCHOR, SAME_AS_TEST, _same_elements

# The layout this kernel is written for (records.py order); checked at import.
MPR_FIELDS = (("TEST_NUM", "U4"), ("HEAD_NUM", "U1"), ("SITE_NUM", "U1"), ("TEST_FLG", "B1"), ("PARM_FLG", "B1"),
              ("RTN_ICNT", "U2"), ("RSLT_CNT", "U2"), ("RTN_STAT", "N1"), ("RTN_RSLT", "R4"), ("TEST_TXT", "Cn"),
              ("ALARM_ID", "Cn"), ("OPT_FLAG", "B1"), ("RES_SCAL", "I1"), ("LLM_SCAL", "I1"), ("HLM_SCAL", "I1"),
              ("LO_LIMIT", "R4"), ("HI_LIMIT", "R4"), ("START_IN", "R4"), ("INCR_IN", "R4"), ("RTN_INDX", "U2"),
              ("UNITS", "Cn"), ("UNITS_IN", "Cn"), ("C_RESFMT", "Cn"), ("C_LLMFMT", "Cn"), ("C_HLMFMT", "Cn"),
              ("LO_SPEC", "R4"), ("HI_SPEC", "R4"))
ND = 15          # default-data fields: RES_SCAL .. HI_SPEC (fields 12..26)
N_OPT = 12       # fields up to and including OPT_FLAG
NA = 1           # arrays stored once per test: RTN_STAT (field 7)
NF_ANCHOR = 9    # records holding RTN_RSLT (field 8) are compared with their test's RTN_STAT


@kernel
def _mpr_kernel(buf, offs, lens, pos, c0, i0, i1, be, use_bit, none_bit, blank, kind, esize, nt0, nov0,
                test_num, head, site, test_flg, parm_flg, rtn_icnt, rslt_cnt, opt_flag, nfields, used, mask,
                stat_off, stat_valid, stat_val, rslt_off, rslt_val, s_off, s_data, s_valid,
                hkeys, hvals, t_key, t_first, t_cnt, t_opt, t_txs, t_txl, dv, da, t_av, t_an,
                ov_row, ov_field, ov_val, ov_len):
    """Decode MPRs pos[i0:i1] (row = i - c0 of this chunk's outputs). Returns (next i, tests,
    overrides, status): status 0 done, else the test arrays or the hash need room first."""
    nt = nt0
    nov = nov0
    cap = t_key.shape[0]
    hsize = hkeys.shape[0]
    nbuf = buf.shape[0]
    v = np.zeros(ND, dtype=np.int64)
    a = np.zeros(ND, dtype=np.int64)
    ss = np.zeros(2, dtype=np.int64)      # TEST_TXT, ALARM_ID spans
    sl = np.zeros(2, dtype=np.int64)
    spread = _spread(offs, lens, pos, i0, i1)
    sink = np.uint8(0)
    for i in range(i0, i1):
        if nt >= cap:
            return i, nt, nov, GROW_TESTS
        if (nt + 1) * 2 > hsize:
            return i, nt, nov, GROW_HASH
        if spread and (i - i0) % AHEAD == 0:
            for j in range(i, min(i + AHEAD, i1)):
                sink ^= _touch(buf, offs[pos[j]], 4 + np.int64(lens[pos[j]]), nbuf)
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
        nf = 0
        tn = np.int64(-1)
        hd = np.uint8(0)
        st = np.uint8(0)
        tf = np.uint8(0)
        pf = np.uint8(0)
        ic = np.int64(0)
        rc = np.int64(0)
        ob = np.int64(0)
        ts = np.int64(0)
        tl = np.int64(-1)
        als = np.int64(0)
        all_ = np.int64(-1)
        xs = np.int64(0)                # RTN_STAT: data start, count (-1 missing)
        xn = np.int64(-1)
        ro = rslt_off[r]
        while True:
            if p + 4 > end:
                break
            tn = _w4(buf, p, be)
            p += 4
            nf = 1
            if p + 1 > end:
                break
            hd = _byte(buf, p)
            p += 1
            nf = 2
            if p + 1 > end:
                break
            st = _byte(buf, p)
            p += 1
            nf = 3
            if p + 1 > end:
                break
            tf = _byte(buf, p)
            p += 1
            nf = 4
            if p + 1 > end:
                break
            pf = _byte(buf, p)
            p += 1
            nf = 5
            if p + 2 > end:
                break
            ic = _w2(buf, p, be)
            p += 2
            nf = 6
            if p + 2 > end:
                break
            rc = _w2(buf, p, be)
            p += 2
            nf = 7
            nb = (ic + 1) // 2
            if p + nb > end:
                break
            xs = p                      # copied once the test is known
            xn = ic
            p += nb
            nf = 8
            if p + rc * 4 > end:
                break
            _copy_elements(buf, p, 4 * rc, 3 if be else 0, rslt_val, 4 * ro)
            ro += rc
            p += rc * 4
            nf = 9
            if p + 1 > end:
                break
            x = np.int64(_byte(buf, p))
            if p + 1 + x > end:
                break
            ts = p + 1
            tl = x
            p += 1 + x
            nf = 10
            if p + 1 > end:
                break
            x = np.int64(_byte(buf, p))
            if p + 1 + x > end:
                break
            als = p + 1
            all_ = x
            p += 1 + x
            nf = 11
            if p + 1 > end:
                break
            ob = np.int64(_byte(buf, p))
            p += 1
            nf = 12
            # RES_SCAL LLM_SCAL HLM_SCAL (I1)
            stop = False
            for k in range(3):
                if p + 1 > end:
                    stop = True
                    break
                x = np.int64(_byte(buf, p))
                v[k] = x - 256 if x >= 128 else x
                a[k] = 0
                p += 1
                nf += 1
            if stop:
                break
            # LO_LIMIT HI_LIMIT START_IN INCR_IN (R4, raw bits)
            for k in range(3, 7):
                if p + 4 > end:
                    stop = True
                    break
                v[k] = _w4(buf, p, be)
                a[k] = 0
                p += 4
                nf += 1
            if stop:
                break
            # RTN_INDX (U2[RTN_ICNT])
            if p + 2 * ic > end:
                break
            v[7] = p
            a[7] = ic
            p += 2 * ic
            nf += 1
            # UNITS UNITS_IN C_RESFMT C_LLMFMT C_HLMFMT
            for k in range(8, 13):
                if p + 1 > end:
                    stop = True
                    break
                x = np.int64(_byte(buf, p))
                if p + 1 + x > end:
                    stop = True
                    break
                v[k] = p + 1
                a[k] = x
                p += 1 + x
                nf += 1
            if stop:
                break
            # LO_SPEC HI_SPEC
            for k in range(13, 15):
                if p + 4 > end:
                    break
                v[k] = _w4(buf, p, be)
                a[k] = 0
                p += 4
                nf += 1
            break
        test_num[r] = np.uint32(tn if tn >= 0 else 0)
        head[r] = hd
        site[r] = st
        test_flg[r] = tf
        parm_flg[r] = pf
        rtn_icnt[r] = ic
        rslt_cnt[r] = rc
        opt_flag[r] = ob
        nfields[r] = nf
        used[r] = p - start
        rslt_off[r + 1] = ro
        ss[1] = als
        sl[1] = all_
        has_opt = nf >= N_OPT
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
            t_av[t, 0] = xs
            t_an[t, 0] = xn
        t_cnt[t] += 1
        # RTN_STAT: null when equal to the test's first record's (records that hold the anchor)
        _put_array(buf, xs, xn, 0, 0, nf >= NF_ANCHOR and _same_elements(buf, xs, xn, t_av[t, 0], t_an[t, 0], 0),
                   stat_val, stat_off, stat_valid, r)
        # TEST_TXT: null when equal to the test's
        ss[0] = ts
        if tl >= 0 and t_txl[t] == tl and _span_eq(buf, ts, tl, t_txs[t], tl):
            sl[0] = -1
        else:
            sl[0] = tl
        _put_spans(buf, ss, sl, r, s_off, s_data, s_valid)
        # ---- effective values that differ from the test's defaults
        m = np.int64(0)
        for k in range(ND if has_opt else 0):      # no OPT_FLAG: no default field either, nothing overrides
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
    if sink == 255 and i1 > i0 and used[i1 - 1 - c0] < 0:
        used[i1 - 1 - c0] = 0          # never runs (used >= 0); a store, so the touches' loads stay
    return i1, nt, nov, 0


def mpr_chunk(buf, be, offs, lens, pos, c0: int, c1: int, nbytes: int, rec_part, tests: Tests,
              spec: DefaultSpec) -> tuple[dict[str, pa.Array], np.ndarray]:
    """The mpr_results columns of MPRs pos[c0:c1] (``nbytes``: their bytes, for the value
    buffers) and the body bytes each record's fields use."""
    rec = spec.rec
    n = c1 - c0
    fixed = [np.empty(n, dtype=d) for d in (np.uint32, np.uint8, np.uint8, np.uint8, np.uint8, np.uint16,
                                             np.uint16, np.uint8)]
    nf = np.empty(n, np.uint8)
    used = np.empty(n, np.int64)
    mask = np.empty(n, np.uint16)
    stat_off = np.zeros(n + 1, np.int32)
    stat_valid = np.zeros((n + 7) // 8, np.uint8)
    rslt_off = np.zeros(n + 1, np.int32)
    stat_val = np.empty(2 * nbytes + 1, np.uint8)     # nibbles: at most two per byte
    rslt_val = np.empty(nbytes + 4, np.uint8)          # R4 bytes, native order
    spans = SpanColumns(2, n, nbytes)
    ov = [np.empty(n * ND, np.int64) for _ in range(4)]   # sparse; pages beyond the last override untouched
    i, nov = c0, 0
    while True:
        i, tests.nt, nov, status = _mpr_kernel(
            buf, offs, lens, pos, c0, i, c1, be, spec.use_bit, spec.none_bit, spec.blank, spec.kind, spec.esize,
            tests.nt, nov, *fixed, nf, used, mask, stat_off, stat_valid, stat_val, rslt_off, rslt_val, spans.off,
            spans.data, spans.valid, tests.hkeys, tests.hvals, *tests.t, tests.dv, tests.da, tests.av, tests.an, *ov)
        if status == 0:
            break
        tests.grow(status)
    nf_min = int(nf.min()) if n else 255
    f = rec.fields
    cols: dict[str, pa.Array] = {}
    for k in range(7):
        cols[f[k].column] = fixed_array(fixed[k], f[k].arrow_type(), nf, k + 1, nf_min)
    cols["rtn_stat"] = valid_list_column(stat_off, stat_val, pa.uint8(), stat_valid)
    rslt = rslt_val[:4 * int(rslt_off[-1])].view(np.float32)
    cols["rtn_rslt"] = list_column(rslt_off, rslt, pa.float32(), nf, 9, nf_min)
    cols["test_txt"], cols["alarm_id"] = spans.array(0), spans.array(1)
    cols["opt_flag"] = fixed_array(fixed[7], pa.uint8(), nf, N_OPT, nf_min)
    cols["override_mask"] = fixed_array(mask, pa.uint16())
    fields_d = tuple(rec.fields[j] for j in spec.index)
    cols.update(override_columns(buf, be, fields_d, n, *(x[:nov] for x in ov)))
    p = pos[c0:c1]
    cols["rec_idx"] = fixed_array(np.ascontiguousarray(p, dtype=np.int64), pa.int64())
    cols["part_idx"] = nullable_int(rec_part[p], pa.int32())
    return cols, used


assert tuple((f.name, f.type) for f in R.BY_NAME["MPR"].fields) == MPR_FIELDS, "records.py MPR layout changed"
assert list(DefaultSpec(R.BY_NAME["MPR"]).index) == list(range(N_OPT, N_OPT + ND)), "MPR default fields moved"
assert SAME_AS_TEST["MPR"] == (MPR_FIELDS[7][0],), "same_arrays.py MPR arrays changed"
assert MPR_FIELDS[NF_ANCHOR - 1][0] == ANCHOR["MPR"], "same_arrays.py MPR anchor changed"
