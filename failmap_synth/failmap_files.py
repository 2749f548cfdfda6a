"""Bucket A and bucket B fail-map text, exactly per docs/failmap-format.md.

Each file gets a *style* drawn per wafer: line ends, BOM, separators, comments,
header order, optional and unknown keys, zero-padded bins. Every variation is one
the contract says readers must tolerate; the deliberately broken files are made
by the ``break_*`` helpers at the bottom, and nothing else breaks the contract.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from failmap_synth import compression, textcols
from failmap_synth.measurements import VALUE_SPECS
from failmap_synth.wafer_shapes import BinDef, WaferDies

BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class TextStyle:
    newline: bytes = b"\n"
    bom: bool = False
    sep: bytes = b" "          # between die-row fields: " " or "\t"
    aligned: bool = False      # columns padded with spaces to a common width
    bin_pad: int = 0           # bins written with leading zeros to this many digits
    comments: bool = False     # "#" lines before the header and inside the die block
    blank_lines: bool = False
    trailing_spaces: bool = False
    header_pad: bool = False   # "LOT      N4A123.1": values aligned with several spaces
    shuffle_header: bool = False


def random_style(rng: np.random.Generator) -> TextStyle:
    """Mostly plain files; each tolerated variation shows up on a sizeable minority."""
    sep_kind = rng.choice(3, p=[0.75, 0.12, 0.13])
    return TextStyle(
        newline=b"\r\n" if rng.random() < 0.2 else b"\n",
        bom=bool(rng.random() < 0.1),
        sep=b"\t" if sep_kind == 1 else b" ",
        aligned=bool(sep_kind == 2),
        bin_pad=4 if rng.random() < 0.15 else 0,
        comments=bool(rng.random() < 0.3),
        blank_lines=bool(rng.random() < 0.15),
        trailing_spaces=bool(rng.random() < 0.1),
        header_pad=bool(rng.random() < 0.15),
        shuffle_header=bool(rng.random() < 0.3),
    )


@dataclass(frozen=True)
class AHeader:
    lot: str
    wafer: str
    stime: str
    product: str | None = None
    step: str | None = None
    tester: str | None = None
    partid: str | None = None
    flat: str | None = None
    die_size: tuple[float, float] | None = None
    origin: tuple[int, int] | None = None
    bindefs: tuple[BinDef, ...] = ()
    extra: tuple[tuple[str, str], ...] = ()  # unknown keys, kept by readers as metadata


@dataclass(frozen=True)
class BHeader:
    stime: str
    values: tuple[str, ...]
    partid: str | None = None
    tester: str | None = None
    extra: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Rendered:
    """A rendered text and where its die rows start (for the breakage helpers)."""

    data: bytes
    style: TextStyle
    rows_start: int    # byte offset of the first die row
    rows_end: int      # byte offset just after the last die row (where END starts)
    n_rows: int


def _fmt_num(v: float) -> str:
    return f"{v:g}"


def _header_lines(first: str, pairs: list[tuple[str, str]], style: TextStyle,
                  rng: np.random.Generator) -> list[str]:
    if style.shuffle_header:
        pairs = [pairs[i] for i in rng.permutation(len(pairs))]
    width = max((len(k) for k, _ in pairs), default=0) + 1
    lines = [first]
    for k, v in pairs:
        lines.append(f"{k.ljust(width)}{v}" if style.header_pad else f"{k} {v}")
    return lines


def _preamble(style: TextStyle, what: str) -> list[str]:
    if not style.comments:
        return []
    return [f"# {what} written by probe-map writer 4.2", "# do not edit"]


def _finish(head: list[str], rows: bytes, n_rows: int, tail: list[str], style: TextStyle,
            rng: np.random.Generator) -> Rendered:
    nl = style.newline.decode()
    lines = head
    if style.trailing_spaces and len(lines) > 2:
        i = int(rng.integers(1, len(lines)))
        lines = lines[:i] + [lines[i] + "  "] + lines[i + 1:]
    prefix = (BOM if style.bom else b"") + (nl.join(lines) + nl).encode()
    end = (nl.join(tail) + nl).encode()
    return Rendered(data=prefix + rows + end, style=style, rows_start=len(prefix),
                    rows_end=len(prefix) + len(rows), n_rows=n_rows)


def _die_rows(columns: list[np.ndarray], style: TextStyle, rng: np.random.Generator) -> bytes:
    n = columns[0].shape[0]
    trailing = (rng.random(n) < 0.3) if style.trailing_spaces else None
    return textcols.join_rows(columns, sep=style.sep, newline=style.newline,
                              aligned=style.aligned, trailing=trailing)


def render_a(h: AHeader, dies: WaferDies, style: TextStyle, rng: np.random.Generator) -> Rendered:
    """Bucket A text for one wafer: header, BINDEFs, ``DIES n``, rows, ``END``."""
    pairs: list[tuple[str, str]] = [("LOT", h.lot), ("WAFER", h.wafer)]
    for key, val in (("PRODUCT", h.product), ("STEP", h.step), ("TESTER", h.tester),
                     ("PARTID", h.partid)):
        if val is not None:
            pairs.append((key, val))
    pairs.append(("STIME", h.stime))
    if h.flat is not None:
        pairs.append(("FLAT", h.flat))
    if h.die_size is not None:
        pairs.append(("DIE_SIZE", f"{_fmt_num(h.die_size[0])} {_fmt_num(h.die_size[1])}"))
    if h.origin is not None:
        pairs.append(("ORIGIN", f"{h.origin[0]} {h.origin[1]}"))
    pairs += [("BINDEF", f"{b.number} {b.pf} {b.name}") for b in h.bindefs]
    pairs += list(h.extra)
    head = _preamble(style, "fail map") + _header_lines("FAILMAP 1", pairs, style, rng)
    n_rows = int(dies.x.size)
    if style.blank_lines:
        head.append("")
    if style.comments:
        head.append("# x y bin")
    head.append(f"DIES {n_rows}")

    cols = [textcols.int_cells(dies.x), textcols.int_cells(dies.y),
            textcols.int_cells(dies.bins, zero_pad=style.bin_pad)]
    nl = style.newline
    if dies.retests and (style.comments or style.blank_lines):
        # The re-test pass, set apart the way some writers do (ignored by readers).
        first = _die_rows([c[: dies.n_dies] for c in cols], style, rng)
        sep = (b"# retest pass" + nl if style.comments else b"") + (nl if style.blank_lines else b"")
        rows = first + sep + _die_rows([c[dies.n_dies:] for c in cols], style, rng)
    else:
        rows = _die_rows(cols, style, rng) if n_rows else b""
    return _finish(head, rows, n_rows, ["END"], style, rng)


def value_cells(values: np.ndarray, names: tuple[str, ...]) -> list[np.ndarray]:
    """One cell matrix per VALUES column, printed as the B station prints that quantity."""
    out = []
    for j, name in enumerate(names):
        spec = VALUE_SPECS[name]
        col = values[:, j]
        cells = textcols.sci_cells(col) if spec.sci else textcols.fixed_cells(col, spec.decimals)
        out.append(textcols.with_na(cells, np.isnan(col)))
    return out


def render_b(h: BHeader, x: np.ndarray, y: np.ndarray, bins: np.ndarray, values: np.ndarray,
             style: TextStyle, rng: np.random.Generator) -> Rendered:
    """Bucket B text: ``VALUES k names``, then ``x y bin v1..vk`` per die."""
    pairs: list[tuple[str, str]] = []
    for key, val in (("PARTID", h.partid), ("TESTER", h.tester)):
        if val is not None:
            pairs.append((key, val))
    pairs.append(("STIME", h.stime))
    pairs.append(("VALUES", " ".join([str(len(h.values)), *h.values])))
    pairs += list(h.extra)
    head = _preamble(style, "station B results") + _header_lines("FAILMAP-B 1", pairs, style, rng)
    n = int(x.size)
    if style.blank_lines:
        head.append("")
    if style.comments:
        head.append("# x y bin " + " ".join(h.values))
    head.append(f"DIES {n}")
    cols = [textcols.int_cells(x), textcols.int_cells(y),
            textcols.int_cells(bins, zero_pad=style.bin_pad)] + value_cells(values, h.values)
    rows = _die_rows(cols, style, rng) if n else b""
    return _finish(head, rows, n, ["END"], style, rng)


# ------------------------------------------------------------------- breakages
# Each returns text that violates exactly one rule of the contract.

def _row_span(r: Rendered, index: int) -> tuple[int, int]:
    """Byte span [start, end) of die row ``index`` (excluding its newline)."""
    nl = r.style.newline
    body = r.data[r.rows_start:r.rows_end]
    pos, seen = 0, -1
    while True:
        end = body.index(nl, pos)
        line = body[pos:end]
        if line and not line.startswith(b"#"):
            seen += 1
            if seen == index:
                return r.rows_start + pos, r.rows_start + end
        pos = end + len(nl)


def break_truncate_text(r: Rendered, rng: np.random.Generator) -> bytes:
    """The writer died mid-file: rows stop early and there is no END."""
    if r.n_rows == 0:
        return r.data[: r.rows_start]
    keep = int(rng.integers(0, r.n_rows))
    start, _ = _row_span(r, keep)
    return r.data[:start]


def break_bad_row(r: Rendered, rng: np.random.Generator) -> tuple[bytes, str]:
    """One die row that is not ``x y bin``: a letter in a number, a missing or huge bin."""
    index = int(rng.integers(0, r.n_rows))
    start, end = _row_span(r, index)
    fields = r.data[start:end].split()
    kind = int(rng.integers(0, 3))
    if kind == 0:
        fields[1] = b"x" + fields[1]
        what = "non-numeric y"
    elif kind == 1:
        fields = fields[:2]
        what = "missing bin"
    else:
        fields[2] = b"70000"
        what = "bin above 65535"
    return r.data[:start] + b" ".join(fields) + r.data[end:], what


def break_value_count(r: Rendered, rng: np.random.Generator) -> bytes:
    """One B row with a value too few or too many."""
    index = int(rng.integers(0, r.n_rows))
    start, end = _row_span(r, index)
    fields = r.data[start:end].split()
    fields = fields[:-1] if (rng.random() < 0.5 and len(fields) > 4) else fields + [b"0.5"]
    return r.data[:start] + b" ".join(fields) + r.data[end:]


def lying_extension(real: str, rng: np.random.Generator) -> str:
    """An extension other than the real format's (readers must trust magic bytes)."""
    others = [f for f in compression.FORMATS if f != real and not {f, real} <= {"tar.gz", "tgz"}]
    return str(rng.choice(others))
