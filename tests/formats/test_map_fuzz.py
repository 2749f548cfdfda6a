"""Industry map readers under damage: every seeded mutation of a real file (or of a
standard-derived one where no real file exists) ends as wafer maps or as a
``Rejected`` with a reason, never as any other exception (which the day runner
would report as ``internal_error``, our bug).

Each reader gets a few seconds; the ``slow`` variants run more seeds."""

from __future__ import annotations

import re
import struct

import numpy as np
import pytest

from failmap_assets.formats.ascii_maps import read_ascii_map
from failmap_assets.formats.detect import read_wafer_maps
from failmap_assets.formats.e142 import read_e142
from failmap_assets.formats.g85 import read_g85
from failmap_assets.formats.klarf import read_klarf
from failmap_assets.formats.tsk import read_tsk
from failmap_assets.wafer.model import WaferMap
from failmap_assets.wafer.rejects import Rejected
from tests.formats.test_e142 import e142
from tests.formats.test_klarf import K12_IMAGES, K18_KLA_IMAGES
from tests.formats.test_tsk import ext_header, header, make
from tests.support.mutations import mutations
from tests.support.testdata import shared_file

pytestmark = pytest.mark.timeout(120)

_REASON = re.compile(r"^[a-z][a-z0-9_]{1,40}$")


def outcome(read, data: bytes) -> str:
    """"ok" after checking the maps, or the reject reason; any other exception propagates."""
    try:
        maps = read(data)
    except Rejected as exc:
        assert _REASON.match(exc.reason), exc.reason
        assert len(exc.detail) < 1000, exc.detail[:200]        # values quoted in messages are shortened
        # expat also counts a lone CR as a line end
        assert exc.line is None or 1 <= exc.line <= data.count(b"\n") + data.count(b"\r") + 2, (exc.line, exc)
        return exc.reason
    assert maps and all(isinstance(m, WaferMap) for m in maps)
    for m in maps:
        n = m.die_count
        assert len(m.x) == len(m.y) == len(m.bin) == len(m.retest_count) == n
        assert m.x.dtype == m.y.dtype == m.bin.dtype == np.int32
        assert (m.bin >= 0).all()
    return "ok"


def fuzz(read, sample: bytes, seed: int, n: int) -> set[str]:
    seen = set()
    for label, data in mutations(sample, seed, n):
        try:
            seen.add(outcome(read, data))
        except Exception as exc:  # the label reproduces the case: tests/support/mutations.py
            raise AssertionError(f"{label}: {type(exc).__name__}: {exc}"[:2000]) from exc
    return seen


def _both(reader):
    """The reader itself, and the same bytes through detection (which may pick another reader)."""
    def read(data: bytes):
        try:
            return reader(data)
        finally:
            try:
                read_wafer_maps(data)
            except Rejected:
                pass
    return read


def _real(folder: str, name: str) -> bytes:
    return shared_file("maps", folder, name).read_bytes()


# (file, iterations): iterations keep each file near one second.
KLARF = [("jklarf_klarf12Example.klarf", 800), ("jklarf_simple18.klarf", 500),
         ("jklarf_wierdKlarfWithNAs.klarf", 400), ("klarfkit_CPS3TwithoutReview.001", 60)]
G85 = [("waferview_SEMI_G85_1101_ALL.xml", 400), ("nuvoton_BQ16652-01.xml", 800), ("tdk_342001-03.xml", 600)]
ASCII = [("stm_wm13_G345875.021", 800), ("mchp_3A1877.01", 800), ("legic_U667T04-C5.map", 800),
         ("melexis_S96898-01-B6", 600), ("ifx_versid32_84P01V59.21", 200)]
TSK = [("larvata_001.QR2352-D5U278-CP-1", 120)]


@pytest.mark.parametrize(("name", "n"), KLARF)
def test_klarf_fuzz(name, n):
    seen = fuzz(_both(read_klarf), _real("klarf", name), 1601, n)
    assert "ok" in seen and len(seen) >= 3


@pytest.mark.parametrize(("name", "n"), G85)
def test_g85_fuzz(name, n):
    seen = fuzz(_both(read_g85), _real("g85", name), 1602, n)
    assert "ok" in seen and len(seen) >= 3


def _e142_sample() -> bytes:
    # No real E142 file with clear rights exists (../shared/testdata/maps/README.md):
    # a standard-derived one, with reference devices and two overlays.
    rows = ["..1121..", ".112211.", "12211112", "11112111", ".121121.", "..1111.."]
    return e142(rows, refs=[(3, 2)], overlays=2, side="TopSide")


def test_e142_fuzz():
    seen = fuzz(_both(read_e142), _e142_sample(), 1603, 500)
    assert "ok" in seen and len(seen) >= 3


# The other row orders and sides the reader knows, each its own code path.
E142_VARIANTS = {
    "center-downleft-bottom": dict(origin="Center", axes="DownLeft", side="BottomSide", orientation="90"),
    "upperright-hex": dict(origin="UpperRight", axes=None, bin_type="HexaDecimal", null="FF",
                           defs=(("01", "Pass", "GOOD"), ("1F", "Fail", "LEAK"), ("FE", "Null", "EDGE"))),
}


@pytest.mark.parametrize("variant", sorted(E142_VARIANTS))
def test_e142_variant_fuzz(variant):
    kw = E142_VARIANTS[variant]
    rows = ["FF0101FF", "011F1F01", "FE0101FF"] if kw.get("bin_type") == "HexaDecimal" else ["..12..", ".1221.", "..11.."]
    seen = fuzz(_both(read_e142), e142(rows, refs=[(1, 1)], **kw), 1606, 300)
    assert "ok" in seen and len(seen) >= 3


# KLARF image lists (1.2 IMAGELIST column, 1.8 ImageList type) are variable-width rows.
KLARF_IMAGE_LISTS = {"1.2": K12_IMAGES.format(mark_type="NOTCH", mark="LEFT", mirrored="YES"), "1.8": K18_KLA_IMAGES}


@pytest.mark.parametrize("version", sorted(KLARF_IMAGE_LISTS))
def test_klarf_image_list_fuzz(version):
    seen = fuzz(_both(read_klarf), KLARF_IMAGE_LISTS[version].encode(), 1607, 600)
    assert "ok" in seen and len(seen) >= 3


def _tsk_record_layouts() -> dict[str, bytes]:
    """Small TSK files for every record layout and trailing area the reader decodes."""
    def ext_records(words):
        return b"".join(struct.pack(">HH", a, b) for a, b in words)
    cats = [(0, 0), (1, 199), (2, 200), (0, 0), (3, 199), (1, 250)]
    v1_body = bytes([(1 << 6) | 3, 0, (2 << 6) | 7, 1, 0, 0, 65, 2])
    flagged = [(0xF000 | s, (s & 1) << 15 | (s & 2) << 13 | 700 + c) for s, c in cats]   # correction / rearranged
    times = dict(start=b"2407151230\0\0", end=b"2407151305\0\0", continuous=2, multipass=(4, 2, 2))
    return {
        "v1": header(2, 2, version=1) + ext_header(3, 2, 1) + v1_body,
        "v1-ext-records": header(2, 2, version=1, config=0b10011) + ext_header(3, 2, 1, **times) + v1_body
        + bytes([1, 2, 3, 0xFC]),
        "v2-lines-ext": make(version=2, config=0b11111, line_count=6) + b"\xee" * 48 + ext_header(4, 2, 2)
        + ext_records((s << 8 | c, 0) for s, c in cats),
        "v3-ext-records": make(version=3, config=0b10011) + ext_records((s << 8 | c, 0) for s, c in cats),
        "v4-ext": make(version=4, config=0b11011) + ext_header(4, 2, 2) + ext_records((1, c) for _, c in cats),
        "v5-flags": make(version=5, config=0b11011, max_categories=1024) + ext_header(4, 2, 1, 1, 1, **times)
        + ext_records(flagged),
        "v6-64": make(version=6, config=0b11011) + ext_header(4, 2, 2) + bytes(24),
        "v7-line-address": make(version=7, config=0b11111, line_count=2, line_address=236 + 36 + 8)
        + bytes(8) + b"\x01" * 16 + ext_header(4, 2, 2) + ext_records((0, 5000 + c) for _, c in cats),
        "v7-flags": make(version=7, config=0b11011, max_categories=9999) + ext_header(4, 2, 2)
        + ext_records((w1 | 0x1FFF, w2 | 0x3000) for w1, w2 in flagged),
    }


@pytest.mark.parametrize("layout", sorted(_tsk_record_layouts()))
def test_tsk_record_layout_fuzz(layout):
    sample = _tsk_record_layouts()[layout]
    assert read_tsk(sample)                                   # the undamaged file reads
    seen = fuzz(_both(read_tsk), sample, 1608, 600)
    assert "ok" in seen and len(seen) >= 2


@pytest.mark.parametrize(("name", "n"), TSK)
def test_tsk_fuzz(name, n):
    seen = fuzz(_both(read_tsk), _real("tsk", name), 1604, n)
    assert "ok" in seen and len(seen) >= 2


@pytest.mark.parametrize(("name", "n"), ASCII)
def test_ascii_fuzz(name, n):
    seen = fuzz(_both(read_ascii_map), _real("ascii", name), 1605, n)
    assert "ok" in seen and len(seen) >= 3


@pytest.mark.slow
@pytest.mark.parametrize("seed", [7, 8])
def test_every_reader_more_seeds(seed):
    for folder, reader, files in (("klarf", read_klarf, KLARF[:3]), ("g85", read_g85, G85), ("ascii", read_ascii_map, ASCII[:4])):
        for name, n in files:
            fuzz(reader, _real(folder, name), seed, n // 2)
    fuzz(read_e142, _e142_sample(), seed, 300)


# ---------------------------------------------------------------------------
# The crashes fuzzing found, each now a reject naming its construct and line
# ---------------------------------------------------------------------------


def _rejected(read, data: bytes) -> Rejected:
    with pytest.raises(Rejected) as info:
        read(data)
    return info.value


def test_klarf_huge_die_index_is_a_bad_value_on_its_line():
    text = _real("klarf", "jklarf_klarf12Example.klarf")
    exc = _rejected(read_klarf, text.replace(b"  1 1;", b"  1 " + b"9" * 30 + b";", 1))
    assert exc.reason == "bad_value" and "SampleTestPlan YINDEX" in exc.detail and "outside" in exc.detail
    assert exc.line == text[: text.index(b"SampleTestPlan")].count(b"\n") + 1     # the statement's line


def test_ascii_huge_nulbc_is_a_bad_header_on_its_line():
    text = _real("ascii", "stm_wm13_G345875.021")
    exc = _rejected(read_ascii_map, re.sub(rb"NULBC\t\d+", b"NULBC\t" + b"9" * 40, text))
    assert exc.reason == "bad_header" and "NULBC" in exc.detail and len(exc.detail) < 200
    assert exc.line == text[: text.index(b"NULBC")].count(b"\n") + 1


@pytest.mark.parametrize("encoding", ["bogus", "x-unknown-8"])
def test_xml_unknown_declared_encoding_is_bad_xml(encoding):
    text = _real("g85", "waferview_SEMI_G85_1101_ALL.xml").replace(b"UTF-8", encoding.encode(), 1)
    exc = _rejected(read_g85, text)
    assert exc.reason == "bad_xml" and "encoding" in exc.detail and exc.line == 1
    assert _rejected(read_e142, _e142_sample().replace(b"UTF-8", encoding.encode(), 1)).reason == "bad_xml"


def test_xml_in_an_encoding_expat_cannot_stream_is_transcoded():
    # Shift_JIS and EUC-JP are multi-byte codecs pyexpat refuses; Python decodes them.
    for encoding in ("shift_jis", "euc_jp"):
        doc = _e142_sample().decode().replace("UTF-8", encoding).replace("PROD-7", "製品-7").encode(encoding)
        [first, _] = read_e142(doc)
        assert first.product == "製品-7"
