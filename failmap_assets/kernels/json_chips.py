"""Numba kernels for the ``chips`` array of the per-wafer JSON (maps/coordinates.py).

Pure functions: numpy arrays in, ``bytes`` out (``render_chips``); nothing here
knows about wafers, Arrow or JSON escaping, and nothing imports our other code. The caller formats and escapes every string once
(per distinct bin, per B file, per B value that needs it) and hands over:

* ``prefix`` / ``suffix`` (uint8): bytes written before / after the chips (the
  header text up to ``"chips":[`` and the closing ``]}``);
* ``x``, ``y`` (int64, n dies) and ``order`` (int64 die indices: the chips, in the
  order they are written);
* ``die_bin`` (int64, n): per die, a row of the per-bin text table
  ``(bin_off, bin_data)``, e.g. ``"b":"285","pass":false``;
* with a B companion (``with_b``): ``b_index`` (int64, n: each die's B row, or -1),
  ``b_bin`` (int64, n_b), the B values as a string table ``(val_off, val_data)``
  of JSON-escaped text *without* its quotes, ``val_null`` (uint8, n_b: non-zero
  writes ``null``) and ``b_tail``, the text after the B bin's closing quote
  (``,"stime":..,"partid":..,"tester":..}``).

Per chip ``order[k] = i`` ``render_chips`` writes (chips separated by ``,``)::

    {"x_abs":<x[i]>,"y_abs":<y[i]>,<bin text>
     [,"bucket_b":{"transformed_values":<"value" or null>,"b":"<b_bin[j]>"<b_tail>]}

(without the line break; the bracketed part only when ``j = b_index[i] >= 0``)

with integers in decimal, no leading zeros (``str(int)``). A string table is
``offsets`` (int64, rows + 1, non-decreasing, within ``data``) and ``data``
(uint8): row r is ``data[offsets[r]:offsets[r + 1]]``.

Safety: ``_size`` checks every array length, string table and index before it
reads through it, and raises ``ValueError`` naming the inconsistency; it also
computes the exact output size, so the output is allocated once, never grown.
``_write`` then writes into exactly that many bytes with ``boundscheck=True`` for
every single byte and a bounds-checked ``memcpy`` (``_put``) for every run of
bytes: a bug raises ``IndexError`` instead of writing past the buffer. The
kernels release the GIL (``nogil``): two wafers render in parallel on two threads.

Speed (~120,000 dies, ~20 MB with a B companion): ``_size`` visits the dies in
their own (file) order; ``_write`` gathers each block of chips' numbers in chip
order (a tight loop of independent reads the CPU overlaps), then streams them
out: ``memcpy`` of pre-escaped text and integers formatted two digits at a time.
A plain byte-copy loop costs about 1 ns per byte here (LLVM cannot prove the
arrays do not alias, so it does not vectorize it); ``memcpy`` is several times
faster. No helper taking arrays is called in the loops (each call costs an NRT
incref/decref pair): ``_put`` is an intrinsic, emitted inline.
"""

from __future__ import annotations

import numpy as np

from .jit import kernel
from .memcpy import put_bytes as _put

_INT64_MIN = -(2**63)
_INT32_MIN = -(2**31)
_INT32_MAX = 2**31 - 1


def _const(text: bytes) -> np.ndarray:
    return np.array(list(text), dtype=np.uint8)


_X_ABS = _const(b'{"x_abs":')
_Y_ABS = _const(b',"y_abs":')
_BUCKET_VALUE = _const(b',"bucket_b":{"transformed_values":"')
_BUCKET_NULL = _const(b',"bucket_b":{"transformed_values":null,"b":"')
_VALUE_B = _const(b'","b":"')
_MIN_TEXT = _const(str(_INT64_MIN).encode())
_PAIRS = _const("".join(f"{i:02d}" for i in range(100)).encode())   # "00" "01" .. "99"

_QUOTE = 34   # "
_COMMA = 44   # ,
_MINUS = 45   # -
_ZERO = 48    # 0
_CLOSE = 125  # }

# Columns of _write's plan: one row per chip of a block, in chip order.
_PX, _PY, _PBIN, _PJ, _PBB, _PVS, _PVE = range(7)
_PLAN_COLS = 7
_BLOCK = 1024


@kernel
def _digits(v):
    """Decimal digits of an int64 ``v >= 0``."""
    d = 1
    while v >= 10000:
        v //= 10000
        d += 4
    if v >= 1000:
        return d + 3
    if v >= 100:
        return d + 2
    if v >= 10:
        return d + 1
    return d


@kernel
def _int_len(v):
    """Characters of ``str(v)`` for an int64.

    Branch-free below 10,000 (coordinates, bins): ``_size`` visits dies in file
    order, where consecutive values can be anything, and mispredicted branches
    would cost more than the whole count.
    """
    if v == _INT64_MIN:
        return 20
    neg = v < 0
    u = -v if neg else v
    if u >= 10000:
        return neg + _digits(u)
    return neg + 1 + (u >= 10) + (u >= 100) + (u >= 1000)


@kernel
def _check_table(off, data, what):
    """A string table: offsets non-decreasing, from >= 0 to <= len(data); raises otherwise.

    ``what`` is 0 for the bin table, 1 for the values table (Numba wants constant
    exception messages).
    """
    bad = off.shape[0] == 0 or off[0] < 0 or off[off.shape[0] - 1] > data.shape[0]
    for k in range(1, off.shape[0]):
        if off[k] < off[k - 1]:
            bad = True
    if bad:
        if what == 0:
            raise ValueError("json_chips: bin_off must be n_bins + 1 non-decreasing offsets within bin_data")
        raise ValueError("json_chips: val_off must be n + 1 non-decreasing offsets within val_data")


@kernel
def _size(prefix, x, y, order, die_bin, bin_off, bin_data,
          with_b, b_index, b_bin, val_off, val_data, val_null, b_tail, suffix):
    """Validate every length, table and index; the exact size of the document in bytes."""
    n = x.shape[0]
    n_b = b_bin.shape[0]
    if y.shape[0] != n:
        raise ValueError("json_chips: x and y differ in length")
    if die_bin.shape[0] != n:
        raise ValueError("json_chips: die_bin and x differ in length")
    _check_table(bin_off, bin_data, 0)
    n_bins = bin_off.shape[0] - 1
    if with_b:
        if b_index.shape[0] != n:
            raise ValueError("json_chips: b_index and x differ in length")
        if val_off.shape[0] != n_b + 1:
            raise ValueError("json_chips: val_off must hold len(b_bin) + 1 offsets")
        if val_null.shape[0] != n_b:
            raise ValueError("json_chips: val_null and b_bin differ in length")
        _check_table(val_off, val_data, 1)
    m = order.shape[0]
    # '{"x_abs":' x ',"y_abs":' y ',' <bin text> '}' and one ',' between chips
    fixed = _X_ABS.shape[0] + _Y_ABS.shape[0] + 2
    # '"' value '","b":"' B bin '"' tail, or 'null,"b":"' B bin '"' tail
    b_value = _BUCKET_VALUE.shape[0] + _VALUE_B.shape[0] + 1 + b_tail.shape[0]
    b_null = _BUCKET_NULL.shape[0] + 1 + b_tail.shape[0]
    total = prefix.shape[0] + suffix.shape[0] + max(m - 1, 0) + m * fixed
    # How often each die is written (once, for the caller's row-major order): then
    # the dies are visited in their own order, sequentially, not in chip order.
    times = np.zeros(n, dtype=np.int32)
    for k in range(m):
        i = order[k]
        if i < 0 or i >= n:
            raise ValueError("json_chips: order holds an index outside 0..len(x)-1")
        times[i] += 1
    for i in range(n):
        if times[i] == 0:
            continue
        g = die_bin[i]
        if g < 0 or g >= n_bins:
            raise ValueError("json_chips: die_bin holds a row outside the bin table")
        size = _int_len(x[i]) + _int_len(y[i]) + (bin_off[g + 1] - bin_off[g])
        if with_b:
            j = b_index[i]
            if j < -1 or j >= n_b:
                raise ValueError("json_chips: b_index holds a row outside -1..len(b_bin)-1")
            if j >= 0:
                size += _int_len(b_bin[j])
                if val_null[j] != 0:
                    size += b_null
                else:
                    size += b_value + (val_off[j + 1] - val_off[j])
        total += times[i] * size
    return total


@kernel(boundscheck=True)
def _write(out, prefix, x, y, order, die_bin, bin_off, bin_data,
           with_b, b_index, b_bin, val_off, val_data, val_null, b_tail, suffix):
    """Write the document into ``out`` (sized by ``_size``); every byte bounds checked.

    Chips go in blocks: first the block's numbers are gathered in chip order (a
    tight loop of independent random reads, which the CPU overlaps), then they
    are written out sequentially. Returns the number of bytes written.
    """
    m = order.shape[0]
    plan = np.empty((_BLOCK, _PLAN_COLS), dtype=np.int64)
    p = _put(out, 0, prefix, 0, prefix.shape[0])
    for k0 in range(0, m, _BLOCK):
        rows = min(_BLOCK, m - k0)
        for r in range(rows):
            i = order[k0 + r]
            plan[r, _PX] = x[i]
            plan[r, _PY] = y[i]
            plan[r, _PBIN] = die_bin[i]
            j = b_index[i] if with_b else -1
            plan[r, _PJ] = j
            if j >= 0:
                plan[r, _PBB] = b_bin[j]
                if val_null[j] != 0:
                    plan[r, _PVS] = -1
                else:
                    plan[r, _PVS] = val_off[j]
                    plan[r, _PVE] = val_off[j + 1]
        for r in range(rows):
            if k0 + r > 0:
                out[p] = _COMMA
                p += 1
            p = _put(out, p, _X_ABS, 0, _X_ABS.shape[0])
            # Three integers per chip with B (x, y, B bin), two without: one copy
            # of the digit code, with what precedes each integer written first.
            for f in range(3):
                if f == 0:
                    v = plan[r, _PX]
                elif f == 1:
                    p = _put(out, p, _Y_ABS, 0, _Y_ABS.shape[0])
                    v = plan[r, _PY]
                else:
                    out[p] = _COMMA
                    p += 1
                    g = plan[r, _PBIN]
                    p = _put(out, p, bin_data, bin_off[g], bin_off[g + 1])
                    if plan[r, _PJ] < 0:
                        break
                    vs = plan[r, _PVS]
                    if vs < 0:
                        p = _put(out, p, _BUCKET_NULL, 0, _BUCKET_NULL.shape[0])
                    else:
                        p = _put(out, p, _BUCKET_VALUE, 0, _BUCKET_VALUE.shape[0])
                        p = _put(out, p, val_data, vs, plan[r, _PVE])
                        p = _put(out, p, _VALUE_B, 0, _VALUE_B.shape[0])
                    v = plan[r, _PBB]
                # str(v), two digits per step from the right.
                if v == _INT64_MIN:
                    p = _put(out, p, _MIN_TEXT, 0, _MIN_TEXT.shape[0])
                else:
                    if v < 0:
                        out[p] = _MINUS
                        p += 1
                        v = -v
                    end = p + _digits(v)
                    q = end
                    while v >= 100:
                        d = (v % 100) * 2
                        v //= 100
                        q -= 2
                        out[q] = _PAIRS[d]
                        out[q + 1] = _PAIRS[d + 1]
                    if v >= 10:
                        out[q - 2] = _PAIRS[2 * v]
                        out[q - 1] = _PAIRS[2 * v + 1]
                    else:
                        out[q - 1] = _ZERO + v
                    p = end
                if f == 2:
                    out[p] = _QUOTE
                    p += 1
                    p = _put(out, p, b_tail, 0, b_tail.shape[0])
            out[p] = _CLOSE
            p += 1
    return _put(out, p, suffix, 0, suffix.shape[0])


def render_chips(prefix, x, y, order, die_bin, bin_off, bin_data,
                 with_b, b_index, b_bin, val_off, val_data, val_null, b_tail, suffix) -> bytes:
    """``prefix`` + the chips (see module docstring) + ``suffix``, as bytes.

    Arrays must be 1-D and C-contiguous (``x`` .. ``b_bin``, offsets: int64; text,
    ``val_null``: uint8). Inconsistent input raises ``ValueError`` before anything
    is written. Both kernels run without the GIL.
    """
    args = (prefix, x, y, order, die_bin, bin_off, bin_data, with_b, b_index, b_bin, val_off, val_data, val_null,
            b_tail, suffix)
    total = _size(*args)
    # A plain numpy buffer and one copy into bytes: writing into a bytes object
    # through the C API would save the copy but mutate an immutable object.
    out = np.empty(total, dtype=np.uint8)
    written = _write(out, *args)
    if written != total:
        raise ValueError("json_chips: internal error, wrote a different size than computed")
    return out.tobytes()


@kernel
def rows_needing_escape(off, data):
    """Rows of a string table holding a byte JSON must (or we choose to) escape.

    Control characters, ``"``, ``\\`` and non-ASCII (we write ASCII-only JSON).
    One branch-free scan of all the text first (nearly always clean), then a row
    by row scan only when it found such a byte.
    """
    _check_table(off, data, 1)
    n = off.shape[0] - 1
    # Iterating a slice (no per-byte index checks) and folding "< 0x20 or >= 0x80"
    # into one unsigned compare lets LLVM vectorize the clean case.
    any_bad = np.uint8(0)
    for c in data[off[0] : off[n]]:
        any_bad |= (np.uint8(c - 0x20) >= 0x60) | (c == 0x22) | (c == 0x5C)
    if any_bad == 0:
        return np.empty(0, dtype=np.int64)
    flagged = np.zeros(n, dtype=np.bool_)
    for r in range(n):
        for q in range(off[r], off[r + 1]):
            c = data[q]
            if c < 0x20 or c == 0x22 or c == 0x5C or c >= 0x80:
                flagged[r] = True
                break
    return np.flatnonzero(flagged).astype(np.int64)


@kernel
def replace_rows(off, data, rows, rep_off, rep_data):
    """The string table ``(off, data)`` with row ``rows[k]`` replaced by row k of ``(rep_off, rep_data)``.

    ``rows`` must be strictly increasing row numbers. Returns new ``(offsets, data)``.
    """
    _check_table(off, data, 1)
    _check_table(rep_off, rep_data, 1)
    n = off.shape[0] - 1
    if rep_off.shape[0] != rows.shape[0] + 1:
        raise ValueError("json_chips: rep_off must hold len(rows) + 1 offsets")
    size = off[n] - off[0]
    prev = -1
    for k in range(rows.shape[0]):
        r = rows[k]
        if r <= prev or r >= n:
            raise ValueError("json_chips: rows must be strictly increasing rows of the table")
        prev = r
        size += (rep_off[k + 1] - rep_off[k]) - (off[r + 1] - off[r])
    new_off = np.empty(n + 1, dtype=np.int64)
    new_data = np.empty(size, dtype=np.uint8)
    new_off[0] = 0
    p = 0
    k = 0
    for r in range(n):
        if k < rows.shape[0] and rows[k] == r:
            p = _put(new_data, p, rep_data, rep_off[k], rep_off[k + 1])
            k += 1
        else:
            p = _put(new_data, p, data, off[r], off[r + 1])
        new_off[r + 1] = p
    return new_off, new_data


@kernel
def row_major_order(x, y, max_cells):
    """Die indices in (y, x) order, one per distinct (x, y), the later row winning.

    A counting pass over the dies' bounding box, O(n + cells). Returns
    ``(True, order)``, or ``(False, empty)`` when the box has more than
    ``max_cells`` cells or a coordinate is outside int32 (the caller sorts instead).
    """
    n = x.shape[0]
    if y.shape[0] != n:
        raise ValueError("json_chips: x and y differ in length")
    empty = np.empty(0, dtype=np.int64)
    if n == 0:
        return True, empty
    x_min = x_max = x[0]
    y_min = y_max = y[0]
    for i in range(1, n):
        x_min = min(x_min, x[i])
        x_max = max(x_max, x[i])
        y_min = min(y_min, y[i])
        y_max = max(y_max, y[i])
    if x_min < _INT32_MIN or x_max > _INT32_MAX or y_min < _INT32_MIN or y_max > _INT32_MAX:
        return False, empty
    width = x_max - x_min + 1     # <= 2**32: no overflow in int64
    height = y_max - y_min + 1
    # Division, not width * height: that product can exceed int64 when max_cells is huge.
    if max_cells < 1 or width > max_cells or height > max_cells // width:
        return False, empty
    cell_die = np.full(width * height, -1, dtype=np.int64)
    distinct = 0
    for i in range(n):
        c = (y[i] - y_min) * width + (x[i] - x_min)
        if cell_die[c] < 0:
            distinct += 1
        cell_die[c] = i        # a later row at the same (x, y) wins
    order = np.empty(distinct, dtype=np.int64)
    k = 0
    for c in range(cell_die.shape[0]):
        if cell_die[c] >= 0:
            order[k] = cell_die[c]
            k += 1
    return True, order
