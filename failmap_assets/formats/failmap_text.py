"""The testers' own fail-map text: bucket A (``FAILMAP 1``) and bucket B (``FAILMAP-B 1``).

Implements shared/docs/failmap-format.md. The header (a dozen lines) is parsed
here in Python; the die rows, the bulk of every file, only by the Numba kernels in
``kernels/failmap_rows.py``.

Conventions shared by A and B: UTF-8 text, optional byte-order mark, ``\\n`` or
``\\r\\n``; blank lines and lines whose first non-blank character is ``#`` are
ignored anywhere; header lines are ``KEY value...`` with an upper-case key and
one or more spaces/tabs; header keys in any order after the first line, up to
``DIES n``, which is followed by exactly ``n`` rows and then ``END``. Unknown keys
go to ``extra`` (a key given twice keeps both values, joined by a newline).
Leading blanks on a line are tolerated, like trailing ones.

Reject reasons (``Rejected.reason``; ``line`` is 1-based in the decompressed text):

``not_text``             NUL bytes (binary) or not valid UTF-8
``unknown_format``       the first non-comment line is not ``FAILMAP`` (A) /
                         ``FAILMAP-B`` (B): another format, the other bucket's
                         file, or an empty / comment-only file
``unsupported_version``  ``FAILMAP <v>`` / ``FAILMAP-B <v>`` with v other than 1
``missing_key``          a required key is absent when ``DIES`` is reached (A:
                         LOT, WAFER, STIME; B: STIME, VALUES), or no ``DIES`` at all
``bad_header``           a malformed header line: not ``KEY value``, a lower-case
                         key, an empty value, a known key given twice, a bad
                         STIME / FLAT / DIE_SIZE / ORIGIN / BINDEF / DIES / VALUES
``truncated``            the data ends before ``DIES`` rows were read, in the
                         middle of a row, before ``END``, or in the header
``bad_row``              a die row that is not ``x y bin`` (B: ``x y bin v...``
                         with a malformed value), x/y outside int32, bin outside
                         0..65535
``value_count``          B: a row without exactly ``k`` values (``VALUES k``)
``extra_content``        anything but comments where ``END`` is expected (more
                         rows than ``DIES`` says) or after ``END``

Bins: ``BINDEF bin P|F name`` fills ``bin_pass``/``bin_names``; a bin without a
BINDEF is a fail bin, except bin 1, which passes (``WaferMap.is_pass``), so no
rejection for undefined bins. Retests: a later row for the same (x, y) replaces
the earlier one; survivors keep file order and count what they replaced.

``DIES 0`` (an empty wafer, tolerated by the contract) reads as a WaferMap without
dies, not a reject; the pipeline writes its JSON only and warns ``empty_wafer``
(``pipeline/unit.py``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pyarrow as pa

from failmap_assets.wafer.model import FLAT_SIDES, CompanionMap, WaferMap
from failmap_assets.kernels import failmap_rows as kr
from failmap_assets.wafer.rejects import Rejected

REJECT_REASONS = (
    "not_text",
    "unknown_format",
    "unsupported_version",
    "missing_key",
    "bad_header",
    "truncated",
    "bad_row",
    "value_count",
    "extra_content",
)

FORMAT_VERSION = 1
MAGIC_A = "FAILMAP"
MAGIC_B = "FAILMAP-B"
A_REQUIRED = ("LOT", "WAFER", "STIME")
B_REQUIRED = ("STIME", "VALUES")
A_KEYS = ("LOT", "WAFER", "PRODUCT", "STEP", "TESTER", "PARTID", "STIME", "FLAT", "DIE_SIZE", "ORIGIN")
B_KEYS = ("PARTID", "TESTER", "STIME", "VALUES")

_BOM = b"\xef\xbb\xbf"
_BLANKS = re.compile(rb"[ \t]+")
_KEY = re.compile(rb"[A-Z][A-Z0-9_-]*")
_DIGITS = re.compile(r"[0-9]+")
_INT = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_STIME = re.compile(r"[0-9]{8}_[0-9]{6}")
_SNIPPET = 80
_MAX_STRING_DATA = np.iinfo(np.int32).max   # beyond this, Arrow needs int64 offsets (large_string)


@dataclass
class _Line:
    number: int      # 1-based
    start: int       # offset of the line in the data
    text: bytes      # without leading/trailing blanks and line end
    next: int        # offset of the following line


def _lines(data: bytes, pos: int, number: int) -> Iterator[_Line]:
    """The significant (not blank, not comment) lines from ``pos`` on."""
    end_of_data = len(data)
    while pos < end_of_data:
        nl = data.find(b"\n", pos)
        end = end_of_data if nl < 0 else nl
        nxt = end_of_data if nl < 0 else nl + 1
        text = data[pos:end].lstrip(b" \t").rstrip(b" \t\r")
        if text and not text.startswith(b"#"):
            yield _Line(number, pos, text, nxt)
        pos = nxt
        number += 1


def _snippet(data: bytes, start: int) -> str:
    end = data.find(b"\n", start, start + _SNIPPET + 1)
    chunk = data[start : (start + _SNIPPET if end < 0 else end)].rstrip(b"\r")
    return repr(chunk.decode("utf-8", "replace"))


def _check_text(data: bytes) -> None:
    nul = data.find(b"\x00")
    if nul >= 0:
        raise Rejected("not_text", f"binary data: NUL byte at offset {nul}", line=data.count(b"\n", 0, nul) + 1)
    if data.isascii():   # the common case, and far cheaper than a decode
        return
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejected(
            "not_text", f"not UTF-8: {exc.reason} at offset {exc.start}", line=data.count(b"\n", 0, exc.start) + 1
        ) from None


def _int(text: str) -> int:
    """A decimal integer already matched by _INT/_DIGITS, saturated at +-10**18.

    int() refuses strings above 4300 digits (CPython's guard), and nothing in a
    header needs more than 18 digits: leading zeros are allowed, so drop them first.
    """
    sign = -1 if text.startswith("-") else 1
    digits = text.lstrip("+-").lstrip("0") or "0"
    if len(digits) > 18:
        return sign * 10**18
    return sign * int(digits)


def _first_token(text: bytes) -> bytes:
    return _BLANKS.split(text, maxsplit=1)[0]


def sniff_failmap(data: bytes) -> str | None:
    """``"a"`` for a FAILMAP file, ``"b"`` for FAILMAP-B, else None. Never raises."""
    data = bytes(data)
    start = len(_BOM) if data.startswith(_BOM) else 0
    for line in _lines(data, start, 1):
        token = _first_token(line.text)
        if token == MAGIC_A.encode():
            return "a"
        if token == MAGIC_B.encode():
            return "b"
        return None
    return None


@dataclass
class _Header:
    values: dict[str, tuple[str, int]] = field(default_factory=dict)   # known key -> (value, line)
    bindefs: list[tuple[str, int]] = field(default_factory=list)        # (value, line)
    extra: dict[str, str] = field(default_factory=dict)
    dies: int = 0
    dies_line: int = 0
    rows_pos: int = 0
    rows_line: int = 0


def _is_cut(data: bytes, line: _Line) -> bool:
    """The last line of data without its newline: possibly cut short by a truncation."""
    return line.next >= len(data) and not data.endswith(b"\n")


def _cut_in_header(data: bytes, line: _Line) -> None:
    # A header line that the data ends in cannot be followed by DIES rows and END:
    # whatever it looks like ("DIES", "STIME 2026"), the file is truncated.
    if _is_cut(data, line):
        raise Rejected("truncated", "file ends in the header, before the DIES rows", line=line.number)


def _read_header(data: bytes, magic: str, known: tuple[str, ...], with_bindef: bool) -> _Header:
    other = MAGIC_B if magic == MAGIC_A else MAGIC_A
    start = len(_BOM) if data.startswith(_BOM) else 0
    header = _Header()
    first = True
    last_line = 1
    for line in _lines(data, start, 1):
        last_line = line.number
        parts = _BLANKS.split(line.text, maxsplit=1)
        key_b = parts[0]
        rest = parts[1].decode("utf-8") if len(parts) > 1 else ""
        if first:
            first = False
            if key_b == other.encode():
                raise Rejected("unknown_format", f"a {other} file, expected {magic}", line=line.number)
            if key_b != magic.encode():
                raise Rejected("unknown_format", f"first line is not {magic}: {_snippet(data, line.start)}", line=line.number)
            _cut_in_header(data, line)
            if not (_DIGITS.fullmatch(rest) and _int(rest) == FORMAT_VERSION):
                raise Rejected("unsupported_version", f"{magic} version {rest!r}, only {FORMAT_VERSION} is known", line=line.number)
            continue
        _cut_in_header(data, line)
        if not _KEY.fullmatch(key_b):
            raise Rejected("bad_header", f"not a 'KEY value' header line: {_snippet(data, line.start)}", line=line.number)
        key = key_b.decode("ascii")
        if key == "DIES":
            if not _DIGITS.fullmatch(rest):
                raise Rejected("bad_header", f"DIES needs a non-negative integer, got {rest!r}", line=line.number)
            header.dies = _int(rest)
            header.dies_line = line.number
            header.rows_pos = line.next
            header.rows_line = line.number + 1
            return header
        if key == "END":
            raise Rejected("missing_key", "END before any DIES line", line=line.number)
        if key == magic:
            raise Rejected("bad_header", f"{magic} given twice", line=line.number)
        if key in known:
            if key in header.values:
                raise Rejected("bad_header", f"{key} given twice (first on line {header.values[key][1]})", line=line.number)
            if not rest:
                raise Rejected("bad_header", f"{key} has no value", line=line.number)
            header.values[key] = (rest, line.number)
        elif with_bindef and key == "BINDEF":
            header.bindefs.append((rest, line.number))
        else:
            header.extra[key] = f"{header.extra[key]}\n{rest}" if key in header.extra else rest
    if first:
        raise Rejected("unknown_format", f"no {magic} line: empty or comments only")
    raise Rejected("truncated", "file ends in the header, before DIES", line=last_line)


def _require(header: _Header, required: tuple[str, ...]) -> None:
    missing = [k for k in required if k not in header.values]
    if missing:
        raise Rejected("missing_key", f"required header key(s) missing: {', '.join(missing)}", line=header.dies_line)


def _stime(header: _Header) -> str:
    value, line = header.values["STIME"]
    ok = _STIME.fullmatch(value) is not None
    if ok:
        try:
            datetime.strptime(value, "%Y%m%d_%H%M%S")
        except ValueError:
            ok = False
    if not ok:
        raise Rejected("bad_header", f"STIME must be YYYYMMDD_HHMMSS, got {value!r}", line=line)
    return value


def _tokens(value: str) -> list[str]:
    return [t for t in re.split(r"[ \t]+", value) if t]


def _flat(header: _Header) -> str:
    if "FLAT" not in header.values:
        return "D"
    value, line = header.values["FLAT"]
    if value not in FLAT_SIDES:
        raise Rejected("bad_header", f"FLAT must be one of {'/'.join(FLAT_SIDES)}, got {value!r}", line=line)
    return value


def _die_size(header: _Header) -> tuple[float, float] | None:
    if "DIE_SIZE" not in header.values:
        return None
    value, line = header.values["DIE_SIZE"]
    toks = _tokens(value)
    if len(toks) != 2 or not all(_DECIMAL.fullmatch(t) for t in toks):
        raise Rejected("bad_header", f"DIE_SIZE needs two decimal numbers (mm), got {value!r}", line=line)
    w, h = float(toks[0]), float(toks[1])
    if not (0 < w < float("inf") and 0 < h < float("inf")):
        raise Rejected("bad_header", f"DIE_SIZE must be positive, got {value!r}", line=line)
    return (w, h)


def _origin(header: _Header) -> tuple[int, int] | None:
    if "ORIGIN" not in header.values:
        return None
    value, line = header.values["ORIGIN"]
    toks = _tokens(value)
    if len(toks) != 2 or not all(_INT.fullmatch(t) and -(2**31) <= _int(t) < 2**31 for t in toks):
        raise Rejected("bad_header", f"ORIGIN needs two integers (x y), got {value!r}", line=line)
    return (_int(toks[0]), _int(toks[1]))


def _bindefs(header: _Header) -> tuple[dict[int, bool], dict[int, str]]:
    bin_pass: dict[int, bool] = {}
    bin_names: dict[int, str] = {}
    for value, line in header.bindefs:
        toks = re.split(r"[ \t]+", value, maxsplit=2)
        if len(toks) < 2 or not _DIGITS.fullmatch(toks[0]) or _int(toks[0]) > 65535 or toks[1] not in ("P", "F"):
            raise Rejected("bad_header", f"BINDEF needs 'bin P|F name' with bin 0..65535, got {value!r}", line=line)
        b = _int(toks[0])
        if b in bin_pass:
            raise Rejected("bad_header", f"BINDEF for bin {b} given twice", line=line)
        bin_pass[b] = toks[1] == "P"
        if len(toks) == 3:
            bin_names[b] = toks[2]
    return bin_pass, bin_names


def _values_decl(header: _Header) -> list[str]:
    value, line = header.values["VALUES"]
    toks = _tokens(value)
    if not toks or not _DIGITS.fullmatch(toks[0]) or _int(toks[0]) != len(toks) - 1:
        raise Rejected("bad_header", f"VALUES needs 'k name1 .. namek' with exactly k names, got {value!r}", line=line)
    return toks[1:]


def _last_line(data: bytes) -> int:
    """Number of the last line that holds any byte (a final newline opens no line)."""
    return max(1, data.count(b"\n") + (0 if data.endswith(b"\n") else 1))


def _kernel_error(data: bytes, err: int, rows_done: int, n: int, k: int | None, line: int, line_start: int) -> Rejected:
    if err == kr.ERR_TRUNCATED:
        return Rejected("truncated", f"data ends after {rows_done} of {n} die rows (DIES {n})",
                        line=min(line, _last_line(data)))
    end = data.find(b"\n", line_start)
    if data[line_start : len(data) if end < 0 else end].strip(b" \t\r") == b"END":
        # END came early: fewer rows than DIES says is a truncated file (contract).
        return Rejected("truncated", f"END after {rows_done} of {n} die rows (DIES {n})", line=line)
    snippet = _snippet(data, line_start)
    if err == kr.ERR_BIN_RANGE:
        return Rejected("bad_row", f"bin outside 0..65535: {snippet}", line=line)
    if err == kr.ERR_COORD_RANGE:
        return Rejected("bad_row", f"x or y outside the 32-bit range: {snippet}", line=line)
    if err == kr.ERR_VALUE_COUNT:
        return Rejected("value_count", f"expected exactly {k} values after 'x y bin' (VALUES {k}): {snippet}", line=line)
    shape = "x y bin" if k is None else "x y bin v1..v" + str(k)
    return Rejected("bad_row", f"not a die row '{shape}': {snippet}", line=line)


def _expect_end(data: bytes, pos: int, line: int, n: int) -> None:
    seen_end = False
    for ln in _lines(data, pos, line):
        if not seen_end and ln.text == b"END":
            seen_end = True
            continue
        if not seen_end and _is_cut(data, ln) and b"END".startswith(ln.text):
            raise Rejected("truncated", f"data ends inside END after the {n} die rows", line=ln.number)
        where = "after END" if seen_end else f"where END should follow the {n} rows of DIES {n}"
        raise Rejected("extra_content", f"unexpected line {where}: {_snippet(data, ln.start)}", line=ln.number)
    if not seen_end:
        raise Rejected("truncated", f"no END after the {n} die rows", line=min(line, _last_line(data)))


def _fits(data: bytes, header: _Header) -> int:
    # DIES comes from the file: never hand the kernel a count that does not fit
    # an int64 or that the remaining bytes cannot possibly hold.
    n = header.dies
    if n > len(data) - header.rows_pos + 1:
        raise Rejected("truncated", f"DIES {n} rows cannot fit in the {len(data) - header.rows_pos} bytes left",
                       line=header.dies_line)
    return n


def _buffer(data) -> tuple[bytes, np.ndarray]:
    data = bytes(data)
    return data, np.frombuffer(data, dtype=np.uint8)


def parse_failmap_a(data: bytes) -> WaferMap:
    """A bucket-A fail map -> ``WaferMap`` (format ``"failmap"``); raises ``Rejected``."""
    data, buf = _buffer(data)
    _check_text(data)
    header = _read_header(data, MAGIC_A, A_KEYS, with_bindef=True)
    _require(header, A_REQUIRED)
    stime = _stime(header)
    flat = _flat(header)
    die_size = _die_size(header)
    origin = _origin(header)
    bin_pass, bin_names = _bindefs(header)
    n = _fits(data, header)
    xs, ys, bs, rows_done, err, eline, estart, end_pos, end_line = kr.parse_rows_a(buf, header.rows_pos, n, header.rows_line)
    if err != kr.OK:
        raise _kernel_error(data, err, rows_done, n, None, eline, estart)
    _expect_end(data, end_pos, end_line, n)
    keep, retest = kr.resolve_retests(xs, ys)
    if len(keep) != n:
        xs, ys, bs = xs[keep], ys[keep], bs[keep]
    get = header.values.get
    return WaferMap(
        format="failmap",
        x=xs,
        y=ys,
        bin=bs,
        retest_count=retest,
        lot=get("LOT")[0],
        wafer=get("WAFER")[0],
        product=get("PRODUCT", (None,))[0],
        step=get("STEP", (None,))[0],
        tester=get("TESTER", (None,))[0],
        partid=get("PARTID", (None,))[0],
        stime=stime,
        flat=flat,
        die_size=die_size,
        origin=origin,
        bin_pass=bin_pass,
        bin_names=bin_names,
        extra=header.extra,
        rows_read=n,
    )


def _values_text(offsets: np.ndarray, text: np.ndarray) -> pa.Array:
    n = len(offsets) - 1
    if len(text) <= _MAX_STRING_DATA:
        return pa.StringArray.from_buffers(n, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(text))
    return pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(text))


def _fallback_floats(values: np.ndarray, flags: np.ndarray, offsets: np.ndarray, text: np.ndarray) -> None:
    """Convert, with Python's float(), the values the kernel left to it (rare)."""
    rows, cols = np.nonzero(flags == kr.VALUE_FALLBACK)
    for r, c in zip(rows.tolist(), cols.tolist()):
        token = text[offsets[r] : offsets[r + 1]].tobytes().split(b",")[c]
        # The kernel's grammar is a subset of float()'s: this cannot raise.
        values[r, c] = float(token)


def parse_failmap_b(data: bytes) -> CompanionMap:
    """A bucket-B companion file -> ``CompanionMap``; raises ``Rejected``."""
    data, buf = _buffer(data)
    _check_text(data)
    header = _read_header(data, MAGIC_B, B_KEYS, with_bindef=False)
    _require(header, B_REQUIRED)
    stime = _stime(header)
    names = _values_decl(header)
    k = len(names)
    n = _fits(data, header)
    (xs, ys, bs, values, flags, offsets, text, n_fallback,
     rows_done, err, eline, estart, end_pos, end_line) = kr.parse_rows_b(buf, header.rows_pos, n, k, header.rows_line)
    if err != kr.OK:
        raise _kernel_error(data, err, rows_done, n, k, eline, estart)
    _expect_end(data, end_pos, end_line, n)
    if n_fallback:
        _fallback_floats(values, flags, offsets, text)
    na = flags == kr.VALUE_NA
    values_text = _values_text(offsets, text)
    keep, retest = kr.resolve_retests(xs, ys)
    if len(keep) != n:
        xs, ys, bs, values, na = xs[keep], ys[keep], bs[keep], values[keep], na[keep]
        values_text = values_text.take(pa.array(keep))
    get = header.values.get
    return CompanionMap(
        x=xs,
        y=ys,
        bin=bs,
        values=values,
        values_na=na,
        values_text=values_text,
        value_names=names,
        stime=stime,
        partid=get("PARTID", (None,))[0],
        tester=get("TESTER", (None,))[0],
        extra=header.extra,
        retest_count=retest,
    )
