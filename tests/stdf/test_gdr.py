"""GDR records: the two-pass kernel (decode/gdr.py) that writes a GDR's ``fields`` object
straight from the record bytes, against the column path (``gdr_json`` + ``jsontext.objects``)
and against a plain-Python reading of the typed items; bad input to the kernel is refused."""

from __future__ import annotations

import json
import math
import struct

import numpy as np
import pytest

from failmap_assets.stdf import decode as D
from failmap_assets.stdf import records as R
from failmap_assets.stdf import tables as T
from failmap_assets.stdf.decode.gdr import gdr_json
from failmap_assets.stdf.scan import detect, scan
from failmap_assets.stdf.source import open_sources
from tests.stdf.conftest import ALL_V4_FILES
from tests.support.testdata import STDF_DIR, requires_shared

GDR = R.BY_NAME["GDR"]
_SIZE = {0: 0, 1: 1, 2: 2, 3: 4, 4: 1, 5: 2, 6: 4, 7: 4, 8: 8, 13: 1}
ODD = np.frombuffer(b'aZ0 "\\\x00\x01\x08\t\n\x0b\x0c\r\x1f\x7f\x80\xb0\xc3\xa9\xe2\x82\xac\xff', np.uint8)


def _items(body: bytes, be: bool) -> list | None:
    """GEN_DATA read in plain Python, as JSON values (None when the items do not fit)."""
    e = ">" if be else "<"
    if len(body) < 2:
        return None
    n, p, out = struct.unpack(e + "H", body[:2])[0], 2, []
    for _ in range(n):
        if p >= len(body):
            return None
        c = body[p]
        p += 1
        if c in (10, 11):
            if p >= len(body) or p + 1 + body[p] > len(body):
                return None
            s = body[p + 1:p + 1 + body[p]]
            p += 1 + len(s)
            if c == 11:
                v = s.hex()
            else:
                try:
                    v = s.decode("utf-8")
                except UnicodeDecodeError:
                    v = s.decode("latin-1")
        elif c == 12:
            if p + 2 > len(body):
                return None
            bits = struct.unpack(e + "H", body[p:p + 2])[0]
            s = body[p + 2:p + 2 + (bits + 7) // 8]
            if len(s) < (bits + 7) // 8:
                return None
            v = {"bits": bits, "hex": s.hex()}
            p += 2 + len(s)
        elif c in _SIZE:
            raw = body[p:p + _SIZE[c]]
            if len(raw) < _SIZE[c]:
                return None
            p += _SIZE[c]
            fmt = {0: None, 1: "B", 2: "H", 3: "I", 4: "b", 5: "h", 6: "i", 7: "f", 8: "d", 13: "B"}[c]
            v = None if fmt is None else struct.unpack(e + fmt, raw)[0]
            if c == 13:
                v &= 0x0F
            if isinstance(v, float) and not math.isfinite(v):
                v = "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")
        else:
            return None
        out.append([c, v])
    return out


def _random_body(rng: np.random.Generator, be: bool) -> bytes:
    e = ">" if be else "<"
    items = b""
    n = int(rng.integers(0, 14))
    for _ in range(n):
        c = int(rng.choice([0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13]))
        if c in (10, 11):
            s = bytes(ODD[rng.integers(0, len(ODD), int(rng.integers(0, 12)))])
            items += bytes([c, len(s)]) + s
        elif c == 12:
            bits = int(rng.integers(0, 40))
            items += bytes([c]) + struct.pack(e + "H", bits) + rng.integers(0, 256, (bits + 7) // 8, np.uint8).tobytes()
        elif c in (7, 8) and rng.random() < 0.3:
            items += bytes([c]) + struct.pack(e + ("f" if c == 7 else "d"),
                                                float(rng.choice([math.nan, math.inf, -math.inf, 0.1, -2.5e-30])))
        else:
            items += bytes([c]) + rng.integers(0, 256, _SIZE[c], np.uint8).tobytes()
    return struct.pack(e + "H", n) + items


def _buffer(bodies: list[bytes], be: bool):
    chunks, offs, lens, at = [], [], [], 0
    for b in bodies:
        hdr = struct.pack((">" if be else "<") + "H", len(b)) + bytes([GDR.typ, GDR.sub])
        chunks.append(hdr + b)
        offs.append(at)
        lens.append(len(b))
        at += 4 + len(b)
    return np.frombuffer(b"".join(chunks) or b"\0", np.uint8), np.array(offs, np.int64), np.array(lens, np.int32)


def _check(buf, offs, lens, be, bodies=None):
    val, aux, _ = D.interpret(buf, offs, lens, be, GDR)
    got = D.gdr_objects(buf, val, aux, be)
    ref = T._record_json(D.columns(buf, be, GDR, val, aux), len(offs))
    assert got.type == ref.type and got.equals(ref), (got.to_pylist()[:2], ref.to_pylist()[:2])
    for k, text in enumerate(got.to_pylist() if bodies is not None else []):
        obj = json.loads(text)
        want = _items(bodies[k], be)
        assert obj["GEN_DATA"] == want, (bodies[k], text)
    return got


@pytest.mark.parametrize("be", [False, True])
def test_gdr_objects_fuzz(be):
    """Well-formed random GDRs (every type code, odd strings, NaN / Infinity), then each cut
    at a random length or with a byte changed: the text equals the column path's, and
    GEN_DATA equals a plain-Python reading of the bytes (null where the items do not fit)."""
    rng = np.random.default_rng(16 + be)
    bodies = []
    for _ in range(400):
        b = bytearray(_random_body(rng, be))
        r = rng.random()
        if r < 0.2:
            b = b[:int(rng.integers(0, len(b) + 1))]
        elif r < 0.35 and b:
            b[int(rng.integers(0, len(b)))] = int(rng.integers(0, 256))
        bodies.append(bytes(b))
    buf, offs, lens = _buffer(bodies, be)
    got = _check(buf, offs, lens, be, bodies)
    assert sum(json.loads(t)["GEN_DATA"] is not None for t in got.to_pylist()) > 250


def test_gdr_objects_of_records_without_fields():
    """An empty GDR has neither field; a count without items has no GEN_DATA."""
    bodies = [b"", b"\x02\x00", b"\x00\x00", b"\x01"]
    buf, offs, lens = _buffer(bodies, False)
    got = _check(buf, offs, lens, False)
    assert got.to_pylist() == ['{"FLD_CNT": null, "GEN_DATA": null}', '{"FLD_CNT": 2, "GEN_DATA": null}',
                               '{"FLD_CNT": 0, "GEN_DATA": []}', '{"FLD_CNT": null, "GEN_DATA": null}']


@requires_shared
def test_gdr_objects_equal_column_path_on_real_files():
    with_gdr = 0
    for name in (n for n in ALL_V4_FILES if not n.endswith(".gz")):
        src = open_sources(STDF_DIR / name)[0]
        h = detect(src.data)
        idx = scan(src.data, h.big_endian)
        pos = np.flatnonzero(idx.code == R.CODE["GDR"])
        if pos.size:
            _check(src.data, idx.offset[pos], idx.length[pos], h.big_endian)
            with_gdr += 1
    assert with_gdr >= 2


def test_gdr_kernel_refuses_items_outside_the_buffer():
    """Called with spans the interpreter did not check, the kernel refuses before writing."""
    buf = np.frombuffer(b"\x0a\x05ab", np.uint8)          # a string of 5 bytes, 2 left
    for starts, counts in (([0], [1]), ([3], [2]), ([-1], [1]), ([4], [1])):
        with pytest.raises(ValueError, match="GDR row 0"):
            gdr_json(buf, np.array(starts), np.array(counts), np.array([True]), False)
    unknown = np.frombuffer(b"\x09\x00", np.uint8)        # type code 9 does not exist
    with pytest.raises(ValueError):
        gdr_json(unknown, np.array([0]), np.array([1]), np.array([True]), False)
    ok = gdr_json(buf, np.array([3]), np.array([2]), np.array([False]), False)   # not valid: not read
    assert ok.to_pylist() == [None]
