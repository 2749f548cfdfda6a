"""Record decoding, driven by ``records.py``.

* ``interpret``: one Numba field interpreter decodes every record type from its
  compiled field program (records.program) into two int64/int32 matrices, one row
  per record and one column per field: ``val`` holds the value (integers
  sign-extended, floats as their raw bits, strings / arrays / bit fields as the
  byte offset of their data) and ``aux`` holds -1 when the field is missing (past
  REC_LEN), else 0 for scalars, the length for strings and the element count for
  arrays. Truncation is monotonic: once a field does not fit, it and every later
  field are missing.
* ``columns``: vectorised conversion of those matrices to Arrow arrays.
* the default-data rule of PTR / MPR / FTR (``defaults`` / ``effective``), the
  part / wafer walk over the whole record index (``walk``) and the specialised PTR
  kernel (``ptr_kernel``) live here too: no Python loop per record for PTR, MPR,
  FTR, PIR or PRR.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

from . import records as R
from .records import T_BN, T_CF, T_CN, T_DN, T_I1, T_I2, T_I4, T_I8, T_N1, T_SN, T_UF, T_VN

DN_SHIFT = 40           # Dn: val = data offset | bit count << 40
DN_MASK = (1 << DN_SHIFT) - 1

# ------------------------------------------------------------------ primitives


@njit(cache=True, nogil=True)
def _u2(buf, p, be):
    if be:
        return (np.int64(buf[p]) << 8) | np.int64(buf[p + 1])
    return np.int64(buf[p]) | (np.int64(buf[p + 1]) << 8)


@njit(cache=True, nogil=True)
def _u4(buf, p, be):
    """U4 at p, as explicit byte arithmetic (LLVM turns it into one load, plus bswap for BE)."""
    if be:
        return (np.int64(buf[p]) << 24) | (np.int64(buf[p + 1]) << 16) | (np.int64(buf[p + 2]) << 8) | \
            np.int64(buf[p + 3])
    return np.int64(buf[p]) | (np.int64(buf[p + 1]) << 8) | (np.int64(buf[p + 2]) << 16) | \
        (np.int64(buf[p + 3]) << 24)


@njit(cache=True, nogil=True)
def _u8(buf, p, be):
    v = np.uint64(0)
    if be:
        for k in range(8):
            v = (v << np.uint64(8)) | np.uint64(buf[p + k])
    else:
        for k in range(8):
            v = v | (np.uint64(buf[p + k]) << np.uint64(8 * k))
    return v


@njit(cache=True, nogil=True)
def _rd_uint(buf, pos, size, be):
    """Unsigned integer of 1, 2, 4 or 8 bytes at pos (explicit sizes: a generic byte loop is 2x slower)."""
    if size == 1:
        return np.uint64(buf[pos])
    if size == 2:
        return np.uint64(_u2(buf, pos, be))
    if size == 4:
        return np.uint64(_u4(buf, pos, be))
    return _u8(buf, pos, be)


@njit(cache=True, nogil=True)
def _rd_int(buf, pos, size, be, signed):
    """Integer of 1, 2, 4 or 8 bytes at pos as int64, sign-extended when ``signed``."""
    if size == 1:
        x = np.int64(buf[pos])
        if signed and x >= 128:
            x -= 256
        return x
    if size == 2:
        x = _u2(buf, pos, be)
        if signed and x >= 32768:
            x -= 65536
        return x
    if size == 4:
        x = _u4(buf, pos, be)
        if signed and x >= 2147483648:
            x -= 4294967296
        return x
    return np.int64(_u8(buf, pos, be))


@njit(cache=True, nogil=True)
def _vn_size(buf, p, end, code):
    """Bytes of GDR data after the type byte at p, or -1 when invalid / past end."""
    if code == 0:
        return 0
    if code == 1 or code == 4 or code == 13:
        return 1
    if code == 2 or code == 5:
        return 2
    if code == 3 or code == 6 or code == 7:
        return 4
    if code == 8:
        return 8
    if code == 10 or code == 11:
        if p >= end:
            return -1
        return 1 + np.int64(buf[p])
    if code == 12:
        if p + 2 > end:
            return -1
        return -2  # caller reads the bit count (needs the byte order)
    return -1


@njit(cache=True, nogil=True)
def _interp(buf, offs, lens, be, ftype, fcount, fwidth, fsize, signed, val, aux, used):
    nrec = offs.shape[0]
    nf = ftype.shape[0]
    for r in range(nrec):
        start = offs[r] + 4
        pos = start
        end = start + lens[r]
        trunc = False
        for i in range(nf):
            val[r, i] = 0
            aux[r, i] = -1
            if trunc:
                continue
            t = ftype[i]
            ci = fcount[i]
            if ci >= 0:
                # ---------------------------------------------------- array
                if aux[r, ci] < 0:
                    trunc = True
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
                        sz = _vn_size(buf, p, end, code)
                        if sz == -2:
                            bits = np.int64(_rd_uint(buf, p, 2, be))
                            sz = 2 + (bits + 7) // 8
                        if sz < 0:
                            ok = False
                            break
                        p += sz
                        if p > end:
                            ok = False
                            break
                    if ok:
                        nbytes = p - pos
                if nbytes < 0 or pos + nbytes > end:
                    trunc = True
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
                        continue
                    val[r, i] = _rd_int(buf, pos, sz, be, signed[i])
                    aux[r, i] = 0
                    pos += sz
                elif t == T_CN or t == T_BN:
                    if pos + 1 > end:
                        trunc = True
                        continue
                    ln = np.int64(buf[pos])
                    if pos + 1 + ln > end:
                        trunc = True
                        continue
                    val[r, i] = pos + 1
                    aux[r, i] = ln
                    pos += 1 + ln
                elif t == T_SN:
                    if pos + 2 > end:
                        trunc = True
                        continue
                    ln = np.int64(_rd_uint(buf, pos, 2, be))
                    if pos + 2 + ln > end:
                        trunc = True
                        continue
                    val[r, i] = pos + 2
                    aux[r, i] = ln
                    pos += 2 + ln
                elif t == T_DN:
                    if pos + 2 > end:
                        trunc = True
                        continue
                    bits = np.int64(_rd_uint(buf, pos, 2, be))
                    nb = (bits + 7) // 8
                    if pos + 2 + nb > end:
                        trunc = True
                        continue
                    val[r, i] = (pos + 2) | (bits << 40)
                    aux[r, i] = nb
                    pos += 2 + nb
                else:
                    trunc = True
        used[r] = pos - start


def _signed_flags(prog: R.FieldProgram) -> np.ndarray:
    return np.isin(prog.ftype, (T_I1, T_I2, T_I4, T_I8)).astype(np.bool_)


def interpret(buf: np.ndarray, offs: np.ndarray, lens: np.ndarray, big_endian: bool,
              rec: R.RecordDef, alt: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode the records at ``offs`` (header offsets) with ``rec``'s layout."""
    prog = R.program(rec, alt)
    n = int(offs.shape[0])
    nf = int(prog.ftype.shape[0])
    val = np.empty((n, nf), dtype=np.int64)
    aux = np.empty((n, nf), dtype=np.int32)
    used = np.empty(n, dtype=np.int64)
    if n:
        _interp(buf, np.ascontiguousarray(offs, dtype=np.int64), np.ascontiguousarray(lens, dtype=np.int64),
                big_endian, prog.ftype, prog.fcount, prog.fwidth, prog.fsize, _signed_flags(prog), val, aux, used)
    return val, aux, used


# ------------------------------------------------------------------ strings


@njit(cache=True, nogil=True)
def _utf8_len(buf, s, n):
    """Length of the bytes buf[s:s+n] once made valid UTF-8 (itself, or Latin-1 transcoded)."""
    i = 0
    valid = True
    while i < n:
        c = buf[s + i]
        if c < 0x80:
            i += 1
            continue
        need = 0
        lo = 0x80
        hi = 0xBF
        if 0xC2 <= c <= 0xDF:
            need = 1
        elif 0xE0 <= c <= 0xEF:
            need = 2
            if c == 0xE0:
                lo = 0xA0
            elif c == 0xED:
                hi = 0x9F
        elif 0xF0 <= c <= 0xF4:
            need = 3
            if c == 0xF0:
                lo = 0x90
            elif c == 0xF4:
                hi = 0x8F
        else:
            valid = False
            break
        if i + need >= n:
            valid = False
            break
        for k in range(1, need + 1):
            b = buf[s + i + k]
            if k == 1:
                if b < lo or b > hi:
                    valid = False
                    break
            elif b < 0x80 or b > 0xBF:
                valid = False
                break
        if not valid:
            break
        i += need + 1
    if valid:
        return n, True
    # Latin-1: every byte >= 0x80 becomes two bytes
    extra = 0
    for j in range(n):
        if buf[s + j] >= 0x80:
            extra += 1
    return n + extra, False


@njit(cache=True, nogil=True)
def _gather(buf, starts, lens, text):
    """Concatenate buf[start:start+len] per row (len < 0: null) -> (offsets int64, data).

    text=True makes every value valid UTF-8 (Latin-1 fallback)."""
    n = starts.shape[0]
    offsets = np.empty(n + 1, dtype=np.int64)
    is_utf8 = np.ones(n, dtype=np.bool_)
    total = 0
    offsets[0] = 0
    for r in range(n):
        ln = lens[r]
        if ln > 0:
            if text:
                out_len, ok = _utf8_len(buf, starts[r], ln)
                is_utf8[r] = ok
                total += out_len
            else:
                total += ln
        offsets[r + 1] = total
    data = np.empty(total, dtype=np.uint8)
    for r in range(n):
        ln = lens[r]
        if ln <= 0:
            continue
        o = offsets[r]
        s = starts[r]
        if is_utf8[r]:
            for k in range(ln):
                data[o + k] = buf[s + k]
        else:
            q = o
            for k in range(ln):
                c = buf[s + k]
                if c < 0x80:
                    data[q] = c
                    q += 1
                else:
                    data[q] = 0xC0 | (c >> 6)
                    data[q + 1] = 0x80 | (c & 0x3F)
                    q += 2
    return offsets, data


def _bitmap(valid: np.ndarray) -> tuple[pa.Buffer | None, int]:
    nulls = int(valid.shape[0] - np.count_nonzero(valid))
    if nulls == 0:
        return None, 0
    return pa.py_buffer(np.packbits(valid, bitorder="little")), nulls


def string_array(buf: np.ndarray, starts: np.ndarray, lens: np.ndarray, binary: bool = False) -> pa.Array:
    """Arrow string (or binary) array of buf[start:start+len]; len < 0 is null."""
    starts = np.ascontiguousarray(starts, dtype=np.int64)
    lens = np.ascontiguousarray(lens, dtype=np.int64)
    n = int(starts.shape[0])
    offsets, data = _gather(buf, starts, lens, not binary)
    valid = lens >= 0
    bm, nulls = _bitmap(valid)
    big = offsets[-1] >= 2**31 if n else False
    typ = (pa.large_binary() if big else pa.binary()) if binary else (pa.large_string() if big else pa.string())
    off = offsets if big else offsets.astype(np.int32)
    return pa.Array.from_buffers(typ, n, [bm, pa.py_buffer(off), pa.py_buffer(data)], null_count=nulls)


def char_array(values: np.ndarray, valid: np.ndarray) -> pa.Array:
    """C1 values (one byte each) as 1-character strings (Latin-1)."""
    b = np.ascontiguousarray(values, dtype=np.uint8)
    starts = np.arange(b.shape[0], dtype=np.int64)
    lens = np.where(valid, 1, -1).astype(np.int64)
    return string_array(b, starts, lens)


# ------------------------------------------------------------------ arrays


@njit(cache=True, nogil=True)
def _list_offsets(counts):
    """List offsets for rows of ``counts`` elements each (a negative count is an empty row)."""
    n = counts.shape[0]
    offsets = np.empty(n + 1, dtype=np.int64)
    offsets[0] = 0
    total = 0
    for r in range(n):
        if counts[r] > 0:
            total += counts[r]
        offsets[r + 1] = total
    return offsets


@njit(cache=True, nogil=True)
def _expand_fixed(buf, starts, counts, widths, be, signed, nibble):
    """Flatten fixed-width arrays (width per row; nibble=True: N1) -> (list offsets, int64 values)."""
    n = starts.shape[0]
    offsets = _list_offsets(counts)
    total = offsets[n]
    out = np.empty(total, dtype=np.int64)
    for r in range(n):
        c = counts[r]
        if c <= 0:
            continue
        o = offsets[r]
        s = starts[r]
        if nibble:
            for k in range(c):
                b = buf[s + k // 2]
                out[o + k] = (b >> 4) if (k & 1) else (b & 0x0F)
        else:
            w = widths[r]
            for k in range(c):
                out[o + k] = _rd_int(buf, s + k * w, w, be, signed)
    return offsets, out


@njit(cache=True, nogil=True)
def _expand_strings(buf, starts, counts, be, kind, widths):
    """Flatten arrays of strings: kind 0 = Cn, 1 = Sn, 2 = Cf (fixed width per row).

    Returns (list offsets, element starts, element lengths)."""
    n = starts.shape[0]
    offsets = _list_offsets(counts)
    total = offsets[n]
    es = np.empty(total, dtype=np.int64)
    el = np.empty(total, dtype=np.int64)
    for r in range(n):
        c = counts[r]
        if c <= 0:
            continue
        o = offsets[r]
        p = starts[r]
        for k in range(c):
            if kind == 0:
                ln = np.int64(buf[p])
                es[o + k] = p + 1
                el[o + k] = ln
                p += 1 + ln
            elif kind == 1:
                ln = np.int64(_rd_uint(buf, p, 2, be))
                es[o + k] = p + 2
                el[o + k] = ln
                p += 2 + ln
            else:
                w = widths[r]
                es[o + k] = p
                el[o + k] = w
                p += w
    return offsets, es, el


def _list_array(offsets: np.ndarray, values: pa.Array, valid: np.ndarray, item_type: pa.DataType) -> pa.Array:
    n = int(valid.shape[0])
    bm, nulls = _bitmap(valid)
    return pa.ListArray.from_buffers(pa.list_(item_type), n, [bm, pa.py_buffer(offsets.astype(np.int32))],
                                     null_count=nulls, children=[values])


def _numeric_from_int64(v: np.ndarray, t: str) -> np.ndarray:
    if t == "R4":
        return (v & 0xFFFFFFFF).astype(np.uint32).view(np.float32)
    if t == "R8":
        return np.ascontiguousarray(v).view(np.float64)
    if t in ("U8", "Uf"):
        return np.ascontiguousarray(v).view(np.uint64)
    return v.astype(R.NUMPY_DTYPE[t])


def column(buf: np.ndarray, big_endian: bool, rec: R.RecordDef, fi: int, val: np.ndarray, aux: np.ndarray,
           fields: tuple[R.Field, ...] | None = None) -> pa.Array:
    """Arrow array of field ``fi`` of ``rec`` from interpreter output."""
    fields = fields if fields is not None else rec.fields
    f = fields[fi]
    v = np.ascontiguousarray(val[:, fi])
    a = np.ascontiguousarray(aux[:, fi]).astype(np.int64)
    valid = a >= 0
    t = f.type
    if not f.is_array:
        if t == "C1":
            return char_array(v.astype(np.uint8), valid)
        if t in ("Cn", "Sn"):
            return string_array(buf, v, a)
        if t == "Bn":
            return string_array(buf, v, a, binary=True)
        if t == "Dn":
            return string_array(buf, v & DN_MASK, a, binary=True)
        arr = _numeric_from_int64(v, t)
        return pa.array(arr, type=R.NUMERIC_ARROW[t], mask=~valid if not valid.all() else None)
    counts = np.where(valid, a, 0).astype(np.int64)
    item = R._scalar_arrow(t)
    names = [x.name for x in fields]
    if t in ("Cn", "Sn", "Cf"):
        kind = {"Cn": 0, "Sn": 1, "Cf": 2}[t]
        widths = np.zeros(len(v), dtype=np.int64)
        if t == "Cf":
            widths = np.ascontiguousarray(val[:, names.index(f.width)]).astype(np.int64)
        offsets, es, el = _expand_strings(buf, v, counts, big_endian, kind, widths)
        values = string_array(buf, es, el)
        return _list_array(offsets, values, valid, item)
    if t == "Vn":
        return gdr_json(buf, v, counts, valid, big_endian)
    if t == "Uf":
        widths = np.ascontiguousarray(val[:, names.index(f.width)]).astype(np.int64)
        signed = False
    else:
        widths = np.full(len(v), max(R.FIXED_SIZE.get(t, 1), 1), dtype=np.int64)
        signed = t in ("I1", "I2", "I4", "I8")
    offsets, flat = _expand_fixed(buf, v, counts, widths, big_endian, signed, t == "N1")
    values = pa.array(_numeric_from_int64(flat, t), type=item)
    return _list_array(offsets, values, valid, item)


def columns(buf: np.ndarray, big_endian: bool, rec: R.RecordDef, val: np.ndarray, aux: np.ndarray,
            alt: bool = False, only: list[str] | None = None) -> dict[str, pa.Array]:
    fields = rec.alt_fields if alt else rec.fields
    out = {}
    for i, f in enumerate(fields):
        if only is not None and f.name not in only:
            continue
        out[f.name] = column(buf, big_endian, rec, i, val, aux, fields)
    return out


# ------------------------------------------------------------------ GDR values

@njit(cache=True, nogil=True)
def _gdr_items(buf, starts, counts, be):
    """Flatten GDR GEN_DATA: per item its type code, integer / float value, data span."""
    n = starts.shape[0]
    offsets = _list_offsets(counts)
    total = offsets[n]
    code = np.empty(total, dtype=np.int64)
    ival = np.zeros(total, dtype=np.int64)
    fval = np.zeros(total, dtype=np.float64)
    sst = np.zeros(total, dtype=np.int64)
    sln = np.full(total, -1, dtype=np.int64)
    tmp4 = np.zeros(1, dtype=np.uint32)
    tmp8 = np.zeros(1, dtype=np.uint64)
    f4 = tmp4.view(np.float32)
    f8 = tmp8.view(np.float64)
    for r in range(n):
        p = starts[r]
        for k in range(offsets[r], offsets[r + 1]):
            c = np.int64(buf[p])
            p += 1
            code[k] = c
            if c == 1 or c == 2 or c == 3:
                sz = 1 if c == 1 else (2 if c == 2 else 4)
                ival[k] = _rd_int(buf, p, sz, be, False)
                p += sz
            elif c == 4 or c == 5 or c == 6:
                sz = 1 if c == 4 else (2 if c == 5 else 4)
                ival[k] = _rd_int(buf, p, sz, be, True)
                p += sz
            elif c == 7:
                tmp4[0] = np.uint32(_rd_uint(buf, p, 4, be))
                fval[k] = f4[0]
                p += 4
            elif c == 8:
                tmp8[0] = _rd_uint(buf, p, 8, be)
                fval[k] = f8[0]
                p += 8
            elif c == 10 or c == 11:
                ln = np.int64(buf[p])
                sst[k] = p + 1
                sln[k] = ln
                p += 1 + ln
            elif c == 12:
                bits = np.int64(_rd_uint(buf, p, 2, be))
                nb = (bits + 7) // 8
                ival[k] = bits
                sst[k] = p + 2
                sln[k] = nb
                p += 2 + nb
            elif c == 13:
                ival[k] = np.int64(buf[p]) & 0x0F
                p += 1
    return offsets, code, ival, fval, sst, sln


def _json_float(x: float):
    if math.isfinite(x):
        return x
    return "NaN" if math.isnan(x) else ("Infinity" if x > 0 else "-Infinity")


def gdr_json(buf: np.ndarray, starts: np.ndarray, counts: np.ndarray, valid: np.ndarray, be: bool) -> pa.Array:
    """GDR GEN_DATA per record as JSON text: [[type_code, value], ...]; pads are [0, null]."""
    from .jsontext import json_text

    offsets, code, ival, fval, sst, sln = _gdr_items(buf, np.ascontiguousarray(starts, dtype=np.int64),
                                                     np.where(valid, counts, 0).astype(np.int64), be)
    m = len(code)
    val = pc.cast(pa.array(ival), pa.string())
    val = pc.if_else(pa.array(code == 0), "null", val)
    isf = (code == 7) | (code == 8)
    if isf.any():
        val = pc.if_else(pa.array(isf), json_text(pa.array(fval)), val)
    ist = code == 10
    if ist.any():
        txt = json_text(string_array(buf, sst, np.where(ist, sln, -1)))
        val = pc.if_else(pa.array(ist), txt, val)
    isb = (code == 11) | (code == 12)
    if isb.any():
        raw = string_array(buf, sst, np.where(isb, sln, -1), binary=True).to_pylist()
        iv = ival.tolist()
        fix = [None] * m
        for k in np.flatnonzero(isb).tolist():
            fix[k] = f'"{raw[k].hex()}"' if code[k] == 11 else f'{{"bits": {iv[k]}, "hex": "{raw[k].hex()}"}}'
        val = pc.if_else(pa.array(isb), pa.array(fix, pa.string()), val)
    items = pc.binary_join_element_wise("[", pc.cast(pa.array(code), pa.string()), ", ", val, "]", "")
    lst = pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), items)
    out = pc.binary_join_element_wise("[", pc.binary_join(lst, ", "), "]", "")
    return pc.if_else(pa.array(valid), out, pa.scalar(None, pa.string()))


# ------------------------------------------------------------------ test keys


@njit(cache=True, nogil=True)
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


# ------------------------------------------------------------------ default data

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


@njit(cache=True, nogil=True)
def _span(v, a, kind, esize):
    """(start, byte length) of a span-like default field value."""
    if kind == 3:
        return v & ((np.int64(1) << np.int64(40)) - 1), np.int64(a)
    if kind == 2:
        return v, np.int64(a) * esize
    return v, np.int64(a)


@njit(cache=True, nogil=True)
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
    for k in range(l1):
        if buf[s1 + k] != buf[s2 + k]:
            return False
    return True


@njit(cache=True, nogil=True)
def _is_nul_string(buf, v, a, kind):
    return kind == 1 and a == 1 and buf[v] == 0


@njit(cache=True, nogil=True)
def _is_blank(buf, v, a, kind, blank):
    if a < 0:
        return True
    if kind == 0:
        return blank >= 0 and v == blank
    if kind == 3:
        return (v >> np.int64(40)) == 0
    return a == 0


@njit(cache=True, nogil=True)
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
            v = val[r, i]
            a = aux[r, i]
            dval[t, j] = 0
            daux[t, j] = -1
            if a < 0:
                continue
            if none_bit[j] >= 0 and (ob >> none_bit[j]) & 1:
                continue
            if use_bit[j] >= 0 and (ob >> use_bit[j]) & 1:
                continue
            if kind[j] == 0 and blank[j] >= 0 and v == blank[j]:
                continue
            if _is_nul_string(buf, v, a, kind[j]):
                continue
            dval[t, j] = v
            daux[t, j] = a


@njit(cache=True, nogil=True)
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
            v = val[r, i]
            a = aux[r, i]
            # effective value (ev, ea)
            if has_opt and none_bit[j] >= 0 and (ob >> none_bit[j]) & 1:
                ev = np.int64(0)
                ea = np.int32(-1)
            elif has_opt and use_bit[j] >= 0 and (ob >> use_bit[j]) & 1:
                ev = dval[t, j]
                ea = daux[t, j]
            elif not _is_blank(buf, v, a, kind[j], blank[j]):
                if _is_nul_string(buf, v, a, kind[j]):
                    ev = np.int64(0)
                    ea = np.int32(-1)
                else:
                    ev = v
                    ea = np.int32(a)
            else:
                ev = dval[t, j]
                ea = daux[t, j]
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


# ------------------------------------------------------------------ part / wafer walk

NO_HS = 65536   # slot for records too short to hold HEAD_NUM / SITE_NUM


@njit(cache=True, nogil=True)
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


@njit(cache=True, nogil=True)
def _remap(rec_part, rank, n_parts):
    for i in range(rec_part.shape[0]):
        p = rec_part[i]
        rec_part[i] = rank[p] if p >= 0 else -1


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
    keep = (part_pir >= 0) | (part_prr >= 0)
    key = np.where(part_prr >= 0, part_prr, n + part_first)
    kept = np.flatnonzero(keep)
    order = kept[np.argsort(key[kept], kind="stable")]
    rank = np.full(n_parts + 1, -1, dtype=np.int64)
    rank[order] = np.arange(order.shape[0])
    _remap(rec_part, rank, n_parts)
    return Walk(rec_part=rec_part, part_pir=part_pir[order], part_prr=part_prr[order],
                part_first=part_first[order], part_head=part_head[order], part_site=part_site[order],
                part_wafer=part_wafer[order], part_results=part_results[order], wafer_wir=wafer_wir,
                wafer_wrr=wafer_wrr, wafer_head=wafer_head)


# ------------------------------------------------------------------ grouping by record code


@njit(cache=True, nogil=True)
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


# ------------------------------------------------------------------ the PTR kernel

# PTR field positions (records.py order) and its default-data fields, in override-bit order:
# RES_SCAL LLM_SCAL HLM_SCAL LO_LIMIT HI_LIMIT UNITS C_RESFMT C_LLMFMT C_HLMFMT LO_SPEC HI_SPEC
PTR_DEFAULT_FIELDS = ("RES_SCAL", "LLM_SCAL", "HLM_SCAL", "LO_LIMIT", "HI_LIMIT", "UNITS", "C_RESFMT",
                      "C_LLMFMT", "C_HLMFMT", "LO_SPEC", "HI_SPEC")
_PTR_USE = np.array([0, 4, 5, 4, 5, -1, -1, -1, -1, -1, -1], dtype=np.int64)
_PTR_NONE = np.array([-1, 6, 7, 6, 7, -1, -1, -1, -1, 2, 3], dtype=np.int64)
_PTR_KIND = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0], dtype=np.int64)   # 0 number, 1 string


@njit(cache=True, nogil=True)
def _hash_slot(keys, key):
    mask = keys.shape[0] - 1
    h = (np.uint64(key) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(40)
    s = np.int64(h) & mask
    while keys[s] != -2 and keys[s] != key:
        s = (s + 1) & mask
    return s


@njit(cache=True, nogil=True)
def _span_eq(buf, s1, l1, s2, l2):
    if l1 != l2:
        return False
    k = 0
    while k + 4 <= l1:
        if _u4(buf, s1 + k, False) != _u4(buf, s2 + k, False):
            return False
        k += 4
    while k < l1:
        if buf[s1 + k] != buf[s2 + k]:
            return False
        k += 1
    return True


@njit(cache=True, nogil=True)
def _ptr_kernel(buf, offs, lens, codes, ptr_code, rec_part, i0, i1, be, use_bit, none_bit, kind,
                r0, nt0, nov0, base, tpos0, apos0,
                rec_idx, part_idx, test_num, head, site, test_flg, parm_flg, result, opt_flag, nfields,
                txt_off, txt_data, txt_valid, alm_off, alm_data, alm_valid, mask,
                hkeys, hvals, t_key, t_first, t_cnt, t_opt, t_txs, t_txl, t_tls, t_tll, t_nf, dv, da,
                ov_row, ov_field, ov_val, ov_len):
    """Decode PTRs from record ``r0`` on, in one pass; default-data rule and test table inline.

    Per record: the fixed fields, ``nfields`` (how many fields are present: truncation is
    monotonic), TEST_TXT (null when equal to the test's first TEST_TXT) and ALARM_ID written
    straight into Arrow string buffers (int32 offsets, data, validity bits), the override
    mask and, sparsely (ov_*), the overriding values. ``base`` is the ordinal of record 0
    of this chunk among all PTRs (test first-record positions are global).

    Resumable: no array is ever reallocated in here (that would put reference counting in
    the loop); when the test arrays, the hash or the override arrays are full it returns
    (record, tests, overrides, status) and the caller grows them and calls again.
    status: 0 done, 1 grow tests, 2 grow hash, 3 grow overrides.
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
    for i in range(i0, i1):
        if codes[i] != ptr_code:
            continue
        if nt >= cap:
            return i, r + 1, nt, nov, tpos, apos, 1
        if (nt + 1) * 2 > hsize:
            return i, r + 1, nt, nov, tpos, apos, 2
        if nov + ND > ovcap:
            return i, r + 1, nt, nov, tpos, apos, 3
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
            tn = _u4(buf, p, be)
            p += 4
            nf = 1
            s0 = _hash_slot(hkeys, tn)
            if hkeys[s0] == tn:
                fast_t = hvals[s0]
            if p + 4 > end:
                if p + 1 <= end:
                    hd = buf[p]
                    nf = 2
                    if p + 2 <= end:
                        st = buf[p + 1]
                        nf = 3
                        if p + 3 <= end:
                            tf = buf[p + 2]
                            nf = 4
                break
            hd = buf[p]
            st = buf[p + 1]
            tf = buf[p + 2]
            pf = buf[p + 3]
            p += 4
            nf = 5
            if p + 4 > end:
                break
            res = np.uint32(_u4(buf, p, be))
            p += 4
            nf = 6
            if p + 1 > end:
                break
            ln = np.int64(buf[p])
            if p + 1 + ln > end:
                break
            ts = p + 1
            tl = ln
            p += 1 + ln
            nf = 7
            if p + 1 > end:
                break
            ln = np.int64(buf[p])
            if p + 1 + ln > end:
                break
            als = p + 1
            all_ = ln
            p += 1 + ln
            nf = 8
            tail_s = p
            if p + 1 > end:
                break
            if fast_t >= 0 and t_tll[fast_t] == end - p and _span_eq(buf, p, end - p, t_tls[fast_t],
                                                                      t_tll[fast_t]):
                ob = np.int64(buf[p])
                nf = t_nf[fast_t]
                same_tail = True
                break
            ob = np.int64(buf[p])
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
                x = np.int64(buf[p])
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
                v[k] = _u4(buf, p, be)
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
                ln = np.int64(buf[p])
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
                v[k] = _u4(buf, p, be)
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
            for q in range(all_):
                alm_data[apos + q] = buf[als + q]
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
                if kind[k] == 1 and a[k] == 1 and buf[v[k]] == 0:
                    continue
                dv[t, k] = v[k]
                da[t, k] = a[k]
        t_cnt[t] += 1
        # TEST_TXT: null when equal to the test's
        if tl >= 0 and not (t_txl[t] == tl and _span_eq(buf, ts, tl, t_txs[t], t_txl[t])):
            for q in range(tl):
                txt_data[tpos + q] = buf[ts + q]
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
                    if kind[k] == 1 and a[k] == 1 and buf[v[k]] == 0:
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
        mask[r] = m
    return i1, r + 1, nt, nov, tpos, apos, 0


@njit(cache=True, nogil=True)
def _grow1(a, n):
    b = np.empty(n, dtype=a.dtype)
    b[:a.shape[0]] = a
    return b


@njit(cache=True, nogil=True)
def _grow2(a, n):
    b = np.empty((n, a.shape[1]), dtype=a.dtype)
    b[:a.shape[0]] = a
    return b


@njit(cache=True, nogil=True)
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


@njit(cache=True, nogil=True)
def _is_ascii(data):
    for i in range(data.shape[0]):
        if data[i] >= 0x80:
            return False
    return True


def text_array(off: np.ndarray, data: np.ndarray, valid: np.ndarray, n: int) -> pa.Array:
    """Arrow string array from int32 offsets, data and validity bits; non-UTF-8 values as Latin-1."""
    nulls = n - int(np.unpackbits(valid, bitorder="little", count=n).sum()) if n else 0
    if not _is_ascii(data):
        lens = np.diff(off).astype(np.int64)
        bits = np.unpackbits(valid, bitorder="little", count=n).astype(bool)
        return string_array(data, off[:-1].astype(np.int64), np.where(bits, lens, -1))
    bm = pa.py_buffer(valid) if nulls else None
    return pa.Array.from_buffers(pa.string(), n, [bm, pa.py_buffer(off), pa.py_buffer(data)], null_count=nulls)


PTR_CHUNK_BYTES = (1 << 31) - (1 << 20)   # string offsets are int32: chunk so they always fit


@njit(cache=True, nogil=True)
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
    cap, ovcap = 256, 4096
    hkeys = np.full(1024, -2, np.int64)
    hvals = np.zeros(1024, np.int64)
    t = [np.empty(cap, np.int64) for _ in range(9)]
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


# ------------------------------------------------------------------ Arrow helpers for kernel output


@njit(cache=True, nogil=True)
def _bitmap_ge(nf, k):
    """Validity bitmap (LSB first) of nf >= k, and the null count."""
    n = nf.shape[0]
    out = np.zeros((n + 7) // 8, dtype=np.uint8)
    nulls = 0
    for i in range(n):
        if nf[i] >= k:
            out[i >> 3] |= np.uint8(1 << (i & 7))
        else:
            nulls += 1
    return out, nulls


@njit(cache=True, nogil=True)
def _bitmap_nonneg(x):
    n = x.shape[0]
    out = np.zeros((n + 7) // 8, dtype=np.uint8)
    nulls = 0
    for i in range(n):
        if x[i] >= 0:
            out[i >> 3] |= np.uint8(1 << (i & 7))
        else:
            nulls += 1
    return out, nulls


class _Zeros:
    """One lazily-zeroed buffer shared by all-null columns (calloc: pages are never touched)."""

    def __init__(self):
        self.buf = None
        self.size = 0

    def get(self, nbytes: int) -> pa.Buffer:
        if self.buf is None or nbytes > self.size:
            self.size = max(nbytes, 1 << 16)
            self.buf = pa.py_buffer(np.zeros(self.size, dtype=np.uint8))
        return self.buf.slice(0, max(nbytes, 0))


ZEROS = _Zeros()


def null_array(typ: pa.DataType, n: int) -> pa.Array:
    """An all-null array without touching n * width bytes."""
    bm = ZEROS.get((n + 7) // 8)
    if pa.types.is_string(typ) or pa.types.is_binary(typ):
        return pa.Array.from_buffers(typ, n, [bm, ZEROS.get(4 * (n + 1)), ZEROS.get(0)], null_count=n)
    if pa.types.is_list(typ):
        return pa.Array.from_buffers(typ, n, [bm, ZEROS.get(4 * (n + 1))], null_count=n,
                                     children=[pa.array([], typ.value_type)])
    width = typ.bit_width // 8
    return pa.Array.from_buffers(typ, n, [bm, ZEROS.get(width * n)], null_count=n)


def fixed_array(values: np.ndarray, typ: pa.DataType, nf: np.ndarray | None = None, k: int = 0,
                nf_min: int = 255) -> pa.Array:
    """Arrow array over ``values`` (zero-copy) with validity nf >= k."""
    n = int(values.shape[0])
    if nf is None or nf_min >= k:
        return pa.Array.from_buffers(typ, n, [None, pa.py_buffer(values)], null_count=0)
    bm, nulls = _bitmap_ge(nf, k)
    if nulls == n:
        return null_array(typ, n)
    return pa.Array.from_buffers(typ, n, [pa.py_buffer(bm), pa.py_buffer(values)], null_count=nulls)


def nullable_int(values: np.ndarray, typ: pa.DataType) -> pa.Array:
    """Integers with negative = null."""
    v = np.ascontiguousarray(values)
    n = int(v.shape[0])
    bm, nulls = _bitmap_nonneg(v)
    data = v.astype(typ.to_pandas_dtype(), copy=False)
    return pa.Array.from_buffers(typ, n, [pa.py_buffer(bm) if nulls else None, pa.py_buffer(data)],
                                 null_count=nulls)
