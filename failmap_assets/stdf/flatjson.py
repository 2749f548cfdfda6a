"""JSON objects for "flat" records in one Numba pass (the ``generic`` table's ``fields``).

A flat record has only integer, C1 and Cn / Sn fields and arrays of those (PMR, PCR, ATR, DTR,
BPS, EPS, CNR, PLR, PGR, RDR, PSR, NMR, SSR, CDR; FAR / MIR / MRR repeats): no floats, bytes,
bit fields, GDR values or STR's sized arrays. Files of many small parts carry a
PMR per pin: building their JSON column by column through Arrow compute (``jsontext.objects``)
was a third of the parse time. ``flat_objects`` writes the same text straight from the
field interpreter's ``val`` / ``aux`` matrices: the same keys, separators, integer text,
``null`` for missing fields, and strings made valid UTF-8 (Latin-1 fallback) and escaped
as ``json.dumps(ensure_ascii=False)`` does (tests/stdf/test_flatjson.py holds the two
equal on every real file and on mutated / truncated records).
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa

from failmap_assets.kernels.jit import kernel
from failmap_assets.kernels.memcpy import put_bytes
from . import records as R
from .decode.primitives import _rd_int, _rd_uint
from .decode.strings import _is_utf8, _utf8_len
from .jsontext import HEX_DIGITS, SHORT_ESCAPES, put_json_int, put_json_null, put_json_string, put_json_uint

K_INT, K_U8, K_C1, K_TEXT = 0, 1, 2, 3
K_AINT, K_AU8, K_AN1, K_ACN, K_ASN = 4, 5, 6, 7, 8      # arrays: JSON lists
_KIND = {"U1": K_INT, "U2": K_INT, "U4": K_INT, "I1": K_INT, "I2": K_INT, "I4": K_INT, "I8": K_INT, "B1": K_INT,
         "U8": K_U8, "C1": K_C1, "Cn": K_TEXT, "Sn": K_TEXT}
_ARRAY_KIND = {"U1": K_AINT, "U2": K_AINT, "U4": K_AINT, "I1": K_AINT, "I2": K_AINT, "I4": K_AINT, "I8": K_AINT,
               "B1": K_AINT, "U8": K_AU8, "N1": K_AN1, "Cn": K_ACN, "Sn": K_ASN}


def _kind(f: R.Field) -> int | None:
    return (_ARRAY_KIND if f.is_array else _KIND).get(f.type)


def is_flat(rec: R.RecordDef) -> bool:
    """True when ``flat_objects`` can write every field of ``rec``: integers, C1, Cn / Sn and
    arrays of those (not floats, bytes, bit fields, GDR values or STR's sized arrays)."""
    return rec.alt_fields is None and all(_kind(f) is not None for f in rec.fields)


def is_scalar(rec: R.RecordDef) -> bool:
    """True for a flat record without arrays: ``scalar_objects`` reads it straight."""
    return is_flat(rec) and not any(f.is_array for f in rec.fields)


@kernel
def _text_size(buf, s, n):
    """(bytes of the JSON string literal of buf[s:s+n] as put_json_string writes it, valid UTF-8).

    One pass; the UTF-8 check runs only for text with bytes >= 0x80 (ASCII is valid)."""
    m = 2
    high = 0
    for k in range(n):
        c = buf[s + k]
        if c == 34 or c == 92:
            m += 2
        elif c < 0x20:
            m += 2 if (8 <= c <= 13 and c != 11) else 6
        else:
            m += 1
            if c >= 0x80:
                high += 1
    if high == 0:
        return m, True
    _, ok = _utf8_len(buf, s, n)
    return (m, True) if ok else (m + high, False)   # Latin-1: each high byte becomes two


@kernel
def _array_room(buf, s, k, kd, esize, be):
    """Upper bound of the JSON list text of an array field, or -1 when it runs past ``buf``."""
    nbuf = buf.shape[0]
    if kd == K_AINT or kd == K_AU8:
        if s + k * esize > nbuf:
            return -1
        return 2 + k * 22
    if kd == K_AN1:
        if s + (k + 1) // 2 > nbuf:
            return -1
        return 2 + k * 4
    m = np.int64(2)
    p = s
    for _j in range(k):
        w = 1 if kd == K_ACN else 2
        if p + w > nbuf:
            return -1
        ln = np.int64(buf[p]) if kd == K_ACN else np.int64(_rd_uint(buf, p, 2, be))
        if p + w + ln > nbuf:
            return -1
        e, _ = _text_size(buf, p + w, ln)
        m += 2 + e
        p += w + ln
    return m


@kernel
def _put_array(out, q, buf, s, k, kd, esize, signed, be, hexd, esc):
    out[q] = 91
    q += 1
    p = s
    for j in range(k):
        if j:
            out[q] = 44
            out[q + 1] = 32
            q += 2
        if kd == K_AINT:
            q = put_json_int(out, q, _rd_int(buf, s + j * esize, esize, be, signed))
        elif kd == K_AU8:
            q = put_json_uint(out, q, _rd_uint(buf, s + j * esize, 8, be))
        elif kd == K_AN1:
            b = buf[s + j // 2]
            q = put_json_int(out, q, np.int64((b >> 4) if (j & 1) else (b & 0x0F)))
        else:
            w = 1 if kd == K_ACN else 2
            ln = np.int64(buf[p]) if kd == K_ACN else np.int64(_rd_uint(buf, p, 2, be))
            _, ok = _utf8_len(buf, p + w, ln)
            q = put_json_string(out, q, buf, p + w, ln, hexd, esc, ok)
            p += w + ln
    out[q] = 93
    return q + 1


@kernel
def _flat_json(buf, val, aux, kinds, esize, signed, be, keys, key_off, hexd, esc):
    """One JSON object per row of val / aux -> (int64 offsets, bytes, ok).

    Two passes: room per record (scalar text gets its worst case, 2 + 6 bytes a byte, so its
    bytes are read once, in the second pass), then the text. ok is False (and nothing is written) when the matrices do not match the field list or a
    string or array lies outside ``buf``; the interpreter never produces either."""
    n = val.shape[0]
    nf = kinds.shape[0]
    nbuf = buf.shape[0]
    roff = np.zeros(n + 1, dtype=np.int64)
    if val.shape[1] != nf or aux.shape[0] != n or aux.shape[1] != nf or key_off.shape[0] != nf + 1 \
            or key_off[nf] > keys.shape[0] or esize.shape[0] != nf or signed.shape[0] != nf:
        return roff, np.zeros(0, dtype=np.uint8), False
    total = np.int64(0)
    for r in range(n):
        m = np.int64(key_off[nf]) + 1 + (1 if nf == 0 else 0)
        for i in range(nf):
            a = np.int64(aux[r, i])
            if a < 0:
                m += 4
                continue
            kd = kinds[i]
            s = val[r, i]
            if kd >= K_AINT:
                room = _array_room(buf, s, a, kd, esize[i], be) if s >= 0 else -1
                if room < 0:
                    return roff, np.zeros(0, dtype=np.uint8), False
                m += room
            elif kd == K_TEXT:
                if s < 0 or s + a > nbuf:
                    return roff, np.zeros(0, dtype=np.uint8), False
                m += 2 + 6 * a          # room for the worst escape; the text is read once, below
            elif kd == K_C1:
                m += 8
            else:
                m += 20
        total += m
    out = np.empty(total, dtype=np.uint8)
    c1 = np.empty(1, dtype=np.uint8)
    q = np.int64(0)
    for r in range(n):
        if nf == 0:
            out[q] = 123
            q += 1
        for i in range(nf):
            q = put_bytes(out, q, keys, key_off[i], key_off[i + 1])
            a = np.int64(aux[r, i])
            if a < 0:
                q = put_json_null(out, q)
                continue
            kd = kinds[i]
            v = val[r, i]
            if kd >= K_AINT:
                q = _put_array(out, q, buf, v, a, kd, esize[i], signed[i], be, hexd, esc)
            elif kd == K_TEXT:
                q = put_json_string(out, q, buf, v, a, hexd, esc, _is_utf8(buf, v, a))
            elif kd == K_C1:
                c1[0] = np.uint8(v & 0xFF)
                q = put_json_string(out, q, c1, 0, 1, hexd, esc, c1[0] < 0x80)
            elif kd == K_U8:
                q = put_json_uint(out, q, np.uint64(v))
            else:
                q = put_json_int(out, q, v)
        out[q] = 125
        q += 1
        roff[r + 1] = q
    return roff, out[:q], True


@kernel
def _scalar_json(buf, offs, lens, be, kinds, esize, signed, keys, key_off, hexd, esc):
    """One JSON object per record at ``offs`` (header offsets; body lengths ``lens``) of a
    flat record without arrays -> (int64 offsets, bytes, body bytes used, ok).

    The interpreter's rules, fused with ``_flat_json``'s text: a field that does not fit in
    the body is ``null``, and so is every later field. ok is False (nothing written) when a
    record lies outside ``buf`` or the layout arrays disagree."""
    n = offs.shape[0]
    nf = kinds.shape[0]
    nbuf = buf.shape[0]
    roff = np.zeros(n + 1, dtype=np.int64)
    used = np.zeros(n, dtype=np.int64)
    if lens.shape[0] != n or esize.shape[0] != nf or signed.shape[0] != nf or key_off.shape[0] != nf + 1 \
            or key_off[0] < 0 or key_off[nf] > keys.shape[0]:
        return roff, np.zeros(0, dtype=np.uint8), used, False
    for i in range(nf):         # a layout this kernel can read (never past a record's end)
        sz = esize[i]
        kd = kinds[i]
        if key_off[i + 1] < key_off[i] or not ((kd == K_TEXT and (sz == 1 or sz == 2))
                                                or (kd == K_C1 and sz == 1) or (kd == K_U8 and sz == 8)
                                                or (kd == K_INT and (sz == 1 or sz == 2 or sz == 4 or sz == 8))):
            return roff, np.zeros(0, dtype=np.uint8), used, False
    # room: keys, braces, 20 per number or null, 8 per C1, and 2 + 6 per byte of text, which
    # together is at most the body's length (the text itself is read once, below)
    per = np.int64(key_off[nf]) + 2 + 20 * nf
    total = np.int64(0)
    for r in range(n):
        if offs[r] < 0 or lens[r] < 0 or offs[r] + 4 + lens[r] > nbuf:
            return roff, np.zeros(0, dtype=np.uint8), used, False
        total += per + 6 * np.int64(lens[r])
    out = np.empty(total, dtype=np.uint8)
    c1 = np.empty(1, dtype=np.uint8)
    q = np.int64(0)
    for r in range(n):
        start = offs[r] + 4
        pos = start
        end = start + np.int64(lens[r])
        trunc = False
        if nf == 0:
            out[q] = 123
            q += 1
        for i in range(nf):
            q = put_bytes(out, q, keys, key_off[i], key_off[i + 1])    # memcpy: a byte loop was 40 %
            kd = kinds[i]
            if not trunc:
                if kd == K_TEXT:
                    w = esize[i]            # length bytes: 1 (Cn) or 2 (Sn)
                    if pos + w > end:
                        trunc = True
                    else:
                        ln = np.int64(buf[pos]) if w == 1 else np.int64(_rd_uint(buf, pos, 2, be))
                        if pos + w + ln > end:
                            trunc = True
                        else:
                            s = pos + w
                            q = put_json_string(out, q, buf, s, ln, hexd, esc, _is_utf8(buf, s, ln))
                            pos = s + ln
                else:
                    sz = esize[i]
                    if pos + sz > end:
                        trunc = True
                    elif kd == K_C1:
                        c1[0] = buf[pos]
                        q = put_json_string(out, q, c1, 0, 1, hexd, esc, c1[0] < 0x80)
                        pos += 1
                    elif kd == K_U8:
                        q = put_json_uint(out, q, _rd_uint(buf, pos, 8, be))
                        pos += 8
                    else:
                        q = put_json_int(out, q, _rd_int(buf, pos, sz, be, signed[i]))
                        pos += sz
            if trunc:
                q = put_json_null(out, q)
        out[q] = 125
        q += 1
        roff[r + 1] = q
        used[r] = pos - start
    return roff, out[:q], used, True


class _Layout:
    def __init__(self, rec: R.RecordDef):
        self.kinds = np.array([_kind(f) for f in rec.fields], dtype=np.int64)
        self.esize = np.array([R.FIXED_SIZE.get(f.type, 0) for f in rec.fields], dtype=np.int64)
        self.signed = np.array([f.type in ("I1", "I2", "I4", "I8") for f in rec.fields], dtype=np.bool_)
        keys = b""
        off = [0]
        for i, f in enumerate(rec.fields):
            keys += (("{" if i == 0 else ", ") + json.dumps(f.name) + ": ").encode()
            off.append(len(keys))
        self.keys = np.frombuffer(keys or b"\0", dtype=np.uint8)
        self.key_off = np.array(off, dtype=np.int64)
        # scalar_objects: the length bytes of a string field in place of its element size
        self.width = np.array([{"Cn": 1, "Sn": 2}.get(f.type, R.FIXED_SIZE.get(f.type, 0)) for f in rec.fields],
                              dtype=np.int64)


_LAYOUTS: dict[str, _Layout] = {}


def _layout(rec: R.RecordDef) -> _Layout:
    lay = _LAYOUTS.get(rec.name)
    if lay is None:
        lay = _LAYOUTS[rec.name] = _Layout(rec)
    return lay


def _string_array(n: int, roff: np.ndarray, out: np.ndarray) -> pa.Array:
    if roff[-1] >= 2**31:
        return pa.Array.from_buffers(pa.large_string(), n, [None, pa.py_buffer(roff), pa.py_buffer(out)])
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(roff.astype(np.int32)), pa.py_buffer(out)])


def scalar_objects(buf: np.ndarray, rec: R.RecordDef, offs: np.ndarray, lens: np.ndarray, big_endian: bool
                   ) -> tuple[pa.Array, np.ndarray]:
    """``flat_objects`` of the records at ``offs`` (header offsets, body lengths ``lens``) of
    an ``is_scalar`` record, read straight from ``buf``; and each record's body bytes used
    (the interpreter's ``used``)."""
    if not is_scalar(rec):
        raise ValueError(f"{rec.name} has arrays or fields that are not flat")
    lay = _layout(rec)
    roff, out, used, ok = _scalar_json(buf, np.ascontiguousarray(offs, dtype=np.int64),
                                       np.ascontiguousarray(lens, dtype=np.int64), big_endian, lay.kinds,
                                       lay.width, lay.signed, lay.keys, lay.key_off, HEX_DIGITS, SHORT_ESCAPES)
    if not ok:
        raise ValueError(f"{rec.name}: a record lies outside the buffer")
    return _string_array(int(offs.shape[0]), roff, out), used


def flat_objects(buf: np.ndarray, rec: R.RecordDef, val: np.ndarray, aux: np.ndarray, big_endian: bool
                 ) -> pa.Array:
    """``jsontext.objects`` of ``columns(buf, be, rec, val, aux)`` for a flat ``rec``, in one pass."""
    lay = _layout(rec)
    n = int(val.shape[0])
    # row-major copies: the kernel reads each record's fields together
    roff, out, ok = _flat_json(buf, np.ascontiguousarray(val), np.ascontiguousarray(aux), lay.kinds, lay.esize,
                               lay.signed, big_endian, lay.keys, lay.key_off, HEX_DIGITS, SHORT_ESCAPES)
    if not ok:
        raise ValueError(f"{rec.name}: field matrices do not match the record layout")
    return _string_array(n, roff, out)
