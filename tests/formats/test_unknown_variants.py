"""Every map family: a real file changed in one construct to a variant the reader does
not know is rejected with the construct's NAME and its POSITION (the line for text and
XML formats, the byte offset for binary TSK), never with a generic error.

Each case is derived from a real file in ../shared/testdata/maps by the test itself
(E142, which has no real file, is covered the same way in test_e142.py)."""

from __future__ import annotations

import re
import struct

import pytest

from failmap_assets.formats.ascii_maps import read_ascii_map
from failmap_assets.formats.detect import read_wafer_maps
from failmap_assets.formats.g85 import read_g85
from failmap_assets.formats.klarf import read_klarf
from failmap_assets.formats.tsk import read_tsk
from failmap_assets.wafer.rejects import Rejected
from tests.support.testdata import requires_shared, shared_file

pytestmark = requires_shared


def _real(folder: str, name: str) -> bytes:
    return shared_file("maps", folder, name).read_bytes()


def _line(data: bytes, needle: bytes) -> int:
    """1-based line of the first occurrence of ``needle``."""
    return data[: data.index(needle)].count(b"\n") + 1


def _rejected(read, data: bytes) -> Rejected:
    with pytest.raises(Rejected) as info:
        read(data)
    # Detection picks the same reader and gives the same answer.
    with pytest.raises(Rejected) as again:
        read_wafer_maps(data)
    assert (again.value.reason, again.value.line) == (info.value.reason, info.value.line)
    return info.value


# (folder, file, bytes replaced, replacement, reader, reason, construct named, text whose line is expected)
TEXT_CASES = [
    # G85 (XML): the line is the start tag of the element holding the construct.
    ("g85", "tdk_342001-03.xml", b'OriginLocation="2"', b'OriginLocation="9"', read_g85,
     "bad_orientation", "OriginLocation", b"<Device"),
    ("g85", "nuvoton_BQ16652-01.xml", b'Orientation="0"', b'Orientation="north-ish"', read_g85,
     "bad_orientation", "Orientation", b"<Device"),
    ("g85", "waferview_SEMI_G85_1101_ALL.xml", b'BinType="HexaDecimal"', b'BinType="Base64"', read_g85,
     "bad_bin_type", "BinType", b"<Device"),
    ("g85", "waferview_SEMI_G85_1101_ALL.xml", b'Rows="60"', b'Rows="61"', read_g85,
     "row_count", "Rows", b"<Device"),
    ("g85", "nuvoton_BQ16652-01.xml", b"111111....", b"111111...", read_g85,
     "bad_row", "row", b"111111..."),
    ("g85", "tdk_342001-03.xml", b'BinCode="', b'BinCode="\xc2\xa7\xc2\xa7', read_g85,
     "bad_bin_code", "bin code", b'BinCode="\xc2\xa7'),
    # KLARF 1.x: the statement's line; 1.8: the Field's line.
    ("klarf", "jklarf_klarf12Example.klarf", b"OrientationMarkLocation DOWN", b"OrientationMarkLocation DIAGONAL",
     read_klarf, "bad_orientation", "OrientationMarkLocation", b"OrientationMarkLocation"),
    ("klarf", "klarfkit_CPS3TwithoutReview.001", b"SampleOrientationMarkType NOTCH",
     b"SampleOrientationMarkType DIMPLE", read_klarf, "bad_orientation", "SampleOrientationMarkType",
     b"SampleOrientationMarkType"),
    ("klarf", "klarfkit_CPS3TwithoutReview.001", b"OrientationMarkLocation DOWN;",
     b"OrientationMarkLocation DOWN;\nCoordinatesMirrored MAYBE;", read_klarf, "bad_orientation",
     "CoordinatesMirrored", b"CoordinatesMirrored"),
    ("klarf", "jklarf_simple18.klarf", b'Field SampleOrientationMarkType 1 {"NOTCH"}',
     b'Field SampleOrientationMarkType 1 {"TRIANGLE"}', read_klarf, "bad_orientation",
     "SampleOrientationMarkType", b"Field SampleOrientationMarkType"),
    ("klarf", "jklarf_simple18.klarf", b"Field OrientationMarkLocation 1 {0}",
     b'Field OrientationMarkLocation 1 {"west-ish"}', read_klarf, "bad_orientation",
     "OrientationMarkLocation", b"Field OrientationMarkLocation"),
    ("klarf", "jklarf_simple18.klarf", b"Field OrientationMarkLocation 1 {0}",
     b"Widget OrientationMarkLocation 1 {0}", read_klarf, "bad_syntax", "Widget", b"Widget"),
    # ASCII dialects: the header line of the keyword.
    ("ascii", "stm_wm13_G345875.021", b"FLAT\t90", b"FLAT\tsideways", read_ascii_map,
     "bad_orientation", "FLAT", b"FLAT\t"),
    ("ascii", "mchp_3A1877.01", b"BINTYPE = ASCII", b"BINTYPE = PACKED", read_ascii_map,
     "bad_bin_type", "BINTYPE", b"BINTYPE"),
    ("ascii", "mchp_3A1877.01", b"FNLOC = 270", b"FNLOC = sideways", read_ascii_map,
     "bad_orientation", "FNLOC", b"FNLOC"),
    ("ascii", "melexis_S96898-01-B6", b"Orient: 6", b"Orient: 5", read_ascii_map,
     "bad_orientation", "Orient", b"Orient"),
    ("ascii", "legic_U667T04-C5.map", b"Flat/Notch: Down", b"Flat/Notch: Sideways", read_ascii_map,
     "bad_orientation", "Flat/Notch", b"Flat/Notch"),
    ("ascii", "ifx_versid32_84P01V59.21", b"FNLOC1 0", b"FNLOC1 xx", read_ascii_map,
     "bad_orientation", "FNLOC1", b"FNLOC1"),
    ("ascii", "ifx_versid32_84P01V59.21", b"ORLOC1 3", b"ORLOC1 7", read_ascii_map,
     "bad_orientation", "ORLOC1", b"ORLOC1"),
]


@pytest.mark.parametrize(
    ("folder", "name", "old", "new", "read", "reason", "construct", "at"),
    TEXT_CASES,
    ids=[f"{c[1]}:{c[6]}" for c in TEXT_CASES],
)
def test_text_and_xml_variants_are_rejected_with_line_and_construct(folder, name, old, new, read, reason, construct, at):
    data = _real(folder, name)
    assert old in data, "the real file no longer holds the construct this case changes"
    changed = data.replace(old, new, 1)
    exc = _rejected(read, changed)
    assert exc.reason == reason, exc
    assert construct in exc.detail, exc.detail
    assert exc.line == _line(changed, at), (exc.line, exc)
    assert f"line {exc.line}" in str(exc)


TSK = ("tsk", "larvata_001.QR2352-D5U278-CP-1")


def _tsk_changed(**fields) -> bytes:
    data = bytearray(_real(*TSK))
    offsets = {"version": (51, ">B"), "config": (228, ">H"), "max_categories": (232, ">H"), "line_count": (220, ">I")}
    for key, value in fields.items():
        offset, fmt = offsets[key]
        struct.pack_into(fmt, data, offset, value)
    return bytes(data)


def _tsk_cases():
    real = _real(*TSK)
    records_end = 236 + 6 * 254 * 265
    n = 254 * 265
    return [
        # (bytes, reason, construct, byte offset named)
        (_tsk_changed(version=9), "unknown_variant", "map version 9", 51),
        (real[:records_end - 3], "truncated", "TSK die records", 236),
        (real[:records_end + 100], "truncated", "TSK extension header", records_end),
        (_tsk_changed(config=0b11011), "truncated", "TSK extension die records", records_end + 172),
        # Map version 6 is the one whose extension records no public source describes.
        (_tsk_changed(version=6, config=0b11011, max_categories=256) + bytes(4 * n), "unknown_variant",
         "extension die records of map version 6", records_end + 172),
        (_tsk_changed(config=0b1111, line_count=n), "truncated", "TSK line-category area", records_end),
    ]


@pytest.mark.parametrize("case", range(6))
def test_binary_tsk_variants_are_rejected_with_byte_offset_and_construct(case):
    data, reason, construct, offset = _tsk_cases()[case]
    exc = _rejected(read_tsk, data)
    assert exc.reason == reason, exc
    assert construct in exc.detail and re.search(rf"\bbyte offset {offset}\b", exc.detail), exc.detail
