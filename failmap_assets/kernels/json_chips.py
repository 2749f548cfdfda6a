"""Numba kernels for the ``chips`` array of the per-wafer JSON (maps/coordinates.py).

Pure functions: numpy arrays in, a ``uint8`` buffer out; nothing here knows about
wafers, Arrow or JSON escaping. The caller formats and escapes every string once
(per distinct bin, per B file, per B value that needs it) and hands the kernel:

* ``prefix`` / ``suffix``: bytes written before / after the chips (the header
  text up to ``"chips":[`` and the closing ``]}``);
* ``x``, ``y`` (int64, n dies) and ``order`` (int64 die indices, the chips in the
  order they are written);
* ``die_bin`` (int64, n): per die, an index into the per-bin text table
  ``(bin_off, bin_data)``, e.g. ``"b":"285","pass":false``;
* with a B companion (``with_b``): ``b_index`` (int64, n; the B row of each die or
  -1), ``b_bin`` (int64, n_b), the B values as a string table ``(val_off,
  val_data)`` of already JSON-escaped text *without* its quotes, ``val_null``
  (uint8, n_b; non-zero: write ``null``) and ``b_tail``, the text after the B bin
  (``,"stime":..,"partid":..,"tester":..}``).

Per chip ``order[k] = i`` the kernel writes (chips separated by ``,``)::

    {"x_abs":<x[i]>,"y_abs":<y[i]>,<bin text>[,"bucket_b":{"transformed_values":<"value" or null>,"b":"<b_bin[j]>"<b_tail>]}

Bounds: every array length is checked and every index (``order``, ``die_bin``,
``b_index``) and string-table offset is range-checked in a first pass that only
computes the exact output size; inconsistent input raises ``ValueError`` before
anything is allocated or written. The second pass writes exactly that many bytes
and checks it did. Both kernels release the GIL (``nogil``): two wafers render in
parallel on two threads.
"""

from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

_INT64_MIN = np.iinfo(np.int64).min
_INT32_MIN = np.iinfo(np.int32).min
_INT32_MAX = np.iinfo(np.int32).max


def _const(text: bytes) -> np.ndarray:
    return np.array(list(text), dtype=np.uint8)


_X_ABS = _const(b'{"x_abs":')
_Y_ABS = _const(b',"y_abs":')
_BUCKET = _const(b',"bucket_b":{"transformed_values":')
_NULL = _const(b"null")
_B_BIN = _const(b',"b":"')
_MIN_TEXT = _const(str(_INT64_MIN).encode())
_PAIRS = _const("".join(f"{i:02d}" for i in range(100)).encode())   # "00" "01" .. "99"

_QUOTE = 34   # "
_COMMA = 44   # ,
_MINUS = 45   # -
_ZERO = 48    # 0
_CLOSE = 125  # }


@intrinsic
def _memcpy(typingctx, dst, p, src, start, stop):
    """``dst[p : p + stop - start] = src[start:stop]`` as one ``llvm.memcpy``; unchecked.

    A byte loop costs ~1 ns per byte here (LLVM cannot rule out aliasing, so it
    does not vectorize it); memcpy is several times faster. Only ``_put`` calls it.
    """
    sig = types.intp(dst, p, src, start, stop)

    def codegen(context, builder, signature, args):
        dst_ty, _, src_ty, _, _ = signature.args
        dst_arr = context.make_array(dst_ty)(context, builder, args[0])
        src_arr = context.make_array(src_ty)(context, builder, args[2])
        count = builder.sub(args[4], args[3])
        dst_ptr = builder.gep(dst_arr.data, [args[1]])
        src_ptr = builder.gep(src_arr.data, [args[3]])
        cgutils.raw_memcpy(builder, dst_ptr, src_ptr, count, 1)
        return builder.add(args[1], count)

    return sig, codegen


@njit(cache=True, nogil=True, inline="always")
def _put(out, p, src, start, stop):
    """Copy ``src[start:stop]`` to ``out[p:]``, bounds checked; returns the position after it."""
    if start < 0 or stop < start or stop > src.shape[0] or p < 0 or p + (stop - start) > out.shape[0]:
        raise ValueError("json_chips: internal error, copy out of bounds")
    return _memcpy(out, p, src, start, stop)


@njit(cache=True, nogil=True, inline="always")
def _put_byte(out, p, c):
    if p < 0 or p >= out.shape[0]:
        raise ValueError("json_chips: internal error, write out of bounds")
    out[p] = c
    return p + 1


@njit(cache=True, nogil=True)
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


@njit(cache=True, nogil=True)
def _int_len(v):
    """Characters of ``str(v)`` for an int64."""
    if v == _INT64_MIN:
        return _MIN_TEXT.shape[0]
    if v < 0:
        return 1 + _digits(-v)
    return _digits(v)


@njit(cache=True, nogil=True, inline="always")
def _put_int(out, p, v):
    """Write ``str(v)`` of an int64 at ``out[p]``, two digits per step; returns the position after it."""
    if v == _INT64_MIN:
        return _put(out, p, _MIN_TEXT, 0, _MIN_TEXT.shape[0])
    if v < 0:
        p = _put_byte(out, p, _MINUS)
        v = -v
    end = p + _digits(v)
    if p < 0 or end > out.shape[0]:
        raise ValueError("json_chips: internal error, write out of bounds")
    q = end
    while v >= 100:
        r = (v % 100) * 2
        v //= 100
        q -= 2
        out[q] = _PAIRS[r]
        out[q + 1] = _PAIRS[r + 1]
    if v >= 10:
        out[q - 2] = _PAIRS[2 * v]
        out[q - 1] = _PAIRS[2 * v + 1]
    else:
        out[q - 1] = _ZERO + v
    return end


@njit(cache=True, nogil=True)
def _check_table(off, data, name_code):
    """A string table: offsets non-decreasing, within the data; raises otherwise."""
    if off.shape[0] == 0:
        if name_code == 0:
            raise ValueError("json_chips: bin_off must hold n_bins + 1 offsets (got none)")
        raise ValueError("json_chips: val_off must hold n_b + 1 offsets (got none)")
    prev = off[0]
    if prev < 0:
        if name_code == 0:
            raise ValueError("json_chips: bin_off has a negative offset")
        raise ValueError("json_chips: val_off has a negative offset")
    for k in range(1, off.shape[0]):
        cur = off[k]
        if cur < prev:
            if name_code == 0:
                raise ValueError("json_chips: bin_off is not non-decreasing")
            raise ValueError("json_chips: val_off is not non-decreasing")
        prev = cur
    if prev > data.shape[0]:
        if name_code == 0:
            raise ValueError("json_chips: bin_off points past the end of bin_data")
        raise ValueError("json_chips: val_off points past the end of val_data")


@njit(cache=True, nogil=True)
def render_chips(prefix, x, y, order, die_bin, bin_off, bin_data,
                 with_b, b_index, b_bin, val_off, val_data, val_null, b_tail, suffix):
    """``prefix`` + the chips (see module docstring) + ``suffix`` as one uint8 array."""
    n = x.shape[0]
    n_bins = bin_off.shape[0] - 1
    n_b = b_bin.shape[0]
    # ---- lengths and tables, before any loop -------------------------------
    if y.shape[0] != n:
        raise ValueError("json_chips: x and y differ in length")
    if die_bin.shape[0] != n:
        raise ValueError("json_chips: die_bin and x differ in length")
    if order.shape[0] > n:
        raise ValueError("json_chips: order is longer than x")
    _check_table(bin_off, bin_data, 0)
    if with_b:
        if b_index.shape[0] != n:
            raise ValueError("json_chips: b_index and x differ in length")
        if val_off.shape[0] != n_b + 1:
            raise ValueError("json_chips: val_off must hold len(b_bin) + 1 offsets")
        if val_null.shape[0] != n_b:
            raise ValueError("json_chips: val_null and b_bin differ in length")
        _check_table(val_off, val_data, 1)

    # ---- pass 1: validate every index and compute the exact size -----------
    m = order.shape[0]
    fixed = _X_ABS.shape[0] + _Y_ABS.shape[0] + 1 + 1   # ',' before the bin text, '}' at the end
    b_fixed = _BUCKET.shape[0] + _B_BIN.shape[0] + 1 + b_tail.shape[0]   # '"' after the B bin
    total = prefix.shape[0] + suffix.shape[0] + (m - 1 if m > 0 else 0) + m * fixed
    for k in range(m):
        i = order[k]
        if i < 0 or i >= n:
            raise ValueError("json_chips: order holds an index outside 0..len(x)-1")
        g = die_bin[i]
        if g < 0 or g >= n_bins:
            raise ValueError("json_chips: die_bin holds an index outside the bin table")
        total += _int_len(x[i]) + _int_len(y[i]) + (bin_off[g + 1] - bin_off[g])
        if with_b:
            j = b_index[i]
            if j >= n_b or j < -1:
                raise ValueError("json_chips: b_index holds an index outside -1..len(b_bin)-1")
            if j >= 0:
                total += b_fixed + _int_len(b_bin[j])
                if val_null[j] != 0:
                    total += _NULL.shape[0]
                else:
                    total += 2 + (val_off[j + 1] - val_off[j])

    # ---- pass 2: write exactly `total` bytes --------------------------------
    # Every write below is bounds checked (_put, _put_byte, _put_int) on top of
    # the exact size: a bug here raises instead of writing past the buffer.
    out = np.empty(total, dtype=np.uint8)
    p = _put(out, 0, prefix, 0, prefix.shape[0])
    for k in range(m):
        i = order[k]
        if k > 0:
            p = _put_byte(out, p, _COMMA)
        p = _put(out, p, _X_ABS, 0, _X_ABS.shape[0])
        p = _put_int(out, p, x[i])
        p = _put(out, p, _Y_ABS, 0, _Y_ABS.shape[0])
        p = _put_int(out, p, y[i])
        p = _put_byte(out, p, _COMMA)
        g = die_bin[i]
        p = _put(out, p, bin_data, bin_off[g], bin_off[g + 1])
        if with_b:
            j = b_index[i]
            if j >= 0:
                p = _put(out, p, _BUCKET, 0, _BUCKET.shape[0])
                if val_null[j] != 0:
                    p = _put(out, p, _NULL, 0, _NULL.shape[0])
                else:
                    p = _put_byte(out, p, _QUOTE)
                    p = _put(out, p, val_data, val_off[j], val_off[j + 1])
                    p = _put_byte(out, p, _QUOTE)
                p = _put(out, p, _B_BIN, 0, _B_BIN.shape[0])
                p = _put_int(out, p, b_bin[j])
                p = _put_byte(out, p, _QUOTE)
                p = _put(out, p, b_tail, 0, b_tail.shape[0])
        p = _put_byte(out, p, _CLOSE)
    p = _put(out, p, suffix, 0, suffix.shape[0])
    if p != total:
        raise ValueError("json_chips: internal error, wrote a different size than computed")
    return out


@njit(cache=True, nogil=True)
def rows_needing_escape(off, data):
    """Rows of a string table holding a byte JSON must (or we choose to) escape.

    Control characters, ``"``, ``\\`` and non-ASCII (we write ASCII-only JSON).
    Offsets are checked as in ``render_chips``.
    """
    _check_table(off, data, 1)
    n = off.shape[0] - 1
    flagged = np.zeros(n, dtype=np.bool_)
    count = 0
    for r in range(n):
        for q in range(off[r], off[r + 1]):
            c = data[q]
            if c < 0x20 or c == 0x22 or c == 0x5C or c >= 0x80:
                flagged[r] = True
                count += 1
                break
    rows = np.empty(count, dtype=np.int64)
    k = 0
    for r in range(n):
        if flagged[r]:
            rows[k] = r
            k += 1
    return rows


@njit(cache=True, nogil=True)
def replace_rows(off, data, rows, rep_off, rep_data):
    """The string table ``(off, data)`` with row ``rows[k]`` replaced by row k of ``(rep_off, rep_data)``.

    ``rows`` must be strictly increasing. Returns new ``(offsets, data)``.
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
            raise ValueError("json_chips: rows must be strictly increasing indices of the table")
        prev = r
        size += (rep_off[k + 1] - rep_off[k]) - (off[r + 1] - off[r])
    new_off = np.empty(n + 1, dtype=np.int64)
    new_data = np.empty(size, dtype=np.uint8)
    p = 0
    k = 0
    new_off[0] = 0
    for r in range(n):
        if k < rows.shape[0] and rows[k] == r:
            for q in range(rep_off[k], rep_off[k + 1]):
                new_data[p] = rep_data[q]
                p += 1
            k += 1
        else:
            for q in range(off[r], off[r + 1]):
                new_data[p] = data[q]
                p += 1
        new_off[r + 1] = p
    return new_off, new_data


@njit(cache=True, nogil=True)
def row_major_order(x, y, max_cells):
    """Die indices in (y, x) order, one per distinct (x, y), the later row winning.

    A counting pass over the dies' bounding box: O(n + cells). Returns
    ``(True, order)``, or ``(False, empty)`` when the box has more than
    ``max_cells`` cells or a coordinate is outside int32 (the caller sorts instead).
    """
    n = x.shape[0]
    if y.shape[0] != n:
        raise ValueError("json_chips: x and y differ in length")
    empty = np.empty(0, dtype=np.int64)
    if n == 0:
        return True, empty
    x_min = x[0]
    x_max = x[0]
    y_min = y[0]
    y_max = y[0]
    for i in range(1, n):
        v = x[i]
        if v < x_min:
            x_min = v
        elif v > x_max:
            x_max = v
        v = y[i]
        if v < y_min:
            y_min = v
        elif v > y_max:
            y_max = v
    if x_min < _INT32_MIN or x_max > _INT32_MAX or y_min < _INT32_MIN or y_max > _INT32_MAX:
        return False, empty
    width = x_max - x_min + 1     # <= 2**32: no overflow in int64
    height = y_max - y_min + 1
    if width > max_cells or height > max_cells or width * height > max_cells:
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
