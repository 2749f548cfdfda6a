"""Numba kernels for the die-row section of fail-map text (bucket A and B).

Pure functions over a ``uint8`` view of the decompressed bytes; nothing here knows
about files, headers or Dagster. The caller parses the few header lines in Python,
then hands over the offset of the first line after ``DIES n`` and ``n``.

Row grammar (the contract, docs failmap-format.md):

* A: ``x y bin``; B: ``x y bin v1 .. vk`` with exactly ``k`` values;
* x, y: signed decimal integers (``-``/``+``) within int32;
* bin: decimal 0..65535, leading zeros allowed (``0285``); a sign is parsed only
  to report ``-1`` as out of range rather than as a syntax error;
* value: ``[+-]? (digits [. digits*] | . digits) ([eE] [+-]? digits)?`` or ``NA``;
* fields separated by one or more spaces/tabs; leading and trailing spaces/tabs
  and a ``\\r`` before ``\\n`` are tolerated; the last row may end at end of data;
* blank lines and lines whose first non-blank character is ``#`` are skipped.

Every kernel returns an error code (``OK`` ... ``ERR_VALUE_COUNT``), the 1-based
line number and line-start offset where it applies, and the offset/line just
after the last row so the caller can look for ``END``. Reaching end of data
before ``n`` complete rows (including in the middle of a row) is
``ERR_TRUNCATED``. Every byte read is guarded by an explicit ``i < L`` test:
the kernels never read out of bounds whatever the input (they are fuzzed).

Float parsing is exact: the significant digits (at most 18, in an int64) scaled
by an exact power of ten in one IEEE operation is correctly rounded when the
mantissa is <= 2**53 and the power is <= 10**22 (Clinger's fast path), which is
the same double Python's ``float()`` returns. Anything else (more than 18
significant digits, a huge exponent, a mantissa above 2**53) is marked for the
caller to convert with ``float()`` on the original text (``fb_*`` arrays); these
are rare in tester output, and the arrays grow by doubling.

``values_text`` is built as Arrow string buffers: int64 offsets (n + 1) and the
uint8 data, each value's original text verbatim (``1350`` stays ``1350``, ``NA``
stays ``NA``), joined with ``,``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

OK = 0
ERR_TRUNCATED = 1     # end of data before n complete rows
ERR_SYNTAX = 2        # a row that is not `x y bin [values]`
ERR_BIN_RANGE = 3     # bin outside 0..65535
ERR_COORD_RANGE = 4   # x or y outside int32
ERR_VALUE_COUNT = 5   # B: not exactly k values

ERROR_NAMES = ("ok", "truncated", "syntax", "bin_range", "coord_range", "value_count")

# Internal token status.
_TOK_OK = 0
_TOK_SYNTAX = 1
_TOK_EOF = 2

# _field_start results.
_FIELD = 0
_EOL = 1
_EOF = 2
_BAD = 3

# Value flags (per value, B rows).
_V_NUM = 0
_V_NA = 1
_V_FALLBACK = 2

# Byte classes. One table lookup instead of chains of `c == 32 or c == 9 ...`:
# numba compiles short-circuit chains on bytes into branchy code that measured
# 3x slower on the row loop than a lookup.
_DIGIT = 1
_BLANK = 2      # space, tab
_CR = 4
_LF = 8
_SIGN = 16      # '+', '-'
_EXPO = 32      # 'e', 'E'
_DELIM = _BLANK | _CR | _LF     # what may follow a token


def _byte_classes() -> np.ndarray:
    cls = np.zeros(256, dtype=np.uint8)
    cls[ord("0") : ord("9") + 1] = _DIGIT
    cls[[ord(" "), ord("\t")]] = _BLANK
    cls[ord("\r")] = _CR
    cls[ord("\n")] = _LF
    cls[[ord("+"), ord("-")]] = _SIGN
    cls[[ord("e"), ord("E")]] = _EXPO
    return cls


_CLS = _byte_classes()
_MAX_DIGITS = 18                   # 10**18 - 1 < 2**63: the mantissa never overflows int64
_TWO53 = 1 << 53
_P10 = np.array([float(10**i) for i in range(23)])      # exact doubles 1e0 .. 1e22
_I10 = np.array([10**i for i in range(19)], dtype=np.int64)
_INT_CAP = 10**12                  # integers stop growing here: already out of every range
_EXP_CAP = 100_000                 # exponents beyond this are inf/0 anyway (Python float())
_MIN_ROW_BYTES = 5                 # "0 0 0": the shortest possible row, without its newline
_MAX_RETEST = 32767                # retest_count is int16: saturate


@njit(cache=True, nogil=True, inline="always")
def _is(c, mask):
    return (_CLS[c] & mask) != 0


@njit(cache=True, nogil=True, inline="always")
def _field_start(buf, i, L):
    """Skip blanks; (_FIELD, i) at a token, (_EOL, i at LF), (_EOF, L) or (_BAD, i).

    A CR counts as line end only when nothing but blanks/CRs follow it up to LF
    or end of data; a CR inside a line is a syntax error.
    """
    while i < L and _is(buf[i], _BLANK):
        i += 1
    if i >= L:
        return _EOF, L
    c = buf[i]
    if c == 10:
        return _EOL, i
    if c == 13:
        j = i
        while j < L and _is(buf[j], _BLANK | _CR):
            j += 1
        if j >= L:
            return _EOF, L
        if buf[j] == 10:
            return _EOL, j
        return _BAD, i
    return _FIELD, i


@njit(cache=True, nogil=True, inline="always")
def _next_row(buf, i, L, line):
    """From a line start, skip blank and comment lines.

    Returns (pos of the row's first token or L at end of data, line number,
    offset of that line's start).
    """
    while i < L:
        start = i
        kind, j = _field_start(buf, i, L)
        if kind == _EOF:
            return L, line, start
        if kind == _EOL:
            i = j + 1
            line += 1
            continue
        if kind == _FIELD and buf[j] == 35:  # '#': comment line
            while j < L and buf[j] != 10:
                j += 1
            i = j + 1
            line += 1
            continue
        return j, line, start
    return L, line, i


@njit(cache=True, nogil=True, inline="always")
def _parse_int(buf, i, L):
    """Signed decimal integer; returns (value, end, status). Values saturate at +-_INT_CAP."""
    neg = False
    if i < L and _is(buf[i], _SIGN):
        neg = buf[i] == 45
        i += 1
    start = i
    v = 0
    while i < L and _is(buf[i], _DIGIT):
        if v < _INT_CAP:
            v = v * 10 + (buf[i] - 48)
        i += 1
    if i == start:
        return 0, i, (_TOK_EOF if i >= L else _TOK_SYNTAX)
    if i < L and not _is(buf[i], _DELIM):
        return 0, i, _TOK_SYNTAX
    return (-v if neg else v), i, _TOK_OK


@njit(cache=True, nogil=True, inline="always")
def _scale(mant, dexp):
    """mant * 10**dexp when that is exactly one correctly rounded IEEE operation; (value, ok)."""
    # Trailing zeros move into the exponent: "1350.000" is 135e1, and a smaller
    # mantissa keeps more inputs on the exact path.
    while mant % 10 == 0:
        mant //= 10
        dexp += 1
    if mant > _TWO53:
        return 0.0, False
    if 0 <= dexp <= 22:
        return float(mant) * _P10[dexp], True
    if -22 <= dexp < 0:
        return float(mant) / _P10[-dexp], True
    if 22 < dexp <= 22 + 18:
        # "12e25": 12e3 is still an exact integer below 2**53, then one multiply.
        extra = dexp - 22
        if mant <= _TWO53 // _I10[extra]:
            return float(mant * _I10[extra]) * _P10[22], True
    return 0.0, False


@njit(cache=True, nogil=True, inline="always")
def _parse_value(buf, i, L):
    """One B value; returns (value, end, status, flag) with flag _V_NUM/_V_NA/_V_FALLBACK."""
    if buf[i] == 78:  # 'N'
        if i + 1 >= L:
            return np.nan, L, _TOK_EOF, _V_NA
        if buf[i + 1] == 65 and (i + 2 >= L or _is(buf[i + 2], _DELIM)):
            return np.nan, i + 2, _TOK_OK, _V_NA
        return np.nan, i, _TOK_SYNTAX, _V_NA
    neg = False
    if _is(buf[i], _SIGN):
        neg = buf[i] == 45
        i += 1
    mant = 0
    nd = 0          # significant digits kept in mant
    dexp = 0        # decimal exponent applied to mant
    ndig = 0        # all mantissa digits seen
    inexact = False
    while i < L and _is(buf[i], _DIGIT):
        d = buf[i] - 48
        ndig += 1
        if nd < _MAX_DIGITS:
            if mant != 0 or d != 0:
                mant = mant * 10 + d
                nd += 1
        else:
            dexp += 1
            if d != 0:
                inexact = True
        i += 1
    if i < L and buf[i] == 46:  # '.'
        i += 1
        while i < L and _is(buf[i], _DIGIT):
            d = buf[i] - 48
            ndig += 1
            if nd < _MAX_DIGITS:
                if mant != 0 or d != 0:
                    mant = mant * 10 + d
                    nd += 1
                dexp -= 1
            elif d != 0:
                inexact = True
            i += 1
    if ndig == 0:
        return 0.0, i, (_TOK_EOF if i >= L else _TOK_SYNTAX), _V_NUM
    if i < L and _is(buf[i], _EXPO):
        i += 1
        eneg = False
        if i < L and _is(buf[i], _SIGN):
            eneg = buf[i] == 45
            i += 1
        if i >= L:
            return 0.0, L, _TOK_EOF, _V_NUM
        if not _is(buf[i], _DIGIT):
            return 0.0, i, _TOK_SYNTAX, _V_NUM
        ev = 0
        while i < L and _is(buf[i], _DIGIT):
            if ev < _EXP_CAP:
                ev = ev * 10 + (buf[i] - 48)
            i += 1
        dexp += -ev if eneg else ev
    if i < L and not _is(buf[i], _DELIM):
        return 0.0, i, _TOK_SYNTAX, _V_NUM
    if mant == 0:
        v = 0.0     # zero with any exponent is zero, as float() says
    elif inexact:
        return 0.0, i, _TOK_OK, _V_FALLBACK
    else:
        v, exact = _scale(mant, dexp)
        if not exact:
            return 0.0, i, _TOK_OK, _V_FALLBACK
    return (-v if neg else v), i, _TOK_OK, _V_NUM


@njit(cache=True, nogil=True, inline="always")
def _parse_xyb(buf, i, L):
    """The `x y bin` prefix of a row at a token start.

    Returns (x, y, bin, end, err) with err OK or an ERR_* code; for ERR_SYNTAX
    caused by a line ending too early, end points at that line end.
    """
    x, i, st = _parse_int(buf, i, L)
    if st != _TOK_OK:
        return 0, 0, 0, i, (ERR_TRUNCATED if st == _TOK_EOF else ERR_SYNTAX)
    kind, i = _field_start(buf, i, L)
    if kind != _FIELD:
        return 0, 0, 0, i, (ERR_TRUNCATED if kind == _EOF else ERR_SYNTAX)
    y, i, st = _parse_int(buf, i, L)
    if st != _TOK_OK:
        return 0, 0, 0, i, (ERR_TRUNCATED if st == _TOK_EOF else ERR_SYNTAX)
    kind, i = _field_start(buf, i, L)
    if kind != _FIELD:
        return 0, 0, 0, i, (ERR_TRUNCATED if kind == _EOF else ERR_SYNTAX)
    b, i, st = _parse_int(buf, i, L)
    if st != _TOK_OK:
        return 0, 0, 0, i, (ERR_TRUNCATED if st == _TOK_EOF else ERR_SYNTAX)
    if not (-2147483648 <= x <= 2147483647 and -2147483648 <= y <= 2147483647):
        return 0, 0, 0, i, ERR_COORD_RANGE
    if not (0 <= b <= 65535):
        return 0, 0, 0, i, ERR_BIN_RANGE
    return x, y, b, i, OK


@njit(cache=True, nogil=True, inline="always")
def _end_of_row(buf, i, L):
    """After a row's last field: (status, next line start). status _EOL/_EOF ok, _FIELD/_BAD not."""
    kind, j = _field_start(buf, i, L)
    if kind == _EOL:
        return _EOL, j + 1
    if kind == _EOF:
        return _EOF, L
    return kind, j


@njit(cache=True, nogil=True)
def parse_rows_a(buf, pos, n, line):
    """Parse ``n`` A rows (``x y bin``) starting at offset ``pos`` (line number ``line``).

    Returns (x int32[n], y int32[n], bin int32[n], rows_done, err, err_line,
    err_line_start, end_pos, end_line). On OK, end_pos/end_line are the start of
    the line after the last row (end_pos == len(buf) at end of data).
    """
    L = buf.shape[0]
    pos = min(max(pos, 0), L)
    # A row needs at least _MIN_ROW_BYTES + 1 bytes (the last one may lack its
    # newline): no allocation larger than the data can justify, whatever n says.
    if n < 0 or n > (L - pos + 1) // (_MIN_ROW_BYTES + 1):
        n_alloc = 0
    else:
        n_alloc = n
    xs = np.empty(n_alloc, dtype=np.int32)
    ys = np.empty(n_alloc, dtype=np.int32)
    bs = np.empty(n_alloc, dtype=np.int32)
    if n_alloc != n:
        return xs, ys, bs, 0, ERR_TRUNCATED, line, pos, pos, line
    i = pos
    for r in range(n):
        i, line, lstart = _next_row(buf, i, L, line)
        if i >= L:
            return xs, ys, bs, r, ERR_TRUNCATED, line, lstart, L, line
        x, y, b, i, err = _parse_xyb(buf, i, L)
        if err != OK:
            return xs, ys, bs, r, err, line, lstart, i, line
        kind, nxt = _end_of_row(buf, i, L)
        if kind != _EOL and kind != _EOF:
            return xs, ys, bs, r, ERR_SYNTAX, line, lstart, i, line
        xs[r] = x
        ys[r] = y
        bs[r] = b
        if kind == _EOL:
            line += 1
        i = nxt
    return xs, ys, bs, n, OK, line, i, i, line


@njit(cache=True, nogil=True)
def _grow(a, need):
    if need <= a.shape[0]:
        return a
    out = np.empty(max(need, 2 * a.shape[0]), dtype=a.dtype)
    out[: a.shape[0]] = a
    return out


@njit(cache=True, nogil=True)
def parse_rows_b(buf, pos, n, k, line):
    """Parse ``n`` B rows (``x y bin v1..vk``) starting at ``pos`` (line ``line``).

    Returns (x, y, bin, values float64[n, k], na bool[n, k], text_offsets
    int64[n + 1], text_data uint8[m], fb_index int64[f], fb_start int64[f],
    fb_len int64[f], rows_done, err, err_line, err_line_start, end_pos, end_line).

    ``fb_*``: values to convert with Python's float() (flat index r * k + c into
    ``values``, and the token's offset/length in ``buf``).
    """
    L = buf.shape[0]
    pos = min(max(pos, 0), L)
    if k < 0:
        k = 0
    if n < 0 or n > (L - pos + 1) // (_MIN_ROW_BYTES + 1 + 2 * k):
        n_alloc = 0
    else:
        n_alloc = n
    xs = np.empty(n_alloc, dtype=np.int32)
    ys = np.empty(n_alloc, dtype=np.int32)
    bs = np.empty(n_alloc, dtype=np.int32)
    values = np.empty((n_alloc, k), dtype=np.float64)
    na = np.zeros((n_alloc, k), dtype=np.bool_)
    offsets = np.zeros(n_alloc + 1, dtype=np.int64)
    # Values and their separators are copied from the rows section, one comma per
    # separator at most: the text never outgrows the bytes that follow pos.
    text = np.empty(L - pos if n_alloc > 0 else 0, dtype=np.uint8)
    fb_index = np.empty(8, dtype=np.int64)
    fb_start = np.empty(8, dtype=np.int64)
    fb_len = np.empty(8, dtype=np.int64)
    nfb = 0
    t = 0
    if n_alloc != n:
        return (xs, ys, bs, values, na, offsets, text[:0], fb_index[:0], fb_start[:0], fb_len[:0],
                0, ERR_TRUNCATED, line, pos, pos, line)
    i = pos
    for r in range(n):
        i, line, lstart = _next_row(buf, i, L, line)
        if i >= L:
            return (xs, ys, bs, values, na, offsets, text[:t], fb_index[:nfb], fb_start[:nfb], fb_len[:nfb],
                    r, ERR_TRUNCATED, line, lstart, L, line)
        x, y, b, i, err = _parse_xyb(buf, i, L)
        if err != OK:
            return (xs, ys, bs, values, na, offsets, text[:t], fb_index[:nfb], fb_start[:nfb], fb_len[:nfb],
                    r, err, line, lstart, i, line)
        for c in range(k):
            kind, i = _field_start(buf, i, L)
            if kind != _FIELD:
                if kind == _EOF:
                    err = ERR_TRUNCATED
                elif kind == _EOL:
                    err = ERR_VALUE_COUNT
                else:
                    err = ERR_SYNTAX
                return (xs, ys, bs, values, na, offsets, text[:t], fb_index[:nfb], fb_start[:nfb], fb_len[:nfb],
                        r, err, line, lstart, i, line)
            start = i
            v, i, st, flag = _parse_value(buf, i, L)
            if st != _TOK_OK:
                err = ERR_TRUNCATED if st == _TOK_EOF else ERR_SYNTAX
                return (xs, ys, bs, values, na, offsets, text[:t], fb_index[:nfb], fb_start[:nfb], fb_len[:nfb],
                        r, err, line, lstart, i, line)
            values[r, c] = v
            if flag == _V_NA:
                na[r, c] = True
            elif flag == _V_FALLBACK:
                fb_index = _grow(fb_index, nfb + 1)
                fb_start = _grow(fb_start, nfb + 1)
                fb_len = _grow(fb_len, nfb + 1)
                fb_index[nfb] = r * k + c
                fb_start[nfb] = start
                fb_len[nfb] = i - start
                nfb += 1
            if c > 0:
                text[t] = 44  # ','
                t += 1
            for j in range(start, i):
                text[t] = buf[j]
                t += 1
        kind, nxt = _end_of_row(buf, i, L)
        if kind != _EOL and kind != _EOF:
            err = ERR_VALUE_COUNT if kind == _FIELD else ERR_SYNTAX
            return (xs, ys, bs, values, na, offsets, text[:t], fb_index[:nfb], fb_start[:nfb], fb_len[:nfb],
                    r, err, line, lstart, i, line)
        xs[r] = x
        ys[r] = y
        bs[r] = b
        offsets[r + 1] = t
        if kind == _EOL:
            line += 1
        i = nxt
    return (xs, ys, bs, values, na, offsets, text[:t], fb_index[:nfb], fb_start[:nfb], fb_len[:nfb],
            n, OK, line, i, i, line)


@njit(cache=True, nogil=True)
def _last_per_cell(cell, ncells):
    """Dense path: cell ids in 0..ncells-1; (superseded mask, count) per row."""
    n = cell.shape[0]
    last = np.full(ncells, -1, dtype=np.int64)
    superseded = np.zeros(n, dtype=np.bool_)
    count = np.zeros(n, dtype=np.int64)
    for r in range(n):
        c = cell[r]
        prev = last[c]
        if prev >= 0:
            superseded[prev] = True
            count[r] = count[prev] + 1
        last[c] = r
    return superseded, count


@njit(cache=True, nogil=True)
def resolve_retests(x, y):
    """Retest resolution: the same (x, y) twice means the later row replaces the earlier.

    Returns (keep int64[m], retest_count int16[m]): the surviving row indices in
    ascending (file) order, each die's last row, and per survivor the number of
    earlier rows it replaced (saturating at 32767).

    Dies sit on a grid, so a dense (x, y) -> last-row table is used when the
    bounding box is at most max(4 n, 2**20) cells: O(n), no hashing, nothing an
    adversarial file can make quadratic. Sparse coordinates fall back to a stable
    sort (O(n log n)).
    """
    n = x.shape[0]
    if y.shape[0] != n:
        raise ValueError("x and y must have the same length")
    if n == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int16)
    xmin = np.int64(x[0])
    xmax = xmin
    ymin = np.int64(y[0])
    ymax = ymin
    for r in range(n):
        xv = np.int64(x[r])
        yv = np.int64(y[r])
        if xv < xmin:
            xmin = xv
        if xv > xmax:
            xmax = xv
        if yv < ymin:
            ymin = yv
        if yv > ymax:
            ymax = yv
    w = xmax - xmin + 1
    h = ymax - ymin + 1
    budget = max(4 * n, 1 << 20)
    if w <= budget and h <= budget // w:
        cell = np.empty(n, dtype=np.int64)
        for r in range(n):
            cell[r] = (np.int64(y[r]) - ymin) * w + (np.int64(x[r]) - xmin)
        superseded, count = _last_per_cell(cell, w * h)
    else:
        key = np.empty(n, dtype=np.int64)
        for r in range(n):
            key[r] = ((np.int64(x[r]) - xmin) << 32) | (np.int64(y[r]) - ymin)
        order = np.argsort(key, kind="mergesort")   # stable: file order within a die
        superseded = np.zeros(n, dtype=np.bool_)
        count = np.zeros(n, dtype=np.int64)
        s = 0
        while s < n:
            e = s + 1
            while e < n and key[order[e]] == key[order[s]]:
                e += 1
            for q in range(s, e - 1):
                superseded[order[q]] = True
            count[order[e - 1]] = e - 1 - s
            s = e
    m = 0
    for r in range(n):
        if not superseded[r]:
            m += 1
    keep = np.empty(m, dtype=np.int64)
    rc = np.empty(m, dtype=np.int16)
    j = 0
    for r in range(n):
        if not superseded[r]:
            keep[j] = r
            rc[j] = min(count[r], _MAX_RETEST)
            j += 1
    return keep, rc
