"""KLARF defect files (KLA Results File; 1.1, 1.2 and 1.8) -> defect-count ``WaferMap``.

A KLARF file lists inspected dies (``SampleTestPlan``) and defects (``DefectList``,
each with the die index ``XINDEX`` / ``YINDEX``). Here every wafer becomes a map
whose dies are the test plan's dies plus any die a defect sits on, and whose
``bin`` is the number of defects on that die (0 = clean). Defects whose die
index is ``NA`` cannot be placed and are counted in ``extra``.

Syntax:

* 1.1 / 1.2: statements ``Keyword values... ;``. ``WaferID`` starts a wafer;
  statements before the first one apply to every wafer. ``DefectRecordSpec n
  NAMES`` names the columns of the following ``DefectList``; an ``IMAGELIST``
  column is a count followed by that many (image, type) pairs.
* 1.8: nested ``Record Type "id" { ... }`` with ``Field Name n {v, ...}`` and
  ``List Name { Columns n { type NAME, ... } Data m { row ; ... } }``: FileRecord >
  LotRecord > WaferRecord > (DefectList, TestRecord > SampleTestPlanList,
  SummaryRecord > TestSummaryList). ``NA`` may appear in any numeric column.

Die indices: x grows to the right and y upward (wafer coordinates), so the
canonical frame is ``x = XINDEX``, ``y = -YINDEX``; the indices are kept in
``orig_x`` / ``orig_y``. ``OrientationMarkLocation`` is ``UP``/``DOWN``/``LEFT``/
``RIGHT`` in 1.x and degrees in 1.8 (0 down, 90 left, 180 up, 270 right: see ``_flat``);
``SampleOrientationMarkType`` (NOTCH / FLAT) names the kind of that mark; with
``CoordinatesMirrored YES`` x is mirrored and a LEFT / RIGHT mark swaps. Orientation
values we do not know are ``bad_orientation`` rejects naming the statement and its line.

Pass/fail: KLARF states none per bin. With configured pass bins those decide;
otherwise a die with no defect passes and a die with any defect fails, which is
how KLARF's own summary counts defective dies (NDEFDIE). The generic "bin 1
passes" rule would be meaningless for defect counts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import AbstractSet

import numpy as np

from failmap_assets.wafer.model import WaferMap
from failmap_assets.formats.ascii_maps import decode_text
from failmap_assets.formats.g85 import merge_verdicts
from failmap_assets.formats.values import finite_float, parse_count, parse_int, quote
from failmap_assets.wafer.rejects import Rejected

FORMAT = "klarf"

_TOKEN = re.compile(r'"[^"]*"|[{};,]|[^\s{};,"]+')
_SIDES = {"DOWN": "D", "UP": "U", "LEFT": "L", "RIGHT": "R", "BOTTOM": "D", "TOP": "U"}
_SIDE_DEGREES = "DLUR"  # 0, 90, 180, 270 degrees


def looks_like_klarf(head: str) -> bool:
    return re.match(r"\s*(FileVersion\s+1\s+\d+\s*;|Record\s+FileRecord\b)", head) is not None


@dataclass
class _Wafer:
    """What a KLARF file says about one wafer, whatever its version."""

    meta: dict[str, list[str]] = field(default_factory=dict)
    meta_lines: dict[str, int] = field(default_factory=dict)          # line of each header statement / Field
    plan: list[tuple[str, str, int]] = field(default_factory=list)     # (XINDEX, YINDEX as written, line)
    defects: list[tuple[str, str, int]] = field(default_factory=list)  # (XINDEX, YINDEX as written, line)
    summary: list[dict[str, str]] = field(default_factory=list)
    images: list[dict] = field(default_factory=list)                   # image references per defect


class _Tokens:
    """Token stream over the text, with line numbers for reject messages."""

    def __init__(self, text: str):
        self.text = text
        self.items = [(m.group(0), m.start()) for m in _TOKEN.finditer(text)]
        self.i = 0

    def peek(self) -> str | None:
        return self.items[self.i][0] if self.i < len(self.items) else None

    def next(self, what: str) -> str:
        if self.i >= len(self.items):
            raise Rejected("truncated", f"KLARF file ends inside {what}")
        self.i += 1
        return self.items[self.i - 1][0]

    def expect(self, token: str, what: str) -> None:
        got = self.next(what)
        if got != token:
            raise self.error("bad_syntax", f"expected {token!r} in {what}, found {quote(got)}", back=1)

    def line(self, back: int = 0) -> int:
        pos = self.items[max(0, min(self.i - back, len(self.items) - 1))][1] if self.items else 0
        return self.text.count("\n", 0, pos) + 1

    def error(self, reason: str, detail: str, back: int = 0) -> Rejected:
        return Rejected(reason, f"KLARF: {detail}", line=self.line(back))


def _unquote(token: str) -> str:
    return token[1:-1] if len(token) >= 2 and token[0] == '"' and token[-1] == '"' else token


def read_klarf(data: bytes, pass_bins: AbstractSet[int] | None = None) -> list[WaferMap]:
    """One defect-count map per wafer of the KLARF file."""
    text = decode_text(data)
    tokens = _Tokens(text)
    first = tokens.peek()
    if first == "Record":
        wafers, version = _read_v18(tokens), "1.8"
    elif first is not None and first.lower() == "fileversion":
        wafers, version = _read_v1(tokens)
    else:
        raise Rejected("unknown_format", "not a KLARF file (no FileVersion statement or FileRecord)")
    if not wafers:
        raise Rejected("no_wafer", "KLARF file describes no wafer")
    return [_to_wafer_map(w, version, pass_bins) for w in wafers]


# ---------------------------------------------------------------------------
# KLARF 1.1 / 1.2
# ---------------------------------------------------------------------------


def _statements(tokens: _Tokens) -> Iterator[tuple[str, list[str], int]]:
    while tokens.peek() is not None:
        line = tokens.line()
        keyword = tokens.next("a statement")
        values = []
        while (tok := tokens.peek()) != ";":
            if tok is None:
                if keyword.lower() == "endoffile":
                    break
                raise tokens.error("truncated", f"statement {keyword} is not closed with ';'")
            values.append(tokens.next(keyword))
        if tokens.peek() == ";":
            tokens.next(keyword)
        yield keyword, values, line
        if keyword.lower() == "endoffile":
            return


def _read_v1(tokens: _Tokens) -> tuple[list[_Wafer], str]:
    common: dict[str, list[str]] = {}
    common_lines: dict[str, int] = {}
    wafers: list[_Wafer] = []
    spec: list[str] | None = None
    summary_spec: list[str] | None = None
    version = "1.x"
    for keyword, values, line in _statements(tokens):
        key = keyword.lower()
        current = wafers[-1] if wafers else None
        if key == "fileversion":
            version = ".".join(values[:2])
        elif key == "waferid":
            wafers.append(_Wafer(meta={"WaferID": [_unquote(v) for v in values]}, meta_lines={"WaferID": line}))
        elif key == "sampletestplan":
            target = current or _implicit(wafers)
            target.plan.extend(_counted_pairs(values, "SampleTestPlan", line))
        elif key == "defectrecordspec":
            spec = _spec(values, "DefectRecordSpec", line)
        elif key == "defectlist":
            if spec is None:
                raise Rejected("bad_syntax", "KLARF: DefectList before any DefectRecordSpec", line=line)
            target = current or _implicit(wafers)
            tiff = (current.meta if current is not None else common).get("TiffFileName", [""])
            defects, images = _defects(values, spec, line, tiff[0] if tiff else "")
            target.defects.extend(defects)
            target.images.extend(images)
        elif key == "summaryspec":
            summary_spec = _spec(values, "SummarySpec", line)
        elif key == "summarylist" and summary_spec:
            rows = _rows_of(values, len(summary_spec), "SummaryList", line)
            (current or _implicit(wafers)).summary.extend(dict(zip(summary_spec, r)) for r in rows)
        elif key in ("classlookup", "endoffile"):
            continue
        else:
            (current.meta if current is not None else common)[keyword] = [_unquote(v) for v in values]
            (current.meta_lines if current is not None else common_lines)[keyword] = line
    for w in wafers:
        w.meta = {**common, **w.meta}
        w.meta_lines = {**common_lines, **w.meta_lines}
    return wafers, version


def _implicit(wafers: list[_Wafer]) -> _Wafer:
    # Data before any WaferID statement: a wafer without an id.
    wafers.append(_Wafer())
    return wafers[-1]


def _counted_pairs(values: list[str], what: str, line: int) -> list[tuple[str, str, int]]:
    if not values:
        raise Rejected("bad_list", f"KLARF: {what} does not start with its count", line=line)
    n = parse_count(values[0], f"KLARF: {what} count", reason="bad_list", line=line)
    if len(values) - 1 != 2 * n:
        raise Rejected("bad_list", f"KLARF: {what} says {n} dies but holds {(len(values) - 1) / 2:g}", line=line)
    return [(x, y, line) for x, y in zip(values[1::2], values[2::2])]


def _spec(values: list[str], what: str, line: int) -> list[str]:
    if not values or parse_count(values[0], f"KLARF: {what} column count", reason="bad_list", line=line) != len(values) - 1:
        raise Rejected("bad_list", f"KLARF: {what} column count does not match its column names", line=line)
    return [v.upper() for v in values[1:]]


def _rows_of(values: list[str], width: int, what: str, line: int) -> list[list[str]]:
    if width == 0 or len(values) % width:
        raise Rejected("bad_list", f"KLARF: {what} holds {len(values)} values, not a multiple of {width} columns", line=line)
    return [values[i : i + width] for i in range(0, len(values), width)]


def _defects(values: list[str], spec: list[str], line: int, tiff: str) -> tuple[list[tuple[str, str, int]], list[dict]]:
    """(XINDEX, YINDEX, line) per defect record, and the image references of the records that list images.

    KLARF 1.1/1.2 ``IMAGELIST`` column: a count n, then n (image number, image type)
    pairs, the images of the preceding ``TiffFileName`` (so a record is longer than
    DefectRecordSpec says by 2n values). Source: btrapp/jklarfreader
    ``KlarfReader12.readEmbeddedList`` and its ``klarf12DefectListExample.klarf``
    (KLARF has no public specification).
    """
    if "XINDEX" not in spec or "YINDEX" not in spec:
        raise Rejected("bad_list", "KLARF: DefectRecordSpec has no XINDEX / YINDEX column", line=line)
    xi, yi = spec.index("XINDEX"), spec.index("YINDEX")
    if "IMAGELIST" not in spec:
        return [(r[xi], r[yi], line) for r in _rows_of(values, len(spec), "DefectList", line)], []
    out, images, i = [], [], 0
    while i < len(values):  # IMAGELIST has a variable width: walk record by record
        record, pairs = [], []
        for name in spec:
            if i >= len(values):
                raise Rejected("bad_list", f"KLARF: DefectList ends inside defect record {len(out) + 1}", line=line)
            if name == "IMAGELIST":
                n = parse_count(values[i], "KLARF: DefectList IMAGELIST count", reason="bad_list", line=line)
                if i + 1 + 2 * n > len(values):
                    raise Rejected("bad_list", f"KLARF: DefectList ends inside the IMAGELIST of record {len(out) + 1}", line=line)
                pairs = [{"file": tiff, "image": values[j], "type": values[j + 1]} for j in range(i + 1, i + 1 + 2 * n, 2)]
                i += 1 + 2 * n
                record.append("")
                continue
            record.append(values[i])
            i += 1
        out.append((record[xi], record[yi], line))
        if pairs:
            images.append(_image_entry(dict(zip(spec, record)), pairs))
    return out, images


def _image_entry(record: dict[str, str], images: list) -> dict:
    return {"defect": record.get("DEFECTID", ""), "xindex": record.get("XINDEX", ""), "yindex": record.get("YINDEX", ""),
            "images": images}


# ---------------------------------------------------------------------------
# KLARF 1.8
# ---------------------------------------------------------------------------


@dataclass
class _List:
    columns: list[str]            # column names, upper case
    types: list[str]              # column types as declared (int32, float, string, ImageList, ...)
    rows: list[list[str]]
    lines: list[int]              # line of each row
    line: int                     # line of the List keyword


@dataclass
class _Record:
    kind: str
    name: str | None
    fields: dict[str, list[str]] = field(default_factory=dict)
    field_lines: dict[str, int] = field(default_factory=dict)
    lists: dict[str, _List] = field(default_factory=dict)
    records: list[_Record] = field(default_factory=list)


def _read_v18(tokens: _Tokens) -> list[_Wafer]:
    tokens.expect("Record", "FileRecord")
    root = _record(tokens)
    wafers = []
    for lot in (r for r in root.records if r.kind == "LotRecord"):
        for wr in (r for r in lot.records if r.kind == "WaferRecord"):
            w = _Wafer(meta={**root.fields, **lot.fields, **wr.fields, "LotID": [lot.name or ""], "WaferID": [wr.name or ""]},
                       meta_lines={**root.field_lines, **lot.field_lines, **wr.field_lines})
            w.meta["FileVersion"] = [root.name or "1.8"]
            w.defects = _list_pairs(wr.lists.get("DefectList"), "DefectList")
            w.images = _list_images(wr.lists.get("DefectList"))
            for test in (r for r in wr.records if r.kind == "TestRecord"):
                w.plan.extend(_list_pairs(test.lists.get("SampleTestPlanList"), "SampleTestPlanList"))
            for summary in (r for r in wr.records if r.kind == "SummaryRecord"):
                lst = summary.lists.get("TestSummaryList")
                if lst is not None:
                    w.summary.extend(dict(zip(lst.columns, r)) for r in lst.rows)
            wafers.append(w)
    return wafers


def _record(tokens: _Tokens) -> _Record:
    kind = tokens.next("a Record")
    name = _unquote(tokens.next(kind)) if tokens.peek() != "{" else None
    rec = _Record(kind, name)
    tokens.expect("{", kind)
    while (tok := tokens.next(kind)) != "}":
        if tok == "Record":
            rec.records.append(_record(tokens))
        elif tok == "Field":
            rec.field_lines[tokens.peek() or ""] = tokens.line(back=1)
            name = tokens.next("a Field")
            tokens.next(f"Field {name}")  # declared value count; values are read up to '}'
            rec.fields[name] = _braced_values(tokens, f"Field {name}")
        elif tok == "List":
            name = tokens.next("a List")
            rec.lists[name] = _list(tokens, name)
        else:
            raise tokens.error("bad_syntax", f"unexpected {quote(tok)} in Record {quote(kind)}", back=1)
    return rec


def _braced_values(tokens: _Tokens, what: str) -> list[str]:
    tokens.expect("{", what)
    values = []
    while (tok := tokens.next(what)) != "}":
        if tok != ",":
            values.append(_unquote(tok))
    return values


def _list(tokens: _Tokens, name: str) -> _List:
    what = f"List {name}"
    line = tokens.line(back=2)
    tokens.expect("{", what)
    tokens.expect("Columns", what)
    n_cols = _count(tokens.next(what), tokens, what)
    types, columns = _column_names(tokens, f"{what} Columns")
    if len(columns) != n_cols:
        raise tokens.error("bad_list", f"{what} declares {n_cols} columns but names {len(columns)}")
    tokens.expect("Data", what)
    n_rows = _count(tokens.next(what), tokens, what)
    tokens.expect("{", what)
    rows, lines, row = [], [], []
    embedded = {i for i, t in enumerate(types) if t.lower().endswith("list")}
    while (tok := tokens.next(what)) != "}":
        if len(row) in embedded and tok not in (";", ","):
            row.append(json.dumps(_embedded_list(tok, tokens, what)))
        elif tok == ";":
            if len(row) != n_cols:
                raise tokens.error("bad_list", f"{what} row {len(rows) + 1} has {len(row)} values, expected {n_cols}")
            rows.append(row)
            lines.append(tokens.line(back=1))
            row = []
        elif tok == "{":  # a nested value in a column not typed as a list: one value
            row.append(json.dumps(_embedded_list(tok, tokens, what)))
        elif tok != ",":
            row.append(_unquote(tok))
    if row:
        raise tokens.error("bad_list", f"{what} row {len(rows) + 1} is not closed with ';'")
    if len(rows) != n_rows:
        raise tokens.error("bad_list", f"{what} says Data {n_rows} but holds {len(rows)} rows")
    tokens.expect("}", what)
    return _List(columns, types, rows, lines, line)


def _embedded_list(first: str, tokens: _Tokens, what: str) -> list[list[str]]:
    """A list-typed value (KLARF 1.8 column type ``ImageList``) -> its entries.

    Written ``N`` or ``0`` (none) or ``Name n { v v v v, v v v v }`` (n entries,
    comma-separated: path, type, index, label for images). Source: btrapp/jklarfreader
    ``KlarfReader18.readEmbeddedList`` and its ``klarfWithImagelist.klarf``, KLA tool
    output. A bare ``{ ... }`` group (one nested list) is read the same way.
    """
    if first.upper() == "N" or first == "0":
        return []
    declared = None
    if first != "{":
        declared = parse_count(tokens.next(what), f"KLARF: {what} {first} entry count", reason="bad_list",
                               line=tokens.line(back=1))
        tokens.expect("{", what)
    entries, entry, depth = [], [], 1
    while depth:
        tok = tokens.next(what)
        if tok in ("{", "}"):
            depth += 1 if tok == "{" else -1
        elif tok == "," and depth == 1:
            entries.append(entry)
            entry = []
        elif tok != ",":
            entry.append(_unquote(tok))
    if entry or entries:
        entries.append(entry)
    if declared is not None and len(entries) != declared:
        raise tokens.error("bad_list", f"{what}: {first} says {declared} entries but holds {len(entries)}", back=1)
    return entries


def _column_names(tokens: _Tokens, what: str) -> tuple[list[str], list[str]]:
    """``{ type NAME, type NAME }``: (types, names); the name is the last word of each entry."""
    tokens.expect("{", what)
    entries, entry = [], []
    while (tok := tokens.next(what)) != "}":
        if tok == ",":
            entries.append(entry)
            entry = []
        else:
            entry.append(tok)
    entries.append(entry)
    entries = [e for e in entries if e]
    return [e[0] if len(e) > 1 else "" for e in entries], [e[-1].upper() for e in entries]


def _count(token: str, tokens: _Tokens, what: str) -> int:
    return parse_count(token, f"KLARF: {what}", reason="bad_list", line=tokens.line(back=1))


def _list_images(lst: _List | None) -> list[dict]:
    if lst is None:
        return []
    out = []
    for i, t in enumerate(lst.types):
        if t.lower().endswith("list"):
            for row in lst.rows:
                entries = json.loads(row[i])
                if entries:
                    out.append(_image_entry(dict(zip(lst.columns, row)), entries))
    return out


def _list_pairs(lst: _List | None, what: str) -> list[tuple[str, str, int]]:
    if lst is None:
        return []
    if "XINDEX" not in lst.columns or "YINDEX" not in lst.columns:
        raise Rejected("bad_list", f"KLARF: List {what} has no XINDEX / YINDEX column", line=lst.line)
    xi, yi = lst.columns.index("XINDEX"), lst.columns.index("YINDEX")
    return [(r[xi], r[yi], n) for r, n in zip(lst.rows, lst.lines)]


# ---------------------------------------------------------------------------
# Common: wafer -> WaferMap
# ---------------------------------------------------------------------------


def _ints(pairs: list[tuple[str, str, int]], what: str) -> tuple[np.ndarray, int]:
    """Integer (x, y) die indices; pairs with NA are dropped and counted."""
    good = [p for p in pairs if p[0].upper() != "NA" and p[1].upper() != "NA"]
    arr = np.array(
        [(parse_int(x, f"KLARF: {what} XINDEX", line=line), parse_int(y, f"KLARF: {what} YINDEX", line=line))
         for x, y, line in good],
        dtype=np.int64,
    ).reshape(-1, 2)
    return arr, len(pairs) - len(good)


def _to_wafer_map(w: _Wafer, version: str, pass_bins: AbstractSet[int] | None) -> WaferMap:
    plan, plan_na = _ints(w.plan, "SampleTestPlan")
    defects, unplaced = _ints(w.defects, "DefectList")
    both = np.concatenate([plan, defects]) if len(defects) else plan
    dies, inverse = np.unique(both, axis=0, return_inverse=True) if len(both) else (np.empty((0, 2), np.int64), np.empty(0, np.int64))
    inverse = np.asarray(inverse).reshape(-1)
    counts = np.bincount(inverse[len(plan):], minlength=len(dies)) if len(dies) else np.empty(0, np.int64)
    planned = np.zeros(len(dies), dtype=bool)
    planned[inverse[: len(plan)]] = True
    meta = w.meta

    extra = {k: " ".join(v) for k, v in meta.items()}
    extra.update({
        "klarf_version": version,
        "defects": str(len(w.defects)),
        "defects_without_die": str(unplaced),
        "plan_dies": str(int(planned.sum())),
        "dies_outside_plan": str(int((~planned).sum())),
    })
    if plan_na:
        extra["plan_entries_with_na"] = str(plan_na)
    if w.images:
        extra["defect_images"] = json.dumps(w.images)
        extra["defects_with_images"] = str(len(w.images))
    if w.summary:
        extra["summary"] = "; ".join(",".join(f"{k}={v}" for k, v in row.items()) for row in w.summary)
    where = w.meta_lines.get
    flat = _flat(meta.get("OrientationMarkLocation"), version, where("OrientationMarkLocation"))
    mirrored = _yes_no(meta.get("CoordinatesMirrored"), "CoordinatesMirrored", where("CoordinatesMirrored"))
    if mirrored:
        # CoordinatesMirrored YES: XINDEX grows to the left (the wafer as seen from its
        # back). Drawn from the front, x = -XINDEX, and the mark location, stated in the
        # same mirrored frame, swaps LEFT and RIGHT. (Field and YES/NO values: KLARF 1.2
        # header as written by KLA tools, e.g. jklarfreader klarf12DefectListExample.klarf;
        # no public specification gives more.)
        flat = {"L": "R", "R": "L"}.get(flat, flat)
        extra["coordinates_mirrored"] = "applied: x = -XINDEX"
    mark = _mark_type(meta.get("SampleOrientationMarkType"), where("SampleOrientationMarkType"))
    if mark is not None:
        extra["mark_type"] = mark
    if flat is None:
        extra["flat_source"] = "default (no OrientationMarkLocation)"
    present = np.unique(counts).tolist()
    verdicts = merge_verdicts({}, present, pass_bins) if pass_bins is not None else {b: b == 0 for b in present}
    return WaferMap(
        format=FORMAT,
        x=(-dies[:, 0] if mirrored else dies[:, 0]).astype(np.int32),
        y=(-dies[:, 1]).astype(np.int32),
        bin=counts.astype(np.int32),
        retest_count=np.zeros(len(dies), dtype=np.int16),
        lot=_one(meta, "LotID"),
        wafer=_one(meta, "WaferID"),
        product=_one(meta, "DeviceID"),
        step=_one(meta, "StepID"),
        tester=" ".join(meta.get("InspectionStationID", [])).strip() or None,
        stime=_stime(meta.get("ResultTimestamp") or meta.get("FileTimestamp")),
        flat=flat or "D",
        die_size=_die_size(meta.get("DiePitch"), version),
        bin_pass=verdicts,
        bin_names={0: "no defect"} if 0 in present else {},
        extra=extra,
        orig_x=dies[:, 0].astype(np.int32),
        orig_y=dies[:, 1].astype(np.int32),
        rows_read=int(len(plan) + (~planned).sum()),  # plan entries plus dies known only from defects
    )


def _one(meta: dict[str, list[str]], key: str) -> str | None:
    values = meta.get(key)
    return values[0] if values and values[0] else None


def _yes_no(values: list[str] | None, what: str, line: int | None) -> bool:
    word = (values[0].strip().upper() if values else "NO") or "NO"
    if word not in ("YES", "NO"):
        raise Rejected("bad_orientation", f"KLARF: {what} {quote(values[0])} is neither YES nor NO", line=line)
    return word == "YES"


def _mark_type(values: list[str] | None, line: int | None) -> str | None:
    """SampleOrientationMarkType NOTCH / FLAT: the kind of mark that OrientationMarkLocation places.

    It changes no coordinate: the map's ``flat`` is the side of the mark whatever its kind
    (the canonical model has one mark side, drawn the same for both). It is checked, so a
    kind we do not know is refused with its line instead of being drawn as a notch, and kept
    in ``extra["mark_type"]``.
    """
    if not values or not values[0].strip():
        return None
    word = values[0].strip().lower()
    if word not in ("notch", "flat"):
        raise Rejected("bad_orientation", f"KLARF: SampleOrientationMarkType {quote(values[0])} is neither NOTCH nor FLAT",
                       line=line)
    return word


def _flat(values: list[str] | None, version: str, line: int | None) -> str | None:
    """OrientationMarkLocation: a side word (1.1 / 1.2) or an angle in degrees (1.8).

    The angle is read as SEMI E5 reads FNLOC (0 down, 90 left, 180 up, 270 right), the
    convention of every other angle-valued map format here. Source: none specific to
    KLARF (KLA publishes no specification); the 1.8 samples at hand (btrapp/jklarfreader)
    only use 0, so the direction of 90 / 270 is assumed, not attested (formats/README.md).
    """
    if not values:
        return None
    v = values[0].strip().upper()
    if v in _SIDES:
        return _SIDES[v]
    degrees = finite_float(v)
    if degrees is None:
        raise Rejected("bad_orientation", f"KLARF {version}: OrientationMarkLocation {quote(values[0])} is not a side "
                                          "or an angle", line=line)
    return _SIDE_DEGREES[int(round((degrees % 360) / 90.0)) % 4]


def _stime(values: list[str] | None) -> str | None:
    """``MM-DD-YY[YY] hh:mm:ss`` -> ``YYYYMMDD_HHMMSS``."""
    if not values:
        return None
    m = re.match(r"(\d{1,2})-(\d{1,2})-(\d{2,4})\s+(\d{1,2}):(\d{2}):(\d{2})", " ".join(values))
    if m is None:
        return None
    month, day, year, hh, mm, ss = m.groups()
    if len(year) == 2:
        year = f"{2000 + int(year) if int(year) < 70 else 1900 + int(year)}"
    return f"{int(year):04d}{int(month):02d}{int(day):02d}_{int(hh):02d}{mm}{ss}"


def _die_size(values: list[str] | None, version: str) -> tuple[float, float] | None:
    # DiePitch: micrometres in 1.1/1.2, nanometres in 1.8.
    x, y = (finite_float(values[i]) if values and len(values) > i else None for i in (0, 1))
    if x is None or y is None:
        return None
    scale = 1e-6 if version == "1.8" else 1e-3
    return round(x * scale, 6), round(y * scale, 6)
