"""Test-side helpers: open synthetic objects with stdlib / ncompress / py7zr and check
their text against docs/failmap-format.md. Deliberately independent of the project's
own readers (written in parallel), so these tests judge the generator alone."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import re
import tarfile
import zipfile
from dataclasses import dataclass
from datetime import datetime

import ncompress
import numpy as np
import py7zr
from py7zr.io import BytesIOFactory

KEY_RE = re.compile(
    r"^(?P<folder>\d{8})/(?P<token>[A-Za-z0-9.-]+)_(?P<slot>0[1-9]|1\d|2[0-5])(?P<ins>[A-Z])"
    r"_(?P<date>\d{8})_(?P<time>\d{6})\.(?P<ext>Z|gz|bz2|xz|7z|zip|tar|tar\.gz|tgz|txt)$")
STDF_KEY_RE = re.compile(r"^(\d{8})/([A-Za-z0-9.-]+)_(\d{2})_(\d{8})_(\d{6})\.stdf(\.gz)?$")


def sniff(data: bytes) -> str:
    """The real container, from magic bytes (extensions may lie)."""
    if data[:2] == b"\x1f\x9d":
        return "Z"
    if data[:2] == b"\x1f\x8b":
        inner = gzip.decompress(data)
        return "tar.gz" if inner[257:262] == b"ustar" else "gz"
    if data[:3] == b"BZh":
        return "bz2"
    if data[:6] == b"\xfd7zXZ\x00":
        return "xz"
    if data[:6] == b"7z\xbc\xaf\x27\x1c":
        return "7z"
    if data[:4] == b"PK\x03\x04":
        return "zip"
    if data[257:262] == b"ustar":
        return "tar"
    return "txt"


def members(data: bytes) -> list[tuple[str, bytes | None]]:
    """(name, bytes) for each member; None for a folder; stream formats have one ""."""
    kind = sniff(data)
    if kind == "Z":
        return [("", ncompress.decompress(data))]
    if kind == "gz":
        return [("", gzip.decompress(data))]
    if kind == "bz2":
        return [("", bz2.decompress(data))]
    if kind == "xz":
        return [("", lzma.decompress(data))]
    if kind == "txt":
        return [("", data)]
    if kind == "zip":
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            return [(i.filename, None if i.is_dir() else z.read(i)) for i in z.infolist()]
    if kind in ("tar", "tar.gz"):
        raw = gzip.decompress(data) if kind == "tar.gz" else data
        with tarfile.open(fileobj=io.BytesIO(raw)) as t:
            return [(m.name, t.extractfile(m).read() if m.isfile() else None) for m in t.getmembers()]
    with py7zr.SevenZipFile(io.BytesIO(data)) as z:
        names = [i.filename for i in z.list()]
        factory = BytesIOFactory(1 << 30)
        z.extractall(factory=factory)
        out = []
        for n in names:
            p = factory.products.get(n)
            out.append((n, p.read() if p is not None else b""))
        return out


@dataclass
class Map:
    kind: str                    # "A" or "B"
    header: dict[str, list[str]]  # key -> values (BINDEF etc may repeat: joined list)
    rows: list[list[str]]
    crlf: bool
    bom: bool
    comments: bool
    tabs: bool

    def ints(self) -> np.ndarray:
        return np.array([[int(f) for f in r[:3]] for r in self.rows], np.int64).reshape(-1, 3)


class BadMap(ValueError):
    pass


def parse_map(raw: bytes) -> Map:
    """A strict reading of the contract; raises BadMap on anything it forbids."""
    bom = raw.startswith(b"\xef\xbb\xbf")
    text = raw[3:] if bom else raw
    try:
        s = text.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadMap(f"not UTF-8: {e}") from None
    lines = s.split("\n")
    crlf = any(line.endswith("\r") for line in lines)
    lines = [line.rstrip("\r") for line in lines]
    comments = any(line.startswith("#") for line in lines)
    tabs = "\t" in s
    content = [(i + 1, line) for i, line in enumerate(lines) if line.strip() and not line.startswith("#")]
    if not content:
        raise BadMap("empty")
    first = content[0][1].split()
    if first == ["FAILMAP", "1"]:
        kind = "A"
    elif first == ["FAILMAP-B", "1"]:
        kind = "B"
    else:
        raise BadMap(f"bad first line {content[0][1]!r}")
    header: dict[str, list[str]] = {}
    i = 1
    while i < len(content) and not content[i][1].startswith("DIES"):
        key, *vals = content[i][1].split()
        if not re.fullmatch(r"[A-Z][A-Z0-9_-]*", key):
            raise BadMap(f"line {content[i][0]}: bad key {key!r}")
        header.setdefault(key, []).append(" ".join(vals))
        i += 1
    if i == len(content):
        raise BadMap("no DIES")
    dies_line = content[i][1].split()
    if len(dies_line) != 2 or not dies_line[1].isdigit():
        raise BadMap("bad DIES line")
    n = int(dies_line[1])
    need = ("LOT", "WAFER", "STIME") if kind == "A" else ("STIME", "VALUES")
    for k in need:
        if k not in header:
            raise BadMap(f"missing {k}")
    k_values = 0
    if kind == "B":
        v = header["VALUES"][0].split()
        k_values = int(v[0])
        if len(v) != 1 + k_values:
            raise BadMap("VALUES count does not match names")
    body = content[i + 1:]
    if len(body) < n + 1:
        raise BadMap(f"truncated: {len(body)} lines after DIES {n}")
    rows = [line.split() for _, line in body[:n]]
    for (lineno, _), f in zip(body[:n], rows):
        if len(f) != 3 + k_values:
            raise BadMap(f"line {lineno}: {len(f)} fields")
    if rows:
        cols = list(zip(*rows))
        try:
            xs, ys, bins = (list(map(int, c)) for c in cols[:3])  # int("0285") == 285; "x7" raises
            for c in cols[3:]:
                list(map(float, (v for v in c if v != "NA")))
        except ValueError as e:
            raise BadMap(f"not a number: {e}") from None
        if min(bins) < 0 or max(bins) > 65535:
            raise BadMap("bin outside 0..65535")
    if [line for _, line in body[n:]] != ["END"]:
        raise BadMap(f"expected END after {n} rows, got {[line for _, line in body[n:n + 2]]}")
    return Map(kind, header, rows, crlf, bom, comments, tabs)


def key_time(key: str) -> datetime:
    m = KEY_RE.match(key)
    assert m, key
    return datetime.strptime(m["date"] + m["time"], "%Y%m%d%H%M%S")


def wafer_token(key: str) -> str:
    m = KEY_RE.match(key)
    assert m, key
    return f"{m['token']}_{m['slot']}{m['ins']}"
