"""Vectorised number formatting: columns of numbers -> lines of ASCII text.

Formatting 5 million die rows one f-string at a time takes many seconds; here each
column becomes a byte matrix (one row per die, right-aligned, NUL = no character)
and a whole table is assembled with a few numpy operations.

A *cell matrix* is uint8 of shape (n, width): the row's characters right-aligned,
with 0 to the left of them. 0 never occurs in text, so dropping it compacts rows.
"""

from __future__ import annotations

import functools

import numpy as np

_ZERO, _MINUS, _DOT, _SPACE = ord("0"), ord("-"), ord("."), ord(" ")


_POW10 = 10 ** np.arange(19, dtype=np.int64)
# Numbers below this (coordinates, bins, most printed values) are looked up in a
# precomputed table instead of being divided out digit by digit.
_TABLE_N = 20_000


def _digit_count(a: np.ndarray) -> np.ndarray:
    return np.maximum(np.searchsorted(_POW10, a, side="right"), 1)


def _arith_digits(a: np.ndarray, nd: np.ndarray, ndig: int) -> np.ndarray:
    """(n, ndig) right-aligned digit cells computed arithmetically."""
    digits = (a[:, None] // _POW10[ndig - 1::-1][None, :]) % 10
    keep = np.arange(ndig)[None, :] >= (ndig - nd)[:, None]
    return np.where(keep, _ZERO + digits, 0).astype(np.uint8)


def _arith_cells(a: np.ndarray, decimals: int, zero_pad: int) -> tuple[np.ndarray, np.ndarray]:
    """Right-aligned cells of non-negative scaled integers and their lengths."""
    if decimals == 0:
        nd = np.maximum(_digit_count(a), zero_pad)
        return _arith_digits(a, nd, int(nd.max()) if a.size else 1), nd
    ip, fp = a // 10**decimals, a % 10**decimals
    nd_ip = _digit_count(ip)
    cells = np.hstack([_arith_digits(ip, nd_ip, int(nd_ip.max()) if a.size else 1),
                       np.full((a.size, 1), _DOT, np.uint8),
                       _arith_digits(fp, np.full(a.size, decimals), decimals)])
    return cells, nd_ip + 1 + decimals


@functools.lru_cache(maxsize=16)
def _full_table(decimals: int, zero_pad: int) -> tuple[np.ndarray, np.ndarray]:
    return _arith_cells(np.arange(_TABLE_N, dtype=np.int64), decimals, zero_pad)


def _lengths(decimals: int, zero_pad: int) -> np.ndarray:
    return _full_table(decimals, zero_pad)[1]


@functools.lru_cache(maxsize=64)
def _table(decimals: int, zero_pad: int, width: int) -> np.ndarray:
    """Cells of 0.._TABLE_N-1 (scaled by 10^decimals), ``width`` wide, one opaque
    np.void item per number: gathering items is several times faster than 2-D indexing."""
    full = _full_table(decimals, zero_pad)[0]
    cells = np.ascontiguousarray(full[:, full.shape[1] - width:])
    return cells.view(np.dtype((np.void, width))).ravel()


def _cells(a: np.ndarray, neg: np.ndarray, decimals: int = 0, zero_pad: int = 0) -> np.ndarray:
    """Cells of ``a`` (>= 0, scaled by 10^decimals) with a minus sign where ``neg``."""
    top = int(a.max()) if a.size else 0
    if top < _TABLE_N:
        lengths = _lengths(decimals, zero_pad)
        width = int(lengths[top])  # lengths never decrease with the value
        digits = _table(decimals, zero_pad, width)[a].view(np.uint8).reshape(a.size, width)
        nd = lengths[a]
    else:
        digits, nd = _arith_cells(a, decimals, zero_pad)
    if not neg.any():
        return np.ascontiguousarray(digits)
    width = digits.shape[1] + 1
    cells = np.zeros((a.size, width), np.uint8)
    cells[:, 1:] = digits
    rows = np.flatnonzero(neg)
    cells[rows, width - 1 - nd[rows]] = _MINUS
    return cells


def int_cells(v: np.ndarray, zero_pad: int = 0) -> np.ndarray:
    """Decimal integers; ``zero_pad`` digits at least (``0285``)."""
    v = np.asarray(v, np.int64)
    return _cells(np.abs(v), v < 0, 0, zero_pad)


def fixed_cells(v: np.ndarray, decimals: int) -> np.ndarray:
    """Fixed-point decimals, like ``f"{v:.{decimals}f}"`` (NaN must be masked later)."""
    v = np.nan_to_num(np.asarray(v, np.float64), nan=0.0)
    scaled = np.rint(v * 10.0**decimals).astype(np.int64)
    return _cells(np.abs(scaled), scaled < 0, decimals)


def sci_cells(v: np.ndarray, decimals: int = 2) -> np.ndarray:
    """Scientific notation like ``f"{v:.2e}"``: ``2.13e-09``."""
    v = np.nan_to_num(np.asarray(v, np.float64), nan=0.0)
    a = np.abs(v)
    e = np.where(a > 0, np.floor(np.log10(np.where(a > 0, a, 1.0))), 0).astype(np.int64)
    m = np.rint(a / 10.0**e * 10**decimals).astype(np.int64)
    over = m >= 10 ** (decimals + 1)  # 9.996 rounds up to 10.00: renormalise
    m = np.where(over, m // 10, m)
    e = e + over
    esign = np.where(e < 0, _MINUS, ord("+")).astype(np.uint8)[:, None]
    return np.hstack([_cells(m, v < 0, decimals), np.full((a.size, 1), ord("e"), np.uint8), esign,
                      int_cells(np.abs(e), zero_pad=2)])


def with_na(cells: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """Rows where ``missing`` is set become ``NA``."""
    if not missing.any():
        return cells
    if cells.shape[1] < 2:
        cells = np.hstack([np.zeros((cells.shape[0], 2 - cells.shape[1]), np.uint8), cells])
    cells = cells.copy()
    cells[missing] = 0
    cells[missing, -2] = ord("N")
    cells[missing, -1] = ord("A")
    return cells


def left_justify(cells: np.ndarray) -> np.ndarray:
    """Move each row's characters to the left edge (zeros to the right)."""
    n, w = cells.shape
    length = (cells != 0).sum(axis=1)
    src = np.arange(w)[None, :] + (w - length)[:, None]
    valid = src < w
    out = np.where(valid, cells[np.arange(n)[:, None], np.minimum(src, w - 1)], 0)
    return out.astype(np.uint8)


def join_rows(columns: list[np.ndarray], *, sep: bytes = b" ", newline: bytes = b"\n",
              aligned: bool = False, trailing: np.ndarray | None = None) -> bytes:
    """The text of a table: fields joined by ``sep``, each row ended by ``newline``.

    ``aligned`` pads columns with spaces to a common width (first column
    left-justified so no line starts with a blank, the others right-aligned).
    ``trailing`` (bool per row) appends two spaces to those rows before the newline.
    """
    n = columns[0].shape[0] if columns else 0
    if n == 0:
        return b""
    parts: list[np.ndarray] = []
    sep_col = np.frombuffer(sep, np.uint8)[None, :].repeat(n, axis=0)
    for i, c in enumerate(columns):
        if aligned:
            c = left_justify(c) if i == 0 else c
            c = np.where(c == 0, _SPACE, c).astype(np.uint8)
        if i:
            parts.append(sep_col)
        parts.append(c)
    if trailing is not None and trailing.any():
        t = np.zeros((n, 2), np.uint8)
        t[trailing] = _SPACE
        parts.append(t)
    parts.append(np.frombuffer(newline, np.uint8)[None, :].repeat(n, axis=0))
    m = np.hstack(parts).ravel()
    return m[m != 0].tobytes()
