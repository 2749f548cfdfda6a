"""Strings out of the record bytes into Arrow: UTF-8 check with Latin-1 fallback, gathering
of byte spans into one buffer, and the string / binary / C1 array builders.

Shared by the column conversion, GDR values and the PTR kernel's text columns, so it
depends on nothing else in the package.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from failmap_assets.kernels.jit import inlined, kernel


@kernel
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


@inlined
def _is_utf8(buf, s, n):
    """The text rule's test: buf[s:s+n] is written as UTF-8 when it is valid UTF-8 (ASCII always
    is: the full check runs only from the first byte >= 0x80), else as Latin-1."""
    for k in range(n):
        if buf[s + k] >= 0x80:
            _, ok = _utf8_len(buf, s, n)
            return ok
    return True


@kernel
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
        if lens[r] > 0:
            _put_text(buf, starts[r], lens[r], is_utf8[r], data, offsets[r])
    return offsets, data


@inlined
def _put_text(buf, s, ln, utf8, data, o):
    """buf[s:s+ln] copied to data[o:] as UTF-8: as is when ``utf8`` (``_utf8_len``'s verdict),
    else transcoded from Latin-1 (``_utf8_len`` bytes); returns the end in ``data``."""
    if utf8:
        for k in range(ln):
            data[o + k] = buf[s + k]
        return o + ln
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
    return q


_ONES = np.array([bin(b).count("1") for b in range(256)], np.int64)     # set bits per byte value


@kernel
def _valid_count(valid, n):
    """Set bits among the first ``n`` of a validity bitmap (LSB first; bits past the bitmap
    count as unset): a kernel's null count, without unpacking n bits into n bytes (~7x)."""
    full = min(n >> 3, valid.shape[0])
    c = 0
    for i in range(full):
        c += _ONES[valid[i]]
    if n & 7 and full < valid.shape[0]:
        c += _ONES[valid[full] & ((1 << (n & 7)) - 1)]
    return c


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


@kernel
def _is_ascii(data):
    """No byte >= 0x80: 8 bytes at a time, OR-reduced in blocks (a loop LLVM vectorises)."""
    n = data.shape[0]
    n8 = n // 8
    words = data[:8 * n8].view(np.uint64)
    hi = np.uint64(0x8080808080808080)
    for b in range(0, n8, 512):
        acc = np.uint64(0)
        for i in range(b, min(b + 512, n8)):
            acc |= words[i]
        if acc & hi:
            return False
    for i in range(8 * n8, n):
        if data[i] >= 0x80:
            return False
    return True


def text_array(off: np.ndarray, data: np.ndarray, valid: np.ndarray | None, n: int, nulls: int | None = None
               ) -> pa.Array:
    """Arrow string array from int32 offsets, data and validity bits (None: all valid);
    non-UTF-8 values as Latin-1. ``nulls``: the null count, when the caller knows it."""
    if valid is None:
        nulls = 0
    elif nulls is None:
        nulls = n - _valid_count(valid, n)
    if not _is_ascii(data):
        lens = np.diff(off).astype(np.int64)
        if valid is None:
            return string_array(data, off[:-1].astype(np.int64), lens)
        bits = np.unpackbits(valid, bitorder="little", count=n).astype(bool)
        return string_array(data, off[:-1].astype(np.int64), np.where(bits, lens, -1))
    bm = pa.py_buffer(valid) if nulls else None
    return pa.Array.from_buffers(pa.string(), n, [bm, pa.py_buffer(off), pa.py_buffer(data)], null_count=nulls)


def char_array(values: np.ndarray, valid: np.ndarray) -> pa.Array:
    """C1 values (one byte each) as 1-character strings (Latin-1)."""
    b = np.ascontiguousarray(values, dtype=np.uint8)
    starts = np.arange(b.shape[0], dtype=np.int64)
    lens = np.where(valid, 1, -1).astype(np.int64)
    return string_array(b, starts, lens)
