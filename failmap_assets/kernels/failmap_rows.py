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
significant digits, a huge exponent, a mantissa above 2**53) is flagged
``VALUE_FALLBACK`` for the caller to convert with ``float()`` from its verbatim
text; such values are rare in tester output.

``values_text`` is built as Arrow string buffers: int64 offsets (n + 1) and the
uint8 data, each value's original text verbatim (``1350`` stays ``1350``, ``NA``
stays ``NA``), joined with ``,``.
"""

from __future__ import annotations

import numpy as np

from .jit import kernel

OK = 0
ERR_TRUNCATED = 1     # end of data before n complete rows
ERR_SYNTAX = 2        # a row that is not `x y bin [values]`
ERR_BIN_RANGE = 3     # bin outside 0..65535
ERR_COORD_RANGE = 4   # x or y outside int32
ERR_VALUE_COUNT = 5   # B: not exactly k values

ERROR_NAMES = ("ok", "truncated", "syntax", "bin_range", "coord_range", "value_count")

# Per-value flags of B rows.
VALUE_NUMBER = 0
VALUE_NA = 1
VALUE_FALLBACK = 2

# What follows a token's trailing blanks.
_FIELD = 0
_EOL = 1
_EOF = 2
_BAD = 3

# Byte classes: one table lookup per byte instead of chains of `c == 32 or c == 9`,
# which numba lowers into more branches.
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


@kernel
def _scale(mant, dexp):
    """mant * 10**dexp when that is exactly one correctly rounded IEEE operation; (value, ok)."""
    if mant > _TWO53:
        # Trailing zeros move into the exponent ("1350.000000000000000" is 135e1):
        # a smaller mantissa may still take the exact path. Rare, hence not first.
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


@kernel
def _parse_rows(buf, pos, n, k, is_b, line):
    """The one row loop behind parse_rows_a (k = 0, is_b False) and parse_rows_b.

    Deliberately a single function: every helper that takes ``buf`` costs an
    NRT incref/decref pair per call once inlined into branchy code, which measured
    3-4x slower than this loop. Only scalar helpers (``_scale``) are called.
    """
    L = buf.shape[0]
    pos = min(max(pos, 0), L)
    if k < 0:
        k = 0
    # A row is at least "0 0 0" plus " 0" per value plus a newline (the last
    # one may lack it), so the data cannot hold more rows than this: never
    # allocate more, whatever n says (the parse then ends in ERR_TRUNCATED).
    n_alloc = min(max(n, 0), (L - pos + 1) // (_MIN_ROW_BYTES + 1 + 2 * k))
    xs = np.empty(n_alloc, dtype=np.int32)
    ys = np.empty(n_alloc, dtype=np.int32)
    bs = np.empty(n_alloc, dtype=np.int32)
    values = np.empty((n_alloc, k), dtype=np.float64)
    flags = np.zeros((n_alloc, k), dtype=np.int8)
    offsets = np.zeros(n_alloc + 1, dtype=np.int64)
    # Value texts plus one comma per separator they replace: never more than the
    # bytes after pos.
    text = np.empty(L - pos if (is_b and n_alloc > 0) else 0, dtype=np.uint8)
    t = 0
    n_fallback = 0
    i = pos
    lstart = pos
    err = OK
    r = 0
    if n < 0:
        err = ERR_TRUNCATED
    nf = 3 + k
    while r < n:
        # ---- the next row: skip blank and comment lines -------------------
        lstart = i
        while i < L and (_CLS[buf[i]] & _BLANK) != 0:
            i += 1
        if i >= L:
            err = ERR_TRUNCATED
            break
        c = buf[i]
        if c == 10:
            i += 1
            line += 1
            continue
        if c == 35:  # '#'
            while i < L and buf[i] != 10:
                i += 1
            if i < L:
                i += 1
                line += 1
            continue
        if c == 13:
            j = i
            while j < L and (_CLS[buf[j]] & (_BLANK | _CR)) != 0:
                j += 1
            if j >= L:
                err = ERR_TRUNCATED
                break
            if buf[j] == 10:
                i = j + 1
                line += 1
                continue
            err = ERR_SYNTAX
            break
        # ---- fields: f < 3 are x, y, bin; then k values; f == nf: row end --
        x = 0
        y = 0
        b = 0
        f = 0
        row_done = False
        while err == OK:
            if f > 0:
                # Tokens only end at a delimiter, so separation is guaranteed;
                # what follows the blanks decides: token, line end, data end.
                while i < L and (_CLS[buf[i]] & _BLANK) != 0:
                    i += 1
                nxt = _FIELD
                if i >= L:
                    nxt = _EOF
                else:
                    c = buf[i]
                    if c == 10:
                        nxt = _EOL
                    elif c == 13:
                        j = i
                        while j < L and (_CLS[buf[j]] & (_BLANK | _CR)) != 0:
                            j += 1
                        if j >= L:
                            nxt = _EOF
                            i = L
                        elif buf[j] == 10:
                            nxt = _EOL
                            i = j
                        else:
                            nxt = _BAD      # a CR inside a line
                if f == nf:
                    if nxt == _FIELD:
                        err = ERR_VALUE_COUNT if is_b else ERR_SYNTAX
                    elif nxt == _BAD:
                        err = ERR_SYNTAX
                    else:
                        if nxt == _EOL:
                            i += 1
                            line += 1
                        row_done = True
                    break
                if nxt == _EOF:
                    err = ERR_TRUNCATED
                elif nxt == _EOL:
                    err = ERR_VALUE_COUNT if (is_b and f >= 3) else ERR_SYNTAX
                elif nxt == _BAD:
                    err = ERR_SYNTAX
                if err != OK:
                    break
            start = i       # i < L and buf[i] is not blank/CR/LF here
            if f < 3:
                # signed decimal integer; saturates at _INT_CAP (out of every range)
                neg = False
                if (_CLS[buf[i]] & _SIGN) != 0:
                    neg = buf[i] == 45
                    i += 1
                dstart = i
                v = 0
                while i < L and (_CLS[buf[i]] & _DIGIT) != 0:
                    if v < _INT_CAP:
                        v = v * 10 + (buf[i] - 48)
                    i += 1
                if i == dstart:
                    err = ERR_TRUNCATED if i >= L else ERR_SYNTAX
                    break
                if i < L and (_CLS[buf[i]] & _DELIM) == 0:
                    err = ERR_SYNTAX
                    break
                if neg:
                    v = -v
                if f == 2:
                    if v < 0 or v > 65535:
                        err = ERR_BIN_RANGE
                        break
                    b = v
                else:
                    if v < -2147483648 or v > 2147483647:
                        err = ERR_COORD_RANGE
                        break
                    if f == 0:
                        x = v
                    else:
                        y = v
            else:
                col = f - 3
                if buf[i] == 78:  # 'N': only "NA"
                    if i + 1 >= L:
                        err = ERR_TRUNCATED
                        break
                    if buf[i + 1] != 65 or (i + 2 < L and (_CLS[buf[i + 2]] & _DELIM) == 0):
                        err = ERR_SYNTAX
                        break
                    i += 2
                    val = np.nan
                    flag = VALUE_NA
                else:
                    neg = False
                    if (_CLS[buf[i]] & _SIGN) != 0:
                        neg = buf[i] == 45
                        i += 1
                    mant = 0
                    nd = 0          # significant digits kept in mant
                    dexp = 0        # decimal exponent applied to mant
                    ndig = 0        # all mantissa digits seen
                    inexact = False
                    while i < L and (_CLS[buf[i]] & _DIGIT) != 0:
                        d = buf[i] - 48
                        ndig += 1
                        if nd < _MAX_DIGITS:
                            if (mant | d) != 0:   # leading zeros are not significant
                                mant = mant * 10 + d
                                nd += 1
                        else:
                            dexp += 1
                            if d != 0:
                                inexact = True
                        i += 1
                    if i < L and buf[i] == 46:  # '.'
                        i += 1
                        while i < L and (_CLS[buf[i]] & _DIGIT) != 0:
                            d = buf[i] - 48
                            ndig += 1
                            if nd < _MAX_DIGITS:
                                if (mant | d) != 0:   # leading zeros are not significant
                                    mant = mant * 10 + d
                                    nd += 1
                                dexp -= 1
                            elif d != 0:
                                inexact = True
                            i += 1
                    if ndig == 0:
                        err = ERR_TRUNCATED if i >= L else ERR_SYNTAX
                        break
                    if i < L and (_CLS[buf[i]] & _EXPO) != 0:
                        i += 1
                        eneg = False
                        if i < L and (_CLS[buf[i]] & _SIGN) != 0:
                            eneg = buf[i] == 45
                            i += 1
                        if i >= L:
                            err = ERR_TRUNCATED
                            break
                        if (_CLS[buf[i]] & _DIGIT) == 0:
                            err = ERR_SYNTAX
                            break
                        ev = 0
                        while i < L and (_CLS[buf[i]] & _DIGIT) != 0:
                            if ev < _EXP_CAP:
                                ev = ev * 10 + (buf[i] - 48)
                            i += 1
                        dexp += -ev if eneg else ev
                    if i < L and (_CLS[buf[i]] & _DELIM) == 0:
                        err = ERR_SYNTAX
                        break
                    exact = True
                    val = 0.0       # zero with any exponent is zero, as float() says
                    if mant != 0:
                        if inexact:
                            exact = False
                        else:
                            val, exact = _scale(mant, dexp)
                    flag = VALUE_NUMBER if exact else VALUE_FALLBACK
                    if neg:
                        val = -val
                # A row past n_alloc can never complete (see the bound above):
                # parse it for the error it will end in, but store nothing.
                if r < n_alloc:
                    values[r, col] = val
                    flags[r, col] = flag
                    n_fallback += flag == VALUE_FALLBACK
                    if col > 0:
                        text[t] = 44  # ','
                        t += 1
                    for j in range(start, i):
                        text[t] = buf[j]
                        t += 1
            f += 1
        if not row_done:
            break
        if r >= n_alloc:
            # Unreachable: r + 1 complete rows prove the bytes for n_alloc > r.
            # Kept so that no arithmetic slip can ever write out of bounds.
            err = ERR_TRUNCATED
            break
        xs[r] = x
        ys[r] = y
        bs[r] = b
        offsets[r + 1] = t
        r += 1
    if err == OK:
        lstart = i
    return xs, ys, bs, values, flags, offsets, text[:t], n_fallback, r, err, line, lstart, i


@kernel
def parse_rows_a(buf, pos, n, line):
    """Parse ``n`` A rows (``x y bin``) starting at offset ``pos`` (line number ``line``).

    Returns (x int32[n], y int32[n], bin int32[n], rows_done, err, err_line,
    err_line_start, end_pos, end_line). On OK, end_pos/end_line are the start of
    the line after the last row (end_pos == len(buf) at end of data).
    """
    res = _parse_rows(buf, pos, n, 0, False, line)
    return res[0], res[1], res[2], res[8], res[9], res[10], res[11], res[12], res[10]


@kernel
def parse_rows_b(buf, pos, n, k, line):
    """Parse ``n`` B rows (``x y bin v1..vk``) starting at ``pos`` (line ``line``).

    Returns (x, y, bin, values float64[n, k], flags int8[n, k], text_offsets
    int64[n + 1], text_data uint8[m], n_fallback, rows_done, err, err_line,
    err_line_start, end_pos, end_line).

    ``flags``: VALUE_NUMBER, VALUE_NA (value NaN) or VALUE_FALLBACK: a number
    outside the exact fast path, for the caller to convert with Python's float()
    from its verbatim text in ``text_data`` (value 0.0 until then).
    """
    res = _parse_rows(buf, pos, n, k, True, line)
    return res + (res[10],)


@kernel
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


@kernel
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
