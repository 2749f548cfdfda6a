"""Byte-level primitives of the decoders: unsigned / signed integers of 1, 2, 4 or 8 bytes
in either byte order, and the size of one GDR (Vn) value.

Lowest layer of the package: every kernel that reads record bytes calls these, so
they sit apart (Numba inlines them into the callers at compile time).
"""

from __future__ import annotations

import numpy as np

from failmap_assets.kernels.jit import inlined, kernel


@kernel
def _u2(buf, p, be):
    if be:
        return (np.int64(buf[p]) << 8) | np.int64(buf[p + 1])
    return np.int64(buf[p]) | (np.int64(buf[p + 1]) << 8)


@kernel
def _u4(buf, p, be):
    """U4 at p, as explicit byte arithmetic (LLVM turns it into one load, plus bswap for BE)."""
    if be:
        return (np.int64(buf[p]) << 24) | (np.int64(buf[p + 1]) << 16) | (np.int64(buf[p + 2]) << 8) | \
            np.int64(buf[p + 3])
    return np.int64(buf[p]) | (np.int64(buf[p + 1]) << 8) | (np.int64(buf[p + 2]) << 16) | \
        (np.int64(buf[p + 3]) << 24)


@kernel
def _u8(buf, p, be):
    v = np.uint64(0)
    if be:
        for k in range(8):
            v = (v << np.uint64(8)) | np.uint64(buf[p + k])
    else:
        for k in range(8):
            v = v | (np.uint64(buf[p + k]) << np.uint64(8 * k))
    return v


@kernel
def _rd_uint(buf, pos, size, be):
    """Unsigned integer of 1, 2, 4 or 8 bytes at pos (explicit sizes: a generic byte loop is 2x slower)."""
    if size == 1:
        return np.uint64(buf[pos])
    if size == 2:
        return np.uint64(_u2(buf, pos, be))
    if size == 4:
        return np.uint64(_u4(buf, pos, be))
    return _u8(buf, pos, be)


@kernel
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


@inlined
def _vn_size(buf, p, end, code, be):
    """Bytes of a GDR item's data after its type byte at p-1 (a Vn element), or -1 when the
    type code is unknown or the data does not end by ``end``."""
    if code == 0:
        sz = np.int64(0)
    elif code == 1 or code == 4 or code == 13:
        sz = np.int64(1)
    elif code == 2 or code == 5:
        sz = np.int64(2)
    elif code == 3 or code == 6 or code == 7:
        sz = np.int64(4)
    elif code == 8:
        sz = np.int64(8)
    elif code == 10 or code == 11:
        if p >= end:
            return np.int64(-1)
        sz = 1 + np.int64(buf[p])
    elif code == 12:
        if p + 2 > end:
            return np.int64(-1)
        sz = 2 + (np.int64(_rd_uint(buf, p, 2, be)) + 7) // 8
    else:
        return np.int64(-1)
    if p + sz > end:
        return np.int64(-1)
    return sz


# Byte reads at positions known to be >= 0 index with uint64: a signed index makes Numba
# emit a negative-index wraparound per byte, which also stops LLVM merging the byte loads of
# a word into one load (that cost most of the PTR kernel's time).
@kernel
def _byte(buf, p):
    return buf[np.uint64(p)]


@kernel
def _w8(buf, p):
    """8 bytes at p (p >= 0) as one little-endian word: compared for equality only."""
    q = np.uint64(p)
    w = np.uint64(0)
    for k in range(8):
        w |= np.uint64(buf[q + np.uint64(k)]) << np.uint64(8 * k)
    return w


@kernel
def _w2(buf, p, be):
    """U2 at p (p >= 0), as _u2."""
    q = np.uint64(p)
    b0 = np.int64(buf[q])
    b1 = np.int64(buf[q + np.uint64(1)])
    if be:
        return (b0 << 8) | b1
    return b0 | (b1 << 8)


@kernel
def _w4(buf, p, be):
    """U4 at p (p >= 0), as _u4."""
    q = np.uint64(p)
    b0 = np.int64(buf[q])
    b1 = np.int64(buf[q + np.uint64(1)])
    b2 = np.int64(buf[q + np.uint64(2)])
    b3 = np.int64(buf[q + np.uint64(3)])
    if be:
        return (b0 << 24) | (b1 << 16) | (b2 << 8) | b3
    return b0 | (b1 << 8) | (b2 << 16) | (b3 << 24)


@kernel
def _span_eq(buf, s1, l1, s2, l2):
    """buf[s1:s1+l1] == buf[s2:s2+l2], for spans inside buf (starts >= 0)."""
    if l1 != l2:
        return False
    k = 0
    while k + 8 <= l1:
        if _w8(buf, s1 + k) != _w8(buf, s2 + k):
            return False
        k += 8
    while k < l1:
        if _byte(buf, s1 + k) != _byte(buf, s2 + k):
            return False
        k += 1
    return True


#: records a kernel fetches ahead of decoding them, when they lie far apart (``_touch``)
AHEAD = 16


@inlined
def _touch(buf, s, n, nbuf):
    """The first and last byte of the record of n bytes at s (0 when it is not inside buf).
    A kernel over records far apart (other kinds between them) reads these for its next
    ``AHEAD`` records before decoding them: the cache misses, issued together, overlap,
    where the decoding loop waits on one miss per record (PRRs of spreadsheet14, 40 MB:
    104-117 -> 37-40 ns per record). The caller keeps the bytes (xor) so the reads stay."""
    if s < 0 or n <= 0 or s + n > nbuf:
        return np.uint8(0)
    return buf[s] ^ buf[s + n - 1]



@inlined
def _far_apart(span, held):
    """Whether records holding ``held`` bytes within ``span`` bytes (first to last) lie far
    apart: under a quarter of the span (other records between them: ayad_ws's MPRs among
    PTRs, spreadsheet14's PRRs), where fetching them ahead (_touch) pays. Records in every
    other slot (bcdm's MPRs beside FTRs) the prefetcher streams; touching them costs."""
    return span > 4 * held


@inlined
def _spread(offs, lens, pos, i0, i1):
    """_far_apart for the records pos[i0:i1] of an index (offs, lens)."""
    if i1 - i0 < 2:
        return False
    held = np.int64(0)
    for i in range(i0, i1):
        held += 4 + np.int64(lens[pos[i]])
    return _far_apart(offs[pos[i1 - 1]] - offs[pos[i0]], held)
