"""Seeded damage to real map files, for fuzzing the readers: every mutation is a
pure function of (sample, seed), so a failing case reproduces from its seed.

``mutations(sample, seed, n)`` yields ``(label, damaged bytes)``: byte flips,
binary header fields set to extremes, truncation, huge or negative integers in place of numbers, duplicated and
deleted lines, and odd encodings (UTF-16/32 with BOM, a bogus or mismatched
XML ``encoding=``, stray NUL / high bytes).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator

HUGE = [
    "9" * 30, "-" + "9" * 30, "1" + "0" * 5000, "1e99999", "-1e99999", "nan", "inf",
    "65536", "4294967296", "18446744073709551616", "-2147483649", "1.5", "-0",
]
ENCODINGS = ["bogus", "utf-16", "utf-32", "cp037", "x-unknown-8", "iso-8859-1", "", "utf-8\x00"]
_NUMBER = re.compile(rb"-?[0-9][0-9.eE+-]*")


def _flip(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        out[rng.randrange(len(out))] = rng.randrange(256)
    return bytes(out)


def _binary_field(data: bytes, rng: random.Random) -> bytes:
    """A binary header field (2 or 4 bytes in the first 256) set to an extreme: counts,
    addresses and versions a reader must bound before it trusts them. Text: a byte flip."""
    if b"\0" not in data[:256] or len(data) < 8:
        return _flip(data, rng)
    out = bytearray(data)
    width = rng.choice([1, 2, 4])
    at = rng.randrange(0, min(len(out), 256) - width + 1)
    out[at : at + width] = rng.choice([b"\x00", b"\xff", b"\x7f", b"\x01"]) * width
    return bytes(out)


def _truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(len(data))]


def _huge_number(data: bytes, rng: random.Random) -> bytes:
    spans = [m.span() for m in _NUMBER.finditer(data)]
    if not spans:
        return _flip(data, rng)
    for _ in range(rng.randint(1, 3)):
        start, end = rng.choice(spans)
        data = data[:start] + rng.choice(HUGE).encode() + data[end:]
        spans = [m.span() for m in _NUMBER.finditer(data)] or [(0, 0)]
    return data


def _lines(data: bytes, rng: random.Random) -> bytes:
    lines = data.splitlines(keepends=True)
    if len(lines) < 2:
        return _flip(data, rng)
    i = rng.randrange(len(lines))
    if rng.random() < 0.5:
        lines.insert(i, lines[rng.randrange(len(lines))] * rng.randint(1, 3))
    else:
        del lines[i : i + rng.randint(1, 3)]
    return b"".join(lines)


def _encoding(data: bytes, rng: random.Random) -> bytes:
    choice = rng.randrange(5)
    if choice == 0:
        return data.decode("latin-1").encode(rng.choice(["utf-16", "utf-32", "utf-16-be"]))
    if choice == 1:  # the XML declaration names another (or no real) encoding
        decl = re.match(rb"\s*<\?xml[^>]*\?>", data)
        enc = rng.choice(ENCODINGS).encode("latin-1")
        if decl is not None:
            head = re.sub(rb"encoding\s*=\s*[\"'][^\"']*[\"']", b'encoding="' + enc + b'"', decl.group(0))
            if head == decl.group(0):
                head = head[:-2] + b' encoding="' + enc + b'"?>'
            return head + data[decl.end():]
        return b'<?xml version="1.0" encoding="' + enc + b'"?>\n' + data
    if choice == 2:
        return b"\xef\xbb\xbf" + data if rng.random() < 0.5 else b"\xff\xfe" + data
    at = rng.randrange(len(data) + 1)
    return data[:at] + rng.choice([b"\0", b"\xff\xfe\xfd", b"\xc3", b"\x80" * 3, b"\r", b"\t\t"]) + data[at:]


MUTATORS: dict[str, Callable[[bytes, random.Random], bytes]] = {
    "flip": _flip, "truncate": _truncate, "huge_number": _huge_number, "lines": _lines, "encoding": _encoding,
    "binary_field": _binary_field,
}


def mutations(sample: bytes, seed: int, n: int) -> Iterator[tuple[str, bytes]]:
    """``n`` damaged copies of ``sample`` (one to three mutations each), in a fixed order for ``seed``."""
    rng = random.Random(seed)
    names = sorted(MUTATORS)
    for i in range(n):
        data, applied = sample, []
        for _ in range(1 if rng.random() < 0.7 else rng.randint(2, 3)):
            name = names[(i + len(applied)) % len(names)] if not applied else rng.choice(names)
            data = MUTATORS[name](data, rng) if data else data
            applied.append(name)
        yield f"seed={seed} i={i} {'+'.join(applied)}", data
