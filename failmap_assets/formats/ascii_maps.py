"""ASCII row maps (one character or fixed-width code per die, one text line per map
row) in the dialects suppliers send, -> ``WaferMap``.

Every dialect is a header (key/value lines in its own syntax) plus a character
grid drawn as the wafer is seen: first line on top, first character on the left;
that is the canonical frame. A character means the same bin number as in G85's
ASCII BinType (digit -> its value, other character -> its code point), see
``g85.ascii_code_to_bin``; the original characters are listed in
``extra["bin_codes"]``.

Registered dialects (``WaferMap.format`` is ``"ascii:<name>"``):

* ``st_wm``     STMicroelectronics "WM - V1.3": TAB-separated ``KEY<TAB>value``
  header, ``WMXDIM=`` / ``WMYDIM=`` grid size, NULBC (null character code), TARGBC
  (target die character code), FLAT degrees, GOODS.
* ``binlist``   Microchip ``KEY = value`` header, ``BIN = c;COUNT = n;STATUS =
  PASS|FAIL;DESCR = text`` legend, ``BINLIST = {`` grid ``}``; FNLOC degrees.
* ``maxxy``     Legic / Melexis: ``WaferId:``, ``Flat/Notch: Down`` or ``Orient: 6``
  (clock position), ``MaxXY: cols rows``, ``TotDie`` / ``Tested`` / ``Pickable``.
* ``versid``    Infineon ``VERSID``: six-letter keywords (ROWCNT, COLCNT, FNLOC1,
  ORLOC1, PASBIN, SKIPDI, REFBIN, REFPXn/REFPYn, COMPRE = code width) and rows
  ``MAPnnn <codes>``.

Angles (FLAT, FNLOC, FNLOC1) follow SEMI E5: degrees clockwise from the bottom,
0 D, 90 L, 180 U, 270 R (sources and real-file checks: ``g85.degrees_to_flat``,
formats/README.md; the real ST file does not show its flat, so FLAT is assumed).
Melexis ``Orient`` is a clock position (the real file: 6 = bottom). A header value
the dialect does not know is a reject naming the keyword and its line.

Adding a dialect: write one function ``parse(lines, pass_bins) -> WaferMap`` and
register it with ``@dialect("name", sniff)``, where ``sniff(lines)`` looks at the
first lines (decoded text, line ends removed) and returns True for its files.
Detection tries the dialects in registration order; keep sniffs specific. Use
:func:`build_wafer` to turn the grid into a ``WaferMap``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import AbstractSet

import numpy as np

from failmap_assets.wafer.model import WaferMap
from failmap_assets.formats.g85 import ascii_code_to_bin, compact_stime, decode_grid, degrees_to_flat, merge_verdicts
from failmap_assets.formats.values import INT32, parse_count, parse_int, quote
from failmap_assets.wafer.rejects import Rejected

Lines = list[str]
SNIFF_LINES = 400  # header lengths seen are far below; a long bin legend still fits


@dataclass(frozen=True)
class Dialect:
    name: str
    sniff: Callable[[Lines], bool]
    parse: Callable[[Lines, AbstractSet[int] | None], WaferMap]


DIALECTS: dict[str, Dialect] = {}


def dialect(name: str, sniff: Callable[[Lines], bool]):
    """Register ``parse`` as the reader of dialect ``name`` (decorator)."""

    def register(parse):
        DIALECTS[name] = Dialect(name, sniff, parse)
        return parse

    return register


def text_lines(data: bytes) -> Lines:
    """Decoded lines without line ends (see :func:`decode_text`)."""
    return decode_text(data).splitlines()


def decode_text(data: bytes) -> str:
    """UTF-8 (BOM allowed), UTF-16 with a BOM (Windows tools), else Latin-1."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def detect_dialect(lines: Lines) -> str | None:
    head = lines[:SNIFF_LINES]
    for d in DIALECTS.values():
        if d.sniff(head):
            return d.name
    return None


def read_ascii_map(data: bytes, pass_bins: AbstractSet[int] | None = None, dialect_name: str | None = None) -> list[WaferMap]:
    """The wafer of an ASCII row map; the dialect is detected unless given."""
    lines = text_lines(data)
    name = dialect_name or detect_dialect(lines)
    if name is None or name not in DIALECTS:
        raise Rejected("unknown_format", "text is not one of the known ASCII map dialects: " + ", ".join(DIALECTS))
    return [DIALECTS[name].parse(lines, pass_bins)]


# ---------------------------------------------------------------------------
# Shared building blocks
# ---------------------------------------------------------------------------


def build_wafer(
    name: str,
    bins: np.ndarray,
    codes: dict[str, int],
    *,
    pass_bins: AbstractSet[int] | None,
    verdicts: dict[int, bool] | None = None,
    names: dict[int, str] | None = None,
    flat: str | None,
    extra: dict[str, str],
    orig: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None,
    **meta,
) -> WaferMap:
    """``bins[row, col]`` (-1: no die) -> WaferMap in the canonical frame."""
    row_idx, col_idx = np.nonzero(bins >= 0)
    die_bins = bins[row_idx, col_idx]
    extra = dict(extra)
    extra["bin_codes"] = json.dumps(codes, sort_keys=True)
    if flat is None:
        extra["flat_source"] = "default (file states no flat)"
    ox = oy = None
    if orig is not None:
        ox, oy = (a.astype(np.int32) for a in orig(col_idx, row_idx))
    return WaferMap(
        format=f"ascii:{name}",
        x=col_idx.astype(np.int32),
        y=row_idx.astype(np.int32),
        bin=die_bins.astype(np.int32),
        retest_count=np.zeros(len(die_bins), dtype=np.int16),
        flat=flat or "D",
        bin_pass=merge_verdicts(verdicts or {}, np.unique(die_bins).tolist(), pass_bins),
        bin_names=names or {},
        extra=extra,
        orig_x=ox,
        orig_y=oy,
        rows_read=int(len(die_bins)),
        **meta,
    )


def char_grid(rows: Lines, columns: int | None, nulls: set[str], what: str, first_line: int | None = None):
    """One-character codes -> (bins grid, code map); checks the row widths.

    ``first_line`` (1-based line number of the first grid row) locates errors."""
    if columns is not None:
        bad = [i for i, r in enumerate(rows) if len(r) != columns]
        if bad:
            raise Rejected(
                "bad_row", f"{what}: grid row {bad[0] + 1} has {len(rows[bad[0]])} characters, expected {columns}",
                line=None if first_line is None else first_line + bad[0],
            )
    grid = decode_grid(rows, "ascii", nulls, columns, what)
    return grid.bins, grid.codes


def grid_rows(lines: Lines, start: int, count: int | None, what: str) -> tuple[Lines, int]:
    """The map rows from ``start``: blank lines before them skipped, then ``count``
    lines (or, without a count, every line up to the next blank one)."""
    i = start
    while i < len(lines) and not lines[i].strip():
        i += 1
    if count is None:
        j = i
        while j < len(lines) and lines[j].strip():
            j += 1
        return [r.rstrip() for r in lines[i:j]], j
    rows = [r.rstrip("\r\n") for r in lines[i : i + count]]
    if len(rows) < count:
        raise Rejected("truncated", f"{what}: the header announces {count} grid rows, the file holds {len(rows)}", line=i + 1)
    return rows, i + count


def _int(value: str | None, key: str, what: str, lines: Lines, lo: int = INT32[0], hi: int = INT32[1]) -> int | None:
    """Header value ``key`` as an integer in ``lo..hi``; a reject names the key and its line."""
    if value is None or not value.strip():
        return None
    try:
        return parse_int(value, f"{what}: {key}", lo=lo, hi=hi, reason="bad_header")
    except Rejected as exc:
        raise Rejected(exc.reason, exc.detail, line=_line_of(lines, key)) from None


def _flat(value: str | None, key: str, what: str, lines: Lines) -> str | None:
    """Header angle or side word ``key`` -> flat side (E5 FNLOC reading); a reject names the key and its line."""
    try:
        return degrees_to_flat(value, f"{what} {key}")
    except Rejected as exc:
        raise Rejected(exc.reason, exc.detail, line=_line_of(lines, key)) from None


def _line_of(lines: Lines, key: str) -> int | None:
    """1-based line of the first header line that starts with ``key`` (for reject messages)."""
    for number, line in enumerate(lines[:SNIFF_LINES], start=1):
        if line.lstrip().upper().startswith(key.upper()):
            return number
    return None


def _size_mm(x: str | None, y: str | None, unit: str | None) -> tuple[float, float] | None:
    """Die size in mm from values and a unit such as ``microns``, ``mm``, ``(0.1)MIL``."""
    if not x or not y:
        return None
    u = (unit or "").strip().lower()
    scale = 1.0
    m = re.match(r"\(\s*([\d.]+)\s*\)\s*(.*)", u)
    if m:
        scale, u = float(m.group(1)), m.group(2).strip()
    per_mm = {"mm": 1.0, "um": 1e-3, "micron": 1e-3, "microns": 1e-3, "mil": 0.0254, "mils": 0.0254, "": None}
    factor = per_mm.get(u)
    try:
        if factor is None:
            return None
        return round(float(x) * scale * factor, 6), round(float(y) * scale * factor, 6)
    except ValueError:
        return None


# ---------------------------------------------------------------------------
# STMicroelectronics "WM - V1.3"
# ---------------------------------------------------------------------------


def _first(lines: Lines) -> str:
    return next((line.strip() for line in lines if line.strip()), "")


@dialect("st_wm", lambda lines: re.match(r"WM\s*-\s*V\d", _first(lines)) is not None)
def _parse_st(lines: Lines, pass_bins) -> WaferMap:
    what = "ST WM map"
    header: dict[str, str] = {}
    units: dict[str, str] = {}
    dims: dict[str, int] = {}
    grid_at = None
    for i, line in enumerate(lines[1:], start=1):
        m = re.match(r"\s*WM([XY])DIM\s*=\s*(\d+)\s*$", line)
        if m:
            dims[m.group(1)] = parse_count(m.group(2), f"{what}: WM{m.group(1)}DIM", reason="bad_header", line=i + 1)
            if len(dims) == 2:
                grid_at = i + 1
                break
            continue
        _st_key_value(line, header, units)
    if grid_at is None:
        raise Rejected("bad_header", f"{what}: no WMXDIM= / WMYDIM= grid size")
    rows, end = grid_rows(lines, grid_at, dims["Y"], what)
    first_line = end - len(rows) + 1
    for line in lines[end:]:  # trailer: EDATE, ETIME, CHECKSUM
        _st_key_value(line, header, units)
    if "NULBC" not in header:
        raise Rejected("bad_header", f"{what}: no NULBC (character code of positions without a die)")
    null = chr(_int(header["NULBC"], "NULBC", what, lines, lo=0, hi=0x10FFFF))  # a character code
    bins, codes = char_grid(rows, dims["X"], {null}, what, first_line)
    names = {}
    target = _int(header.get("TARGBC"), "TARGBC", what, lines, lo=0, hi=0x10FFFF)
    if target is not None and chr(target) in codes:
        names[codes[chr(target)]] = "target"
    xs, ys = _int(header.get("XSTRP"), "XSTRP", what, lines), _int(header.get("YSTRP"), "YSTRP", what, lines)
    orig = None
    origin = None
    if xs is not None and ys is not None:
        # Grid column c is X = XSTRP + c, row r is Y = YSTRP + r (the targets XBE/YBE TARGn sit there).
        orig = lambda c, r: (c + xs, r + ys)  # noqa: E731
        tx, ty = _int(header.get("XBE TARG1"), "XBE TARG1", what, lines), _int(header.get("YBE TARG1"), "YBE TARG1", what, lines)
        if tx is not None and ty is not None:
            origin = (tx - xs, ty - ys)
    return build_wafer(
        "st_wm", bins, codes, pass_bins=pass_bins, names=names, flat=_flat(header.get("FLAT"), "FLAT", what, lines),
        extra={k: v for k, v in header.items()}, orig=orig, origin=origin,
        lot=header.get("LOT") or None, wafer=header.get("WAFER") or None, product=header.get("PRODUCT") or None,
        tester=header.get("TEST SYSTEM") or header.get("PROBER") or None,
        stime=compact_stime(f"{header.get('DATE', '')} {header.get('TIME', '')}"),
        die_size=_size_mm(header.get("XSTEP"), header.get("YSTEP"), units.get("XSTEP")),
    )


def _st_key_value(line: str, header: dict, units: dict) -> None:
    if "\t" not in line:
        return
    parts = [p.strip() for p in line.split("\t")]
    key = parts[0]
    if not key:
        return
    header[key] = parts[1] if len(parts) > 1 else ""
    if len(parts) > 3 and parts[2].upper() == "UNITS":
        units[key] = parts[3]


# ---------------------------------------------------------------------------
# Microchip BINLIST
# ---------------------------------------------------------------------------

_BINLIST_START = re.compile(r"^\s*BINLIST\s*=\s*\{\s*$")
_NO_DIE = re.compile(r"\bno[\s_-]*die\b|\bnull\b|\bempty\b", re.I)


@dialect("binlist", lambda lines: any(_BINLIST_START.match(line) for line in lines))
def _parse_binlist(lines: Lines, pass_bins) -> WaferMap:
    what = "BINLIST map"
    header: dict[str, str] = {}
    legend: list[dict[str, str]] = []
    start = next(i for i, line in enumerate(lines) if _BINLIST_START.match(line))
    for line in lines[:start]:
        if re.match(r"^\s*BIN\s*=", line):
            legend.append({k.strip().upper(): v.strip() for k, _, v in (f.partition("=") for f in line.split(";"))})
        elif "=" in line:
            key, _, value = line.partition("=")
            header[key.strip().upper()] = value.strip()
    if header.get("BINTYPE", "ASCII").upper() != "ASCII":
        raise Rejected("bad_bin_type", f"{what}: BINTYPE {quote(header['BINTYPE'])} is not supported (ASCII only)",
                       line=_line_of(lines, "BINTYPE"))
    rows = []
    for line in lines[start + 1 :]:
        body = line.rstrip()
        if body.endswith("}"):
            if body[:-1].strip():
                rows.append(body[:-1])
            break
        rows.append(body)
    else:
        raise Rejected("truncated", f"{what}: BINLIST is not closed with '}}'")
    n_rows, n_cols = _int(header.get("ROWCT"), "ROWCT", what, lines), _int(header.get("COLCT"), "COLCT", what, lines)
    if n_rows is not None and len(rows) != n_rows:
        raise Rejected("row_count", f"{what}: ROWCT says {n_rows} rows, BINLIST holds {len(rows)}")

    nulls = {b["BIN"] for b in legend if len(b.get("BIN", "")) == 1 and _NO_DIE.search(b.get("DESCR", ""))}
    if not nulls and not any(b.get("BIN") == "." for b in legend):
        nulls = {"."}  # no legend entry says which code is "no die": the common '.'
    bins, codes = char_grid(rows, n_cols, nulls, what, start + 2)
    verdicts, names, stated = {}, {}, {}
    for b in legend:
        code = b.get("BIN", "")
        if len(code) != 1 or code in nulls:
            continue
        number = int(ascii_code_to_bin(np.array([ord(code)]))[0])
        status = b.get("STATUS", "").upper()
        if status in ("PASS", "FAIL"):
            verdicts[number] = status == "PASS"
        names[number] = b.get("DESCR") or code
        if b.get("COUNT", "").isdigit():
            stated[number] = parse_count(b["COUNT"], f"{what}: COUNT of BIN {quote(code)}", reason="bad_header")
    extra = dict(header)
    values, counts = np.unique(bins[bins >= 0], return_counts=True)
    found = dict(zip(values.tolist(), counts.tolist()))
    bad = {k: v for k, v in stated.items() if found.get(k, 0) != v}
    if bad:
        extra["bin_count_mismatch"] = ";".join(f"{k}: file {v}, map {found.get(k, 0)}" for k, v in sorted(bad.items()))
    return build_wafer(
        "binlist", bins, codes, pass_bins=pass_bins, verdicts=verdicts, names=names,
        flat=_flat(header.get("FNLOC"), "FNLOC", what, lines), extra=extra,
        lot=header.get("WAFERLOTID") or header.get("FABLOTID") or None, wafer=header.get("WAFERID") or None,
        product=header.get("DEVICE") or None, stime=compact_stime(header.get("TESTDATE")),
        die_size=_size_mm(header.get("XDIESIZE"), header.get("YDIESIZE"), header.get("DIEUNITS")),
    )


# ---------------------------------------------------------------------------
# Legic / Melexis "WaferId: ... MaxXY: ..."
# ---------------------------------------------------------------------------

_CLOCK = {"12": "U", "0": "U", "3": "R", "6": "D", "9": "L"}


def _maxxy_header(lines: Lines) -> tuple[dict[str, str], int]:
    header, i = {}, 0
    while i < len(lines) and re.match(r"^\s*[\w/ ]+:\s", lines[i] + " "):
        key, _, value = lines[i].partition(":")
        header[key.strip().lower()] = value.strip()
        i += 1
    return header, i


@dialect("maxxy", lambda lines: re.match(r"WaferId\s*:", _first(lines)) is not None and "maxxy" in _maxxy_header(lines)[0])
def _parse_maxxy(lines: Lines, pass_bins) -> WaferMap:
    what = "WaferId/MaxXY map"
    header, end = _maxxy_header(lines)
    size = header["maxxy"].split()
    if len(size) != 2 or not all(s.isdigit() for s in size):
        raise Rejected("bad_header", f"{what}: MaxXY {quote(header['maxxy'])} is not 'columns rows'", line=_line_of(lines, "MaxXY"))
    n_cols, n_rows = (parse_count(v, f"{what}: MaxXY", reason="bad_header", line=_line_of(lines, "MaxXY")) for v in size)
    rows, stop = grid_rows(lines, end, n_rows, what)
    bins, codes = char_grid(rows, n_cols, {"."}, what, stop - len(rows) + 1)
    if "orient" in header:
        flat = _CLOCK.get(header["orient"].strip())
        if flat is None:
            raise Rejected("bad_orientation", f"{what}: Orient {quote(header['orient'])} is not a clock position 12/3/6/9",
                           line=_line_of(lines, "Orient"))
    else:
        key = next((k for k in ("flat/notch", "flat", "notch") if header.get(k)), "flat/notch")
        flat = _flat(header.get(key), {"flat/notch": "Flat/Notch", "flat": "Flat", "notch": "Notch"}[key], what, lines)
    return build_wafer(
        "maxxy", bins, codes, pass_bins=pass_bins, flat=flat, extra={k: v for k, v in header.items()},
        wafer=header.get("waferid") or None,
    )


# ---------------------------------------------------------------------------
# Infineon VERSID
# ---------------------------------------------------------------------------

_MAP_ROW = re.compile(r"^MAP(\d+)\s(.*)$")
# Quadrant of the origin (E5 ORLOC): coordinates count from 1 at that corner, away from it.
_QUADRANT_FLIPS = {"1": (True, False), "2": (False, False), "3": (False, True), "4": (True, True)}


@dialect("versid", lambda lines: re.match(r"VERSID\s+\S", _first(lines)) is not None)
def _parse_versid(lines: Lines, pass_bins) -> WaferMap:
    what = "VERSID map"
    header: dict[str, str] = {}
    rows: list[str] = []
    first_line = None
    for number, line in enumerate(lines, start=1):
        m = _MAP_ROW.match(line)
        if m:
            first_line = first_line or number
            if m.group(1).lstrip("0") != str(len(rows) + 1):
                raise Rejected("bad_row", f"{what}: row label MAP{quote(m.group(1))} out of sequence", line=number)
            rows.append(m.group(2).rstrip())
        elif line.strip():
            key, _, value = line.strip().partition(" ")
            header[key.upper()] = value.strip()
    n_rows, n_cols = _int(header.get("ROWCNT"), "ROWCNT", what, lines), _int(header.get("COLCNT"), "COLCNT", what, lines)
    width = _int(header.get("COMPRE"), "COMPRE", what, lines, lo=0, hi=8) or 1  # code width in characters
    if n_rows is not None and len(rows) != n_rows:
        raise Rejected("row_count", f"{what}: ROWCNT says {n_rows} rows, the file holds {len(rows)} MAPnnn lines")
    if not rows:
        raise Rejected("no_rows", f"{what}: no MAPnnn rows")

    codes_of = lambda key: {c.strip() for c in header.get(key, "").split(",") if c.strip()}  # noqa: E731
    refs, passing = codes_of("REFBIN"), codes_of("PASBIN")
    nulls = codes_of("SKIPDI") - refs
    bins, codes = _coded_grid(rows, width, n_cols, nulls, what, first_line)
    # PASBIN lists the passing codes, so every other die code is a fail (when PASBIN is given).
    verdicts = {number: code in passing for code, number in codes.items()} if passing else {}
    names = {codes[c]: "reference" for c in refs if c in codes}

    orig, origin = None, None
    orloc = header.get("ORLOC1", "").strip()
    flips = _QUADRANT_FLIPS.get(orloc)
    if orloc and flips is None and orloc != "0":   # 0: centre origin, positions not numbered here
        raise Rejected("bad_orientation", f"{what}: ORLOC1 {quote(orloc)} is not an origin quadrant 1..4",
                       line=_line_of(lines, "ORLOC1"))
    h, w = bins.shape
    if flips is not None:
        fx, fy = flips
        orig = lambda c, r: ((w - c) if fx else (c + 1), (h - r) if fy else (r + 1))  # noqa: E731
        px, py = _int(header.get("REFPX1"), "REFPX1", what, lines), _int(header.get("REFPY1"), "REFPY1", what, lines)
        if px is not None and py is not None:
            origin = ((w - px) if fx else (px - 1), (h - py) if fy else (py - 1))
    return build_wafer(
        "versid", bins, codes, pass_bins=pass_bins, verdicts=verdicts, names=names,
        flat=_flat(header.get("FNLOC1"), "FNLOC1", what, lines), extra=header, orig=orig, origin=origin,
        lot=header.get("LOTMEA") or None, wafer=header.get("MAPID1") or None, product=header.get("DESIGN") or None,
        stime=compact_stime(header.get("TIMEST")), die_size=_size_mm(header.get("XDIES1"), header.get("YDIES1"), "mm"),
    )


def _coded_grid(rows: Lines, width: int, n_cols: int | None, nulls: set[str], what: str, first_line: int | None):
    """Fixed-width codes. Width 1: the shared one-character rule. Wider codes: a
    number if all digits, else 50000 + its rank among the file's other codes."""
    if width == 1:
        return char_grid(rows, n_cols, nulls, what, first_line)
    cols = n_cols or len(rows[0]) // width
    tokens = []
    for i, r in enumerate(rows):
        if len(r) != cols * width:
            raise Rejected("bad_row", f"{what}: row {i + 1} has {len(r)} characters, expected {cols * width}",
                           line=None if first_line is None else first_line + i)
        tokens.append([r[j : j + width] for j in range(0, len(r), width)])
    distinct = sorted({t for row in tokens for t in row} - nulls)
    words = [t for t in distinct if not t.isdigit()]
    codes = {t: int(t) if t.isdigit() else 50000 + words.index(t) for t in distinct}
    bins = np.array([[codes.get(t, -1) if t not in nulls else -1 for t in row] for row in tokens], dtype=np.int32)
    return bins, codes
