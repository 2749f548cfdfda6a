"""SEMI G85 wafer maps (XML; G85-1101 and G85-0703) -> ``WaferMap``.

Layout of a G85 file (element and attribute names are matched by local name and
case-insensitively, because supplier files differ in prefixes and spelling, e.g.
``ProductId`` / ``ProductID``)::

    <Map WaferId|SubstrateId FormatRevision ...>          (optionally inside <Maps>)
      <Device BinType NullBin Rows Columns Orientation OriginLocation ...>
        <ReferenceDevice ReferenceDeviceX ReferenceDeviceY/>*
        <Bin BinCode BinCount BinQuality BinDescription/>*
        <Data><Row>codes of one map row</Row>...</Data>

Rules applied here:

* ``<Row>`` elements are the map as drawn: first row on top, first code on the
  left. ``OriginLocation`` only numbers the positions (``orig_x`` / ``orig_y``, and
  the ``ReferenceDevice`` coordinates); it never reorders the rows.
* ``BinType``: ``ASCII`` one character per die, ``HexaDecimal`` two hex digits,
  ``Integer2`` four hex digits (a 2-byte integer), ``Decimal`` decimal numbers,
  separated by blanks/commas or of fixed width ``len(row) / Columns``. Any type may
  also be blank/comma separated. Missing ``BinType`` is inferred from the row width.
* Positions holding ``NullBin`` (or a code whose ``BinQuality`` is ``Null``) are not
  dies.
* ``Orientation`` is the flat/notch angle in degrees, clockwise from the bottom of
  the drawn map (SEMI E5 FNLOC convention): 0 = down, 90 = left, 180 = up,
  270 = right (sources: :func:`degrees_to_flat`).
* Every rejected construct is named, with the line of the element that holds it
  (expat's position of its start tag; map rows: the line of that ``<Row>``).
* ``BinQuality`` Pass/Fail gives the verdict; other bins fall back to the
  configured pass bins, then to "bin 1 passes".

This module also holds the few helpers that SEMI E142 (same BinType encodings) and
the ASCII row maps (same one-character codes) reuse, so a code means the same bin
number in every format: :func:`parse_xml`, :func:`decode_grid`,
:func:`ascii_code_to_bin`, :func:`merge_verdicts`.
"""

from __future__ import annotations

import json
import re
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import AbstractSet
from xml.etree.ElementTree import Element, ParseError, TreeBuilder

import numpy as np
from defusedxml.ElementTree import DefusedXMLParser
from defusedxml.common import DefusedXmlException

from failmap_assets.formats.values import finite_float, parse_count, parse_int, quote
from failmap_assets.wafer.model import WaferMap
from failmap_assets.wafer.rejects import Rejected

FORMAT = "g85"

# ---------------------------------------------------------------------------
# Safe, tolerant XML
# ---------------------------------------------------------------------------

_DECL = re.compile(rb"^\s*<\?[A-Za-z]+[^?]*\?>", re.S)
_DECL_ENCODING = re.compile(rb"encoding\s*=\s*[\"']([A-Za-z0-9._-]+)[\"']")
_PREFIXED_NAME = re.compile(rb"</?([A-Za-z_][\w.-]*):[A-Za-z_]|\s([A-Za-z_][\w.-]*):[A-Za-z_][\w.-]*\s*=")
_DECLARED_PREFIX = re.compile(rb"xmlns:([A-Za-z_][\w.-]*)\s*=")
_PROLOG = re.compile(rb"^(\s*(<\?.*?\?>|<!--.*?-->|<!DOCTYPE[^>]*>))*\s*", re.S)
_ROOT_TAG = re.compile(rb"<[A-Za-z_][\w.:-]*")


def parse_xml(data: bytes, what: str) -> Element:
    """Parse untrusted XML without entity expansion or external references.

    defusedxml refuses entity declarations (billion laughs) and external entities
    (XXE); such files are rejected as ``unsafe_xml``. Defects seen in real supplier
    files are tolerated by re-parsing a repaired copy: a broken or misplaced
    declaration (``<?sml version="1.0"?>``, blanks before ``<?xml``) and namespace
    prefixes used without being declared.
    """
    try:
        return _safe_fromstring(data)
    except _XML_ERRORS as first:
        for candidate in _repairs(data, str(first)):
            try:
                # Lines cut off the front by a repair are added back, so positions
                # in messages are those of the file as received.
                return _safe_fromstring(candidate, line_shift=_lines_removed(data, candidate))
            except _XML_ERRORS:
                continue
        raise _bad_xml(what, first) from None


def _lines_removed(data: bytes, candidate: bytes) -> int:
    """Line breaks a repair removed before the root element (the repairs only cut the prolog)."""
    def breaks_before_root(text: bytes) -> int:
        end = _PROLOG.match(text).end()
        return text.count(b"\n", 0, end)
    return max(0, breaks_before_root(data) - breaks_before_root(candidate))


# expat refuses a declared encoding it does not know (LookupError) or cannot
# stream (ValueError: "multi-byte encodings are not supported", e.g. Shift_JIS,
# UTF-32): the repairs then transcode the body with Python's codec.
_XML_ERRORS = (ParseError, LookupError, ValueError)


# Line of each parsed element's start tag, for reject messages (ElementTree keeps no
# positions). Weak keys: an entry lives as long as its element.
_LINES: weakref.WeakKeyDictionary[Element, int] = weakref.WeakKeyDictionary()


class _LineTarget:
    """Tree builder that notes expat's current line at every start tag."""

    def __init__(self, line_shift: int) -> None:
        self.builder = TreeBuilder()
        self.expat = None
        self.line_shift = line_shift

    def start(self, tag: str, attrib: dict) -> Element:
        el = self.builder.start(tag, attrib)
        _LINES[el] = self.expat.CurrentLineNumber + self.line_shift
        return el

    def end(self, tag: str) -> Element:
        return self.builder.end(tag)

    def data(self, text: str) -> None:
        self.builder.data(text)

    def close(self) -> Element:
        return self.builder.close()


def _safe_fromstring(data: bytes, line_shift: int = 0) -> Element:
    target = _LineTarget(line_shift)
    parser = DefusedXMLParser(target=target, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    target.expat = parser.parser   # defusedxml's parser is the pure-Python one: its expat object is public
    try:
        parser.feed(data)
        return parser.close()
    except DefusedXmlException as exc:
        raise Rejected("unsafe_xml", f"XML with entity declarations or external references is refused ({exc!r})") from None


def line_of(el: Element | None) -> int | None:
    """Line of the element's start tag in the parsed file (None if unknown)."""
    return None if el is None else _LINES.get(el)


@contextmanager
def located(el: Element):
    """Rejects raised inside without a line get the line of ``el``'s start tag."""
    try:
        yield
    except Rejected as exc:
        if exc.line is not None:
            raise
        raise Rejected(exc.reason, exc.detail, line=line_of(el), member=exc.member) from None


def _repairs(data: bytes, error: str) -> Iterator[bytes]:
    text = (data[3:] if data.startswith(b"\xef\xbb\xbf") else data).lstrip()
    candidates = [text]
    decl = _DECL.match(text)
    if decl is not None:
        # Drop the declaration; keep its encoding by transcoding the rest to UTF-8.
        body = text[decl.end():]
        enc = _DECL_ENCODING.search(decl.group(0))
        try:
            if enc is not None:
                body = body.decode(enc.group(1).decode("ascii")).encode("utf-8")
            candidates.append(body.lstrip())
        except (LookupError, UnicodeDecodeError):
            pass
    for candidate in candidates:
        yield candidate
        if "unbound prefix" in error or candidate is not text:
            fixed = _declare_prefixes(candidate)
            if fixed is not None:
                yield fixed


def _declare_prefixes(text: bytes) -> bytes | None:
    """Bind every undeclared prefix to a placeholder namespace on the root element.

    Works on the bytes (any ASCII-compatible encoding), so the text is not re-encoded.
    """
    used = {a or b for a, b in _PREFIXED_NAME.findall(text)} - {b"xml", b"xmlns"}
    missing = sorted(used - set(_DECLARED_PREFIX.findall(text)))
    prolog = _PROLOG.match(text)
    root = _ROOT_TAG.match(text, prolog.end())
    if not missing or root is None:
        return None
    decl = b"".join(b' xmlns:' + p + b'="urn:undeclared:' + p + b'"' for p in missing)
    return text[: root.end()] + decl + text[root.end():]


def _bad_xml(what: str, exc: Exception) -> Rejected:
    if isinstance(exc, ParseError):
        line = getattr(exc, "position", (None,))[0]
        return Rejected("bad_xml", f"{what} file is not well-formed XML: {quote(str(exc), 200)}", line=line)
    # Only the XML declaration names an encoding.
    return Rejected("bad_xml", f"{what} file: XML declaration encoding cannot be read ({quote(str(exc), 120)})", line=1)


def local(tag: str) -> str:
    """Element or attribute name without its namespace, lower case."""
    return tag.rpartition("}")[2].lower()


def attrs(el: Element) -> dict[str, str]:
    """Attributes by lower-case local name (values stripped)."""
    return {local(k): v.strip() for k, v in el.attrib.items()}


def original_attrs(el: Element) -> dict[str, str]:
    """Attributes under their original local names, for ``WaferMap.extra``."""
    return {k.rpartition("}")[2]: v for k, v in el.attrib.items()}


def children(el: Element, name: str) -> list[Element]:
    return [c for c in el if local(c.tag) == name]


def descendants(el: Element, name: str) -> Iterator[Element]:
    return (c for c in el.iter() if local(c.tag) == name)


def child_text(el: Element, name: str) -> str | None:
    for c in children(el, name):
        return (c.text or "").strip() or None
    return None


# ---------------------------------------------------------------------------
# Bin codes (shared with E142 and the ASCII row maps)
# ---------------------------------------------------------------------------

_BIN_TYPES = {"ascii": "ascii", "decimal": "decimal", "hexadecimal": "hex", "hex": "hex", "integer2": "int2"}
_WIDTH = {"ascii": 1, "hex": 2, "int2": 4}
_SEPARATED = re.compile(r"[\s,;]+")


def ascii_code_to_bin(code_points: np.ndarray) -> np.ndarray:
    """One-character bin codes -> bin numbers: a digit is its value, any other
    character its code point (``'A'`` -> 65). Digits map to 0..9 and no printable
    character is below 32, so two different characters never share a number."""
    cp = np.asarray(code_points, dtype=np.int64)
    return np.where((cp >= 48) & (cp <= 57), cp - 48, cp)


def bin_type_of(value: str | None) -> str | None:
    """Normalised BinType (``ascii``, ``decimal``, ``hex``, ``int2``); None if absent."""
    if value is None or not value.strip():
        return None
    key = value.strip().lower()
    if key not in _BIN_TYPES:
        raise Rejected("bad_bin_type", f"unknown BinType {quote(value)} (expected ASCII, Decimal, HexaDecimal or Integer2)")
    return _BIN_TYPES[key]


def code_to_bin(code: str, bin_type: str) -> int:
    """One bin code (as written in the file) -> bin number."""
    try:
        if bin_type == "ascii":
            if len(code) != 1:
                raise ValueError
            return int(ascii_code_to_bin(np.array([ord(code)]))[0])
        if len(code) > 8:  # no valid code is longer; int() of a long digit string is slow or refused
            raise ValueError
        value = int(code, 10 if bin_type == "decimal" else 16)
    except ValueError:
        raise Rejected("bad_bin_code", f"bin code {quote(code)} is not valid for BinType {bin_type}") from None
    if not 0 <= value <= 0xFFFF:
        raise Rejected("bad_bin_code", f"bin code {quote(code)} is outside 0..65535")
    return value


def bin_definitions(elements: list[Element], null_codes, bin_type: str, *, skip_empty: bool = False):
    """Bin definition elements (attributes bincode, binquality, bindescription, bincount)
    -> (pass/fail verdicts, names, stated die counts), each keyed by bin number.

    Null codes are skipped; an empty code is skipped with ``skip_empty`` (E142) and
    otherwise rejected as a bad bin code (G85), on the line of its element.
    """
    verdicts, names, stated = {}, {}, {}
    for el in elements:
        d = attrs(el)
        code = d.get("bincode")
        if code is None or code in null_codes or (skip_empty and not code):
            continue
        with located(el):
            number = code_to_bin(code, bin_type)
            if d.get("bincount", "").isdigit():
                stated[number] = parse_count(d["bincount"], f"BinCount of bin code {quote(code)}", reason="bad_header")
        verdict = verdict_of(d.get("binquality"))
        if verdict is not None:
            verdicts[number] = verdict
        names[number] = d.get("bindescription") or code
    return verdicts, names, stated


@dataclass
class Grid:
    """Decoded map rows: ``bins[row, col]`` is the bin number, -1 where no die."""

    bins: np.ndarray
    codes: dict[str, int]      # code text as written -> bin number (dies only)
    bin_type: str


def decode_grid(
    rows: list[str], bin_type: str | None, null_codes: Iterable[str], columns: int | None, what: str,
    lines: list[int | None] | None = None,
) -> Grid:
    """Decode map rows (already stripped of surrounding whitespace) into a grid.

    ``lines``: the file line of each row, for reject messages."""
    if not rows:
        raise Rejected("no_rows", f"{what} holds no map rows")
    nulls = {c for c in null_codes if c is not None}
    if bin_type is None:
        bin_type = _infer_bin_type(rows[0], columns)
    row_line = (lambda i: lines[i] if i < len(lines) else None) if lines else (lambda i: None)
    if bin_type == "ascii" and all(len(r) == (columns or len(rows[0])) for r in rows):
        return _decode_ascii(rows, nulls, what, row_line)
    return _decode_tokens(rows, bin_type, nulls, columns, what, row_line)


def _infer_bin_type(row: str, columns: int | None) -> str:
    # BinType missing: the row width per die tells the encoding (1, 2 or 4 characters).
    if columns and not _SEPARATED.search(row):
        width = {1: "ascii", 2: "hex", 4: "int2"}.get(len(row) // columns if len(row) % columns == 0 else 0)
        if width:
            return width
    return "ascii" if not _SEPARATED.search(row) else "decimal"


def _decode_ascii(rows: list[str], nulls: set[str], what: str, row_line) -> Grid:
    width = len(rows[0])
    if any(len(r) != width for r in rows):
        bad = next(i for i, r in enumerate(rows) if len(r) != width)
        raise Rejected("bad_row", f"{what}: row {bad + 1} has {len(rows[bad])} codes, row 1 has {width}", line=row_line(bad))
    cp = np.frombuffer("".join(rows).encode("utf-32-le"), dtype="<u4").reshape(len(rows), width)
    null_mask = np.zeros(cp.shape, dtype=bool)
    for code in nulls:
        if len(code) == 1:
            null_mask |= cp == ord(code)
    bins = np.where(null_mask, -1, ascii_code_to_bin(cp))
    present = np.unique(cp[~null_mask])
    codes = {chr(int(c)): int(ascii_code_to_bin(np.array([c]))[0]) for c in present}
    return Grid(bins.astype(np.int32), codes, "ascii")


def _decode_tokens(rows: list[str], bin_type: str, nulls: set[str], columns: int | None, what: str, row_line) -> Grid:
    upper_nulls = {n.upper() for n in nulls}
    grid: list[list[int]] = []
    codes: dict[str, int] = {}
    n_cols = columns
    for i, row in enumerate(rows):
        try:
            tokens = _tokens(row, bin_type, n_cols, what, i)
            if n_cols is None:
                n_cols = len(tokens)
            if len(tokens) != n_cols:
                raise Rejected("bad_row", f"{what}: row {i + 1} has {len(tokens)} bin codes, expected {n_cols}")
            out = []
            for tok in tokens:
                if tok.upper() in upper_nulls:
                    out.append(-1)
                    continue
                value = codes.get(tok)
                if value is None:
                    value = codes[tok] = code_to_bin(tok, bin_type)
                out.append(value)
        except Rejected as exc:
            if exc.line is not None or row_line(i) is None:
                raise
            raise Rejected(exc.reason, f"{exc.detail} (map row {i + 1})", line=row_line(i)) from None
        grid.append(out)
    return Grid(np.asarray(grid, dtype=np.int32).reshape(len(rows), n_cols or 0), codes, bin_type)


def _tokens(row: str, bin_type: str, columns: int | None, what: str, index: int) -> list[str]:
    if _SEPARATED.search(row):
        return [t for t in _SEPARATED.split(row) if t]
    width = _WIDTH.get(bin_type)
    if width is None:  # Decimal without separators: fixed width, Columns codes per row
        if not columns or len(row) % columns:
            raise Rejected(
                "bad_row", f"{what}: row {index + 1} ({len(row)} characters) cannot hold {columns} fixed-width Decimal codes"
            )
        width = len(row) // columns
    if len(row) % width:
        raise Rejected("bad_row", f"{what}: row {index + 1} length {len(row)} is not a multiple of {width}")
    return [row[j : j + width] for j in range(0, len(row), width)]


def merge_verdicts(file_verdicts: dict[int, bool], bins: Iterable[int], pass_bins: AbstractSet[int] | None) -> dict[int, bool]:
    """Pass/fail per bin: the file's verdict, else the configured pass bins.

    Without configuration, bins the file says nothing about get no entry, so
    ``WaferMap.is_pass`` applies the last rule: bin 1 passes.
    """
    out: dict[int, bool] = {}
    if pass_bins is not None:
        out = {int(b): int(b) in pass_bins for b in bins}
    out.update(file_verdicts)
    return out


def verdict_of(quality: str | None) -> bool | None:
    q = (quality or "").strip().lower()
    return True if q == "pass" else False if q == "fail" else None


def degrees_to_flat(value: str | None, what: str) -> str | None:
    """Flat/notch angle, clockwise from the bottom (E5 FNLOC): 0 D, 90 L, 180 U, 270 R.

    Words some writers use instead of degrees are accepted. None when absent.
    Source (the SEMI texts are not public): artwork.com's MAP001 notes give FNLOC 0 as
    the bottom; the real Infineon (FNLOC1 0) and Microchip (FNLOC 270: right) files
    show the flat there (tests/formats/test_orientation_conventions.py). G85 and E142
    ``Orientation`` and ST ``FLAT`` are read the same way by assumption: their real
    files are too symmetric to show the flat (formats/README.md).
    """
    if value is None or not value.strip():
        return None
    word = value.strip().lower()
    for side, names in (("D", ("down", "downward", "bottom", "south")), ("U", ("up", "upward", "top", "north")),
                        ("L", ("left", "leftward", "west")), ("R", ("right", "rightward", "east"))):
        if word in names:
            return side
    degrees = finite_float(word)
    if degrees is None:
        raise Rejected("bad_orientation", f"{what} {quote(value)} is neither an angle nor a side")
    return "DLUR"[int(round((degrees % 360) / 90.0)) % 4]


def compact_stime(text: str | None) -> str | None:
    """``YYYYMMDDhhmmss...`` (digits, extra digits ignored) -> ``YYYYMMDD_HHMMSS``."""
    digits = re.sub(r"\D", "", text or "")
    if len(digits) < 12:
        return None
    return f"{digits[:8]}_{digits[8:14].ljust(6, '0')}"


# ---------------------------------------------------------------------------
# G85 reader
# ---------------------------------------------------------------------------

# OriginLocation (quadrant numbering, as E5 ORLOC): where position (0, 0) is.
_ORIGINS = {"0": "center", "1": "upper_right", "2": "upper_left", "3": "lower_left", "4": "lower_right"}
# The E142 words for the same corners, which some G85 writers use.
_ORIGIN_WORDS = {"center": "center", "centre": "center", "upperright": "upper_right", "upperleft": "upper_left",
                 "lowerleft": "lower_left", "lowerright": "lower_right"}


def read_g85(data: bytes, pass_bins: AbstractSet[int] | None = None) -> list[WaferMap]:
    """All wafer maps of a G85 file (one per ``<Map>``/``<Device>``)."""
    root = parse_xml(data, "G85")
    maps = [root] if local(root.tag) == "map" else list(descendants(root, "map"))
    out = []
    for m in maps:
        for d in children(m, "device"):
            with located(d):   # a reject names its construct and, at least, the <Device> line
                out.append(_read_device(m, d, pass_bins))
    if not out:
        raise Rejected("no_map", "G85 file holds no <Map> element with a <Device>", line=line_of(root))
    return out


def _read_device(map_el: Element, device: Element, pass_bins: AbstractSet[int] | None) -> WaferMap:
    m, d = attrs(map_el), attrs(device)
    wafer = m.get("waferid") or m.get("substrateid") or d.get("waferid") or d.get("substrateid")
    what = f"G85 map {wafer or '?'}"
    bin_type = bin_type_of(d.get("bintype"))

    bin_els = children(device, "bin")
    bin_defs = [attrs(b) for b in bin_els]
    null_codes = [d.get("nullbin")] + [b.get("bincode") for b in bin_defs if (b.get("binquality") or "").lower() == "null"]
    row_els = [r for data_el in children(device, "data") for r in children(data_el, "row")]
    rows = [_row_text(r) for r in row_els]
    n_rows, n_cols = _int_attr(d, "rows", what), _int_attr(d, "columns", what)
    if n_rows is not None and n_rows != len(rows):
        raise Rejected("row_count", f"{what}: Rows says {n_rows} but <Data> holds {len(rows)} <Row> elements")
    grid = decode_grid(rows, bin_type, [c for c in null_codes if c], n_cols, what, [line_of(r) for r in row_els])
    h, w = grid.bins.shape

    file_verdicts, names, stated = bin_definitions(bin_els, null_codes, grid.bin_type)

    row_idx, col_idx = np.nonzero(grid.bins >= 0)
    bins = grid.bins[row_idx, col_idx]
    origin_kind = _origin_kind(d.get("originlocation"), what)
    orig = _orig_coords(col_idx, row_idx, w, h, origin_kind)
    refs = _reference_devices(device)
    extra = {**original_attrs(map_el), **original_attrs(device)}
    extra.update(_derived_extra(grid, bins, stated, refs, origin_kind))
    flat = degrees_to_flat(d.get("orientation"), f"{what} Orientation")
    if flat is None:
        extra["flat_source"] = "default (no Orientation)"

    return WaferMap(
        format=FORMAT,
        x=col_idx.astype(np.int32),
        y=row_idx.astype(np.int32),
        bin=bins.astype(np.int32),
        retest_count=np.zeros(len(bins), dtype=np.int16),
        lot=d.get("lotid") or m.get("lotid"),
        wafer=wafer,
        product=d.get("productid") or m.get("productid"),
        stime=compact_stime(d.get("createdate")),
        flat=flat or "D",
        die_size=_die_size(d),
        origin=_ref_to_canonical(refs[0], w, h, origin_kind) if refs and origin_kind else None,
        bin_pass=merge_verdicts(file_verdicts, np.unique(bins).tolist(), pass_bins),
        bin_names=names,
        extra=extra,
        orig_x=None if orig is None else orig[0],
        orig_y=None if orig is None else orig[1],
        rows_read=int(len(bins)),
    )


def _origin_kind(value: str | None, what: str) -> str | None:
    """OriginLocation: G85's quadrant number (0 centre, 1..4 as E5 ORLOC); None when absent."""
    if value is None or not value.strip():
        return None
    kind = _ORIGINS.get(value.strip()) or _ORIGIN_WORDS.get(value.strip().lower())
    if kind is None:
        raise Rejected("bad_orientation", f"{what}: unknown OriginLocation {quote(value)} (0..4)")
    return kind


def _row_text(row: Element) -> str:
    # CDATA and plain text arrive alike; pretty-printing adds line breaks and indentation.
    return (row.text or "").strip()


def _int_attr(a: dict[str, str], key: str, what: str) -> int | None:
    value = a.get(key)
    if value is None or value == "":
        return None
    return parse_count(value, f"{what}: {key}", reason="bad_header")


def _die_size(d: dict[str, str]) -> tuple[float, float] | None:
    # G85 device and step sizes are in micrometres; die_size is in mm.
    for kx, ky in (("devicesizex", "devicesizey"), ("stepsizex", "stepsizey")):
        x, y = finite_float(d.get(kx)), finite_float(d.get(ky))
        if x is not None and y is not None:
            return x / 1000.0, y / 1000.0
    return None


def _orig_coords(col: np.ndarray, row: np.ndarray, w: int, h: int, kind: str | None):
    """The file's own coordinates of each die for its OriginLocation (None if unknown)."""
    if kind is None:
        return None
    x, y = col.astype(np.int32), row.astype(np.int32)
    if kind == "center":
        return (x - w // 2).astype(np.int32), (h // 2 - y).astype(np.int32)
    if kind in ("upper_right", "lower_right"):
        x = (w - 1 - x).astype(np.int32)
    if kind in ("lower_left", "lower_right"):
        y = (h - 1 - y).astype(np.int32)
    return x, y


def _ref_to_canonical(ref: tuple[int, int], w: int, h: int, kind: str) -> tuple[int, int]:
    x, y = ref
    if kind == "center":
        return x + w // 2, h // 2 - y
    if kind in ("upper_right", "lower_right"):
        x = w - 1 - x
    if kind in ("lower_left", "lower_right"):
        y = h - 1 - y
    return x, y


def _reference_devices(device: Element) -> list[tuple[int, int]]:
    refs = []
    for el in children(device, "referencedevice"):
        a = attrs(el)
        for c in children(el, "coordinates"):
            a.update(attrs(c))
        x = a.get("referencedevicex", a.get("x"))
        y = a.get("referencedevicey", a.get("y"))
        if x is not None and y is not None:
            refs.append((parse_int(x, "ReferenceDevice X", reason="bad_header"), parse_int(y, "ReferenceDevice Y", reason="bad_header")))
    return refs


def _derived_extra(grid: Grid, bins: np.ndarray, stated: dict[int, int], refs, origin_kind) -> dict[str, str]:
    extra = {"bin_type": grid.bin_type}
    if grid.bin_type != "decimal":
        extra["bin_codes"] = json.dumps(grid.codes, sort_keys=True)
    if refs:
        extra["reference_devices"] = ";".join(f"{x},{y}" for x, y in refs)
    if origin_kind:
        extra["origin_kind"] = origin_kind
    values, counts = np.unique(bins, return_counts=True)
    found = dict(zip(values.tolist(), counts.tolist()))
    mismatch = {b: (n, found.get(b, 0)) for b, n in stated.items() if found.get(b, 0) != n}
    if mismatch:
        extra["bin_count_mismatch"] = ";".join(f"{b}: file {n}, map {f}" for b, (n, f) in sorted(mismatch.items()))
    return extra
