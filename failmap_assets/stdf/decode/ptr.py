"""The specialised PTR kernel: PTRs are usually most of the records of an STDF file, so they
get a hand-written one-pass decoder instead of the table-driven interpreter plus the
default kernels.

It decodes the fixed fields, applies the default-data rule and builds the test table
inline, and writes TEST_TXT / ALARM_ID straight into Arrow string buffers; the result
must equal the table-driven path exactly (tests/stdf/test_kernels.py). ``ptr_decode``
runs it over the record index in chunks whose strings fit int32 offsets.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from failmap_assets.kernels.jit import kernel
from .. import records as R
from .primitives import _byte, _span_eq, _w4, _w8
from .strings import text_array

# PTR field positions (records.py order) and its default-data fields, in override-bit order:
# RES_SCAL LLM_SCAL HLM_SCAL LO_LIMIT HI_LIMIT UNITS C_RESFMT C_LLMFMT C_HLMFMT LO_SPEC HI_SPEC
PTR_DEFAULT_FIELDS = ("RES_SCAL", "LLM_SCAL", "HLM_SCAL", "LO_LIMIT", "HI_LIMIT", "UNITS", "C_RESFMT",
                      "C_LLMFMT", "C_HLMFMT", "LO_SPEC", "HI_SPEC")
_PTR_USE = np.array([0, 4, 5, 4, 5, -1, -1, -1, -1, -1, -1], dtype=np.int64)
_PTR_NONE = np.array([-1, 6, 7, 6, 7, -1, -1, -1, -1, 2, 3], dtype=np.int64)
_PTR_KIND = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0], dtype=np.int64)   # 0 number, 1 string


@kernel
def _hash_slot(keys, key):
    mask = keys.shape[0] - 1
    h = (np.uint64(key) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(40)
    s = np.int64(h) & mask
    while keys[s] != -2 and keys[s] != key:
        s = (s + 1) & mask
    return s


@kernel
def _copy_span(dst, d, buf, s, n):
    """dst[d:d+n] = buf[s:s+n] (d, s >= 0, both spans inside their arrays), a word at a time:
    a byte loop costs ~1 ns per byte (LLVM cannot rule out that dst and buf overlap)."""
    k = 0
    while k + 8 <= n:
        w = _w8(buf, s + k)
        q = np.uint64(d + k)
        for j in range(8):
            dst[q + np.uint64(j)] = np.uint8((w >> np.uint64(8 * j)) & np.uint64(0xFF))
        k += 8
    while k < n:
        dst[d + k] = _byte(buf, s + k)
        k += 1


@kernel
def _ptr_kernel(buf, offs, lens, codes, ptr_code, rec_part, i0, i1, be, use_bit, none_bit, kind,
                r0, nt0, nov0, base, tpos0, apos0,
                rec_idx, part_idx, test_num, head, site, test_flg, parm_flg, result, opt_flag, nfields,
                txt_off, txt_data, txt_valid, alm_off, alm_data, alm_valid, mask,
                hkeys, hvals, t_key, t_first, t_cnt, t_opt, t_txs, t_txl, t_tls, t_tll, t_nf,
                t_t2s, t_t2l, t_nf2, t_next, dv, da,
                ov_row, ov_field, ov_val, ov_len):
    """Decode PTRs from record ``r0`` on, in one pass; default-data rule and test table inline.

    Per record: the fixed fields, ``nfields`` (how many fields are present: truncation is
    monotonic), TEST_TXT (null when equal to the test's first TEST_TXT) and ALARM_ID written
    straight into Arrow string buffers (int32 offsets, data, validity bits), the override
    mask and, sparsely (ov_*), the overriding values. ``base`` is the ordinal of record 0
    of this chunk among all PTRs (test first-record positions are global).

    Fast paths (most records): the test is first looked for as the one that followed the
    previous record's test last time (``t_next``), then in the hash; a tail (OPT_FLAG on)
    byte-equal to the test's first record's (``t_tls``/``t_tll``) or to its last tail that
    gave no override (``t_t2s``/``t_t2l``) skips the per-field default-data rule: no
    override, the nfields of that tail (``t_nf``/``t_nf2``).

    Resumable: no array is ever reallocated in here (that would put reference counting in
    the loop); when the test arrays, the hash or the override arrays are full it returns
    (record, tests, overrides, status) and the caller grows them and calls again.
    status: 0 done, 1 grow tests, 2 grow hash, 3 grow overrides, 4 the index does not fit
    the buffer or the output arrays (checked before anything is read or written).
    """
    n = offs.shape[0]
    ND = 11
    nt = nt0
    nov = nov0
    tpos = tpos0
    apos = apos0
    cap = t_key.shape[0]
    hsize = hkeys.shape[0]
    ovcap = ov_row.shape[0]
    v = np.zeros(ND, dtype=np.int64)
    a = np.zeros(ND, dtype=np.int64)
    r = r0 - 1
    prev_t = -1
    nbuf = buf.shape[0]
    if i0 < 0 or i1 > n or lens.shape[0] < n or codes.shape[0] < n or rec_part.shape[0] < n:
        return i0, r0, nt, nov, tpos, apos, 4
    for i in range(i0, i1):
        if codes[i] != ptr_code:
            continue
        if nt >= cap:
            return i, r + 1, nt, nov, tpos, apos, 1
        if (nt + 1) * 2 > hsize:
            return i, r + 1, nt, nov, tpos, apos, 2
        if nov + ND > ovcap:
            return i, r + 1, nt, nov, tpos, apos, 3
        # the record inside the buffer, room for one more row and its strings (the kernel
        # reads and writes without bounds checks)
        if (r + 1 >= rec_idx.shape[0] or offs[i] < 0 or offs[i] + 4 + lens[i] > nbuf
                or tpos + lens[i] > txt_data.shape[0] or apos + lens[i] > alm_data.shape[0]):
            return i, r + 1, nt, nov, tpos, apos, 4
        r += 1
        rec_idx[r] = i
        part_idx[r] = rec_part[i]
        p = offs[i] + 4
        end = p + lens[i]
        nf = 0
        tn = np.int64(-1)
        ts = np.int64(0)
        tl = np.int64(-1)
        als = np.int64(0)
        all_ = np.int64(-1)
        ob = np.int64(0)
        hd = np.uint8(0)
        st = np.uint8(0)
        tf = np.uint8(0)
        pf = np.uint8(0)
        res = np.uint32(0)
        tail_s = end
        same_tail = False
        fast_t = -1
        # ---- sequential decode; stop at the first field that does not fit
        while True:
            if p + 4 > end:
                break
            tn = _w4(buf, p, be)
            p += 4
            nf = 1
            # tests come in the same order part after part: try the test that followed the
            # previous record's test last time before hashing
            if prev_t >= 0 and t_next[prev_t] >= 0 and t_key[t_next[prev_t]] == tn:
                fast_t = t_next[prev_t]
            else:
                s0 = _hash_slot(hkeys, tn)
                if hkeys[s0] == tn:
                    fast_t = hvals[s0]
            if p + 4 > end:
                if p + 1 <= end:
                    hd = _byte(buf, p)
                    nf = 2
                    if p + 2 <= end:
                        st = _byte(buf, p + 1)
                        nf = 3
                        if p + 3 <= end:
                            tf = _byte(buf, p + 2)
                            nf = 4
                break
            hd = _byte(buf, p)
            st = _byte(buf, p + 1)
            tf = _byte(buf, p + 2)
            pf = _byte(buf, p + 3)
            p += 4
            nf = 5
            if p + 4 > end:
                break
            res = np.uint32(_w4(buf, p, be))
            p += 4
            nf = 6
            if p + 1 > end:
                break
            ln = np.int64(_byte(buf, p))
            if p + 1 + ln > end:
                break
            ts = p + 1
            tl = ln
            p += 1 + ln
            nf = 7
            if p + 1 > end:
                break
            ln = np.int64(_byte(buf, p))
            if p + 1 + ln > end:
                break
            als = p + 1
            all_ = ln
            p += 1 + ln
            nf = 8
            tail_s = p
            if p + 1 > end:
                break
            if fast_t >= 0:
                tll = end - p
                if t_tll[fast_t] == tll and _span_eq(buf, p, tll, t_tls[fast_t], tll):
                    ob = np.int64(_byte(buf, p))
                    nf = t_nf[fast_t]
                    same_tail = True
                    break
                if t_t2l[fast_t] == tll and _span_eq(buf, p, tll, t_t2s[fast_t], tll):
                    ob = np.int64(_byte(buf, p))
                    nf = t_nf2[fast_t]
                    same_tail = True
                    break
            ob = np.int64(_byte(buf, p))
            p += 1
            nf = 9
            for k in range(ND):
                a[k] = -1
                v[k] = 0
            # RES_SCAL LLM_SCAL HLM_SCAL
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
            # LO_LIMIT HI_LIMIT
            for k in range(3, 5):
                if p + 4 > end:
                    stop = True
                    break
                v[k] = _w4(buf, p, be)
                a[k] = 0
                p += 4
                nf += 1
            if stop:
                break
            # UNITS C_RESFMT C_LLMFMT C_HLMFMT
            for k in range(5, 9):
                if p + 1 > end:
                    stop = True
                    break
                ln = np.int64(_byte(buf, p))
                if p + 1 + ln > end:
                    stop = True
                    break
                v[k] = p + 1
                a[k] = ln
                p += 1 + ln
                nf += 1
            if stop:
                break
            for k in range(9, 11):
                if p + 4 > end:
                    stop = True
                    break
                v[k] = _w4(buf, p, be)
                a[k] = 0
                p += 4
                nf += 1
            break
        head[r] = hd
        site[r] = st
        test_flg[r] = tf
        parm_flg[r] = pf
        result[r] = res
        opt_flag[r] = np.uint8(ob)
        nfields[r] = nf
        test_num[r] = np.uint32(tn if tn >= 0 else 0)
        if all_ >= 0:
            _copy_span(alm_data, apos, buf, als, all_)
            apos += all_
            alm_valid[r >> 3] |= np.uint8(1 << (r & 7))
        alm_off[r + 1] = apos
        has_opt = nf >= 9
        # ---- test lookup / creation
        s = 0
        if fast_t >= 0:
            t = fast_t
            new = False
        else:
            s = _hash_slot(hkeys, tn)
        if fast_t >= 0:
            pass
        elif hkeys[s] == tn:
            t = hvals[s]
            new = False
        else:
            t = nt
            nt += 1
            new = True
            hkeys[s] = tn
            hvals[s] = t
            t_key[t] = tn
            t_first[t] = base + r
            t_cnt[t] = 0
            t_opt[t] = ob if has_opt else -1
            t_txs[t] = ts
            t_txl[t] = tl
            t_tls[t] = tail_s
            t_tll[t] = end - tail_s
            t_nf[t] = nf
            t_t2l[t] = -1
            t_next[t] = -1
            # defaults from the first record
            for k in range(ND):
                dv[t, k] = 0
                da[t, k] = -1
                if nf < 9 or a[k] < 0:
                    continue
                if none_bit[k] >= 0 and (ob >> none_bit[k]) & 1:
                    continue
                if use_bit[k] >= 0 and (ob >> use_bit[k]) & 1:
                    continue
                if kind[k] == 1 and a[k] == 1 and _byte(buf, v[k]) == 0:
                    continue
                dv[t, k] = v[k]
                da[t, k] = a[k]
        t_cnt[t] += 1
        if prev_t >= 0:
            t_next[prev_t] = t
        prev_t = t
        # TEST_TXT: null when equal to the test's
        if tl >= 0 and not (t_txl[t] == tl and _span_eq(buf, ts, tl, t_txs[t], t_txl[t])):
            _copy_span(txt_data, tpos, buf, ts, tl)
            tpos += tl
            txt_valid[r >> 3] |= np.uint8(1 << (r & 7))
        txt_off[r + 1] = tpos
        # ---- effective values vs defaults
        m = np.int64(0)
        if not new and has_opt and not same_tail:
            for k in range(ND):
                if none_bit[k] >= 0 and (ob >> none_bit[k]) & 1:
                    ev = np.int64(0)
                    ea = np.int64(-1)
                elif use_bit[k] >= 0 and (ob >> use_bit[k]) & 1:
                    continue
                elif a[k] >= 0 and not (kind[k] == 1 and a[k] == 0):
                    if kind[k] == 1 and a[k] == 1 and _byte(buf, v[k]) == 0:
                        ev = np.int64(0)
                        ea = np.int64(-1)
                    else:
                        ev = v[k]
                        ea = a[k]
                else:
                    continue
                d_a = da[t, k]
                if (ea < 0) and (d_a < 0):
                    continue
                if ea >= 0 and d_a >= 0:
                    if kind[k] == 0:
                        if ev == dv[t, k]:
                            continue
                    elif _span_eq(buf, ev, ea, dv[t, k], d_a):
                        continue
                m |= np.int64(1) << np.int64(k)
                ov_row[nov] = base + r
                ov_field[nov] = k
                ov_val[nov] = ev
                ov_len[nov] = ea
                nov += 1
        if m == 0 and not new and has_opt and not same_tail:
            # a tail without overrides that differs from the first record's (often every
            # later record of a test, e.g. OPT_FLAG "use the defaults" plus filler): later
            # records with this tail take the fast path too (no overrides, same nfields)
            t_t2s[t] = tail_s
            t_t2l[t] = end - tail_s
            t_nf2[t] = nf
        mask[r] = m
    return i1, r + 1, nt, nov, tpos, apos, 0


@kernel
def _grow1(a, n):
    b = np.empty(n, dtype=a.dtype)
    b[:a.shape[0]] = a
    return b


@kernel
def _grow2(a, n):
    b = np.empty((n, a.shape[1]), dtype=a.dtype)
    b[:a.shape[0]] = a
    return b


@kernel
def _rehash(keys, vals):
    n2 = keys.shape[0] * 2
    k2 = np.full(n2, -2, dtype=np.int64)
    v2 = np.zeros(n2, dtype=np.int64)
    for i in range(keys.shape[0]):
        if keys[i] != -2:
            s = _hash_slot(k2, keys[i])
            k2[s] = keys[i]
            v2[s] = vals[i]
    return k2, v2


class PtrDecoded:
    """Output of the PTR kernel for one chunk of PTRs: numpy arrays and Arrow string arrays."""

    def __init__(self, n: int, data_cap: int):
        self.n = n
        self.rec_idx = np.empty(n, np.int64)
        self.part_idx = np.empty(n, np.int32)
        self.test_num = np.empty(n, np.uint32)
        self.head = np.empty(n, np.uint8)
        self.site = np.empty(n, np.uint8)
        self.test_flg = np.empty(n, np.uint8)
        self.parm_flg = np.empty(n, np.uint8)
        self.result = np.empty(n, np.uint32)      # raw IEEE bits; .view(np.float32)
        self.opt_flag = np.empty(n, np.uint8)
        self.nfields = np.empty(n, np.uint8)
        self.mask = np.empty(n, np.uint16)
        self.txt_off = np.zeros(n + 1, np.int32)
        self.alm_off = np.zeros(n + 1, np.int32)
        self.txt_valid = np.zeros((n + 7) // 8, np.uint8)
        self.alm_valid = np.zeros((n + 7) // 8, np.uint8)
        # data: written only as far as the strings go (untouched pages cost nothing)
        self.txt_data = np.empty(data_cap, np.uint8)
        self.alm_data = np.empty(data_cap, np.uint8)

    def strings(self, which: str) -> pa.Array:
        off, data, valid = ((self.txt_off, self.txt_data, self.txt_valid) if which == "test_txt"
                            else (self.alm_off, self.alm_data, self.alm_valid))
        return text_array(off, data[:int(off[-1])], valid, self.n)


PTR_CHUNK_BYTES = (1 << 31) - (1 << 20)   # string offsets are int32: chunk so they always fit


@kernel
def _chunk_bounds(lens, codes, ptr_code, limit):
    """Index positions where a new PTR chunk starts, so that each chunk's PTR bytes < limit;
    also the PTR count and bytes per chunk."""
    starts = [0]
    counts = [0]
    nbytes = [0]
    cur_b = 0
    cur_n = 0
    for i in range(codes.shape[0]):
        if codes[i] != ptr_code:
            continue
        ln = 4 + np.int64(lens[i])
        if cur_n > 0 and cur_b + ln > limit:
            counts[-1] = cur_n
            nbytes[-1] = cur_b
            starts.append(i)
            counts.append(0)
            nbytes.append(0)
            cur_b = 0
            cur_n = 0
        cur_b += ln
        cur_n += 1
    counts[-1] = cur_n
    nbytes[-1] = cur_b
    return starts, counts, nbytes


def ptr_decode(buf, index, rec_part, n_ptr: int, be, chunk_bytes: int = PTR_CHUNK_BYTES):
    """Run the PTR kernel over the record index, growing its tables as needed.

    Returns (list of PtrDecoded chunks, tests dict, overrides (row, field, value, length))."""
    offs, lens, codes = index.offset, index.length, index.code
    code = R.CODE["PTR"]
    # big files start with room for thousands of tests: each grow is another kernel call
    cap, ovcap = (256, 4096) if n_ptr < (1 << 16) else (4096, 1 << 16)
    hkeys = np.full(4 * cap, -2, np.int64)
    hvals = np.zeros(4 * cap, np.int64)
    t = [np.empty(cap, np.int64) for _ in range(13)]
    dv = np.empty((cap, 11), np.int64)
    da = np.empty((cap, 11), np.int64)
    ov = [np.empty(ovcap, np.int64) for _ in range(4)]
    nt, nov = 0, 0
    total = int(offs[-1] - offs[0] + lens[-1] + 4) if len(offs) else 0
    if total < chunk_bytes:
        starts, counts, nbytes = [0], [n_ptr], [total]
    else:
        starts, counts, nbytes = _chunk_bounds(lens, codes, code, chunk_bytes)
        starts, counts, nbytes = list(starts), list(counts), list(nbytes)
    ends = starts[1:] + [len(offs)]
    chunks = []
    base = 0
    for i0, i1, cnt, nb in zip(starts, ends, counts, nbytes):
        out = PtrDecoded(cnt, int(nb) + 1)
        i, r, tpos, apos = i0, 0, 0, 0
        while True:
            i, r, nt, nov, tpos, apos, status = _ptr_kernel(
                buf, offs, lens, codes, code, rec_part, i, i1, be, _PTR_USE, _PTR_NONE, _PTR_KIND, r, nt, nov,
                base, tpos, apos, out.rec_idx, out.part_idx, out.test_num, out.head, out.site, out.test_flg,
                out.parm_flg, out.result, out.opt_flag, out.nfields, out.txt_off, out.txt_data, out.txt_valid,
                out.alm_off, out.alm_data, out.alm_valid, out.mask, hkeys, hvals, *t, dv, da, *ov)
            if status == 0:
                break
            if status == 1:
                cap *= 4
                t = [_grow1(x, cap) for x in t]
                dv, da = _grow2(dv, cap), _grow2(da, cap)
            elif status == 2:
                hkeys, hvals = _rehash(hkeys, hvals)
            elif status == 4:
                raise ValueError(f"PTR record {i}: the record index does not fit the buffer or the PTR count")
            else:
                ovcap *= 4
                ov = [_grow1(x, ovcap) for x in ov]
        assert r == cnt
        chunks.append(out)
        base += cnt
    t_key, t_first, t_cnt, t_opt, t_txs, t_txl = (x[:nt] for x in t[:6])
    tests = dict(key=t_key, first=t_first, count=t_cnt, opt=t_opt, txt_s=t_txs, txt_l=t_txl, dval=dv[:nt],
                 daux=da[:nt])
    return chunks, tests, tuple(x[:nov] for x in ov)
