"""Format detection from content, dispatch to the readers, rejects for unknown
content, and the rendered notch marker on the side each sample file states."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from PIL import Image

from failmap_assets.formats.detect import detect_map_format, read_wafer_maps
from failmap_assets.maps.render import NOTCH_INDEX, grid_for, render_wafer_png
from failmap_assets.wafer.rejects import Rejected
from tests.support.testdata import MAPS_DIR, requires_shared

EXPECTED = {
    "ascii/ifx_versid32_84P01V59.21": ("ascii:versid", [18181]),
    "ascii/legic_U667T04-C5.map": ("ascii:maxxy", [6362]),
    "ascii/mchp_3A1877.01": ("ascii:binlist", [3079]),
    "ascii/melexis_S96898-01-B6": ("ascii:maxxy", [8315]),
    "ascii/stm_wm13_G345875.021": ("ascii:st_wm", [5826]),
    "g85/nuvoton_BQ16652-01.xml": ("g85", [2040]),
    "g85/tdk_342001-03.xml": ("g85", [5563]),
    "g85/waferview_SEMI_G85_1101_ALL.xml": ("g85", [2808]),
    "klarf/jklarf_klarf12Example.klarf": ("klarf", [2]),
    "klarf/jklarf_simple18.klarf": ("klarf", [12, 1]),
    "klarf/jklarf_wierdKlarfWithNAs.klarf": ("klarf", [12, 1]),
    "klarf/klarfkit_CPS3TwithoutReview.001": ("klarf", [4988]),
    "tsk/larvata_001.QR2352-D5U278-CP-1": ("tsk", [49631]),
}


@requires_shared
def test_every_shared_sample_is_covered():
    on_disk = {str(p.relative_to(MAPS_DIR)) for p in MAPS_DIR.rglob("*") if p.is_file() and p.name != "README.md"}
    assert on_disk == set(EXPECTED)


@requires_shared
@pytest.mark.parametrize("rel", sorted(EXPECTED))
def test_samples_are_detected_from_content_and_read(rel):
    fmt, dies = EXPECTED[rel]
    data = (MAPS_DIR / rel).read_bytes()
    assert detect_map_format(data) == fmt
    wafers = read_wafer_maps(data, "any-name.txt")       # the name never steers detection
    assert [w.die_count for w in wafers] == dies
    for w in wafers:
        assert w.format == fmt
        assert (w.x.dtype, w.y.dtype, w.bin.dtype, w.retest_count.dtype) == ("int32", "int32", "int32", "int16")
        assert len(set(zip(w.x.tolist(), w.y.tolist()))) == w.die_count          # each die once
        assert w.bin.min() >= 0 and w.bin.max() <= 0xFFFF
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in w.extra.items())
        assert w.orig_x is None or len(w.orig_x) == len(w.orig_y) == w.die_count


# The side each file states, read from the file text with the format's own words.
def _stated_flat(rel: str, data: bytes) -> str:
    text = data.decode("latin-1")
    e5 = {0: "D", 90: "L", 180: "U", 270: "R"}
    if rel.startswith("g85/"):
        return e5[int(re.search(r'\bOrientation="(\d+)"', text).group(1))]
    if rel.startswith("tsk/"):
        return {0: "U", 90: "R", 180: "D", 270: "L"}[int.from_bytes(data[48:50], "big")]
    if rel.startswith("klarf/"):
        words = re.search(r"OrientationMarkLocation\s+(?:1\s*\{)?\s*(\w+)", text).group(1)
        return {"DOWN": "D", "UP": "U", "LEFT": "L", "RIGHT": "R"}.get(words) or e5[int(words)]
    for pattern in (r"^FLAT\t(\d+)", r"^FNLOC = (\d+)", r"^FNLOC1 (\d+)"):
        m = re.search(pattern, text, re.M)
        if m:
            return e5[int(m.group(1))]
    m = re.search(r"^Flat/Notch: (\w+)", text, re.M)
    if m:
        return m.group(1)[0].upper()
    return {"6": "D", "12": "U", "3": "R", "9": "L"}[re.search(r"^Orient: (\d+)", text, re.M).group(1)]


def _lanes(pixels: np.ndarray, ppd: int) -> dict[str, np.ndarray]:
    return {"U": pixels[:ppd, :], "D": pixels[-ppd:, :], "L": pixels[:, :ppd], "R": pixels[:, -ppd:]}


@requires_shared
@pytest.mark.parametrize("rel", sorted(EXPECTED))
def test_rendered_notch_marker_is_on_the_stated_side(rel):
    data = (MAPS_DIR / rel).read_bytes()
    side = _stated_flat(rel, data)
    opposite = {"U": "D", "D": "U", "L": "R", "R": "L"}[side]
    ppd = 4
    for wafer in read_wafer_maps(data, rel):
        assert wafer.flat == side
        pixels = np.asarray(Image.open(io.BytesIO(render_wafer_png(wafer, pixels_per_die=ppd))))
        grid = grid_for(wafer, ppd)
        assert pixels.shape == ((grid["y_max"] - grid["y_min"] + 1) * ppd, (grid["x_max"] - grid["x_min"] + 1) * ppd)
        lanes = _lanes(pixels, ppd)
        # The flat-side lane is the margin: notch marker and transparency, never a die.
        assert (lanes[side] == NOTCH_INDEX).any()
        assert set(np.unique(lanes[side]).tolist()) <= {0, NOTCH_INDEX}
        # The opposite lane holds only dies or transparency.
        assert not (lanes[opposite] == NOTCH_INDEX).any()


def test_failmap_text_is_detected_and_read_by_its_own_parser():
    text = (
        "# written by the tester\n\nFAILMAP 1\nLOT N4A123.1\nWAFER 07\nSTIME 20260111_143025\nFLAT L\n"
        "BINDEF 1 P PASS\nDIES 3\n-1 0 1\n0 0 1\n1 0 285\nEND\n"
    ).encode()
    assert detect_map_format(text) == "failmap"
    [wafer] = read_wafer_maps(text, "N4A123.1_07P_20260111_143025.txt")
    assert (wafer.format, wafer.die_count, wafer.flat, wafer.lot) == ("failmap", 3, "L", "N4A123.1")


def test_failmap_companion_is_not_a_wafer_map():
    b_file = b"FAILMAP-B 1\nSTIME 20260111_143030\nVALUES 1 V\nDIES 0\nEND\n"
    assert detect_map_format(b_file) is None
    with pytest.raises(Rejected) as info:
        read_wafer_maps(b_file, "b.gz")
    assert info.value.reason == "unknown_format" and "b.gz" in info.value.detail


@pytest.mark.parametrize(
    "data",
    [b"", b"   \n", b"just a README\nwith words\n", b"\x89PNG\r\n\x1a\n" + bytes(300),
     b"<?xml version='1.0'?><html><body/></html>", b"FileVersion two;"],
)
def test_unknown_content_is_rejected(data):
    assert detect_map_format(data) is None
    with pytest.raises(Rejected) as info:
        read_wafer_maps(data, "mystery.bin")
    assert info.value.reason == "unknown_format"
    assert "mystery.bin" in info.value.detail


def test_xml_roots_and_markers():
    assert detect_map_format(b'\xef\xbb\xbf  <?xml version="1.0"?><!-- x --><semi:Map xmlns:semi="u"/>') == "g85"
    assert detect_map_format(b'<?sml version="1.0"?>\n<Maps><Map/></Maps>') == "g85"
    assert detect_map_format(b'<MapData xmlns="urn:semi-org:xsd.E142-1.V1005.SubstrateMap"/>') == "e142"
    assert detect_map_format(b'<Export><SubstrateMap SubstrateId="1"/></Export>') == "e142"
    assert detect_map_format(b'<Export><Device BinType="ASCII" Rows="1"/></Export>') == "g85"


def test_unsafe_xml_is_rejected_through_dispatch():
    bomb = (b'<?xml version="1.0"?><!DOCTYPE Map [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
            b'<Map WaferId="&b;"><Device BinType="ASCII" NullBin="." Rows="1" Columns="1"><Data><Row>1</Row></Data>'
            b"</Device></Map>")
    with pytest.raises(Rejected) as info:
        read_wafer_maps(bomb, "bomb.xml")
    assert info.value.reason == "unsafe_xml"


def test_pass_bins_reach_the_reader():
    doc = b"WaferId: W\nFlat/Notch: Down\nMaxXY: 3 1\n\n123\n"
    [wafer] = read_wafer_maps(doc, pass_bins=frozenset({2, 3}))
    assert wafer.bin_pass == {1: False, 2: True, 3: True}


def test_utf16_text_and_xml_from_windows_tools():
    g85 = ('<?xml version="1.0" encoding="UTF-16"?><Map WaferId="W"><Device BinType="ASCII" NullBin="." '
           'Rows="1" Columns="3" Orientation="90"><Data><Row>1.2</Row></Data></Device></Map>')
    maxxy = "WaferId: W\r\nFlat/Notch: Up\r\nMaxXY: 3 1\r\n\r\n1.2\r\n"
    for text, fmt, flat in ((g85, "g85", "L"), (maxxy, "ascii:maxxy", "U")):
        data = text.encode("utf-16")
        assert data[:2] in (b"\xff\xfe", b"\xfe\xff")
        assert detect_map_format(data) == fmt
        [wafer] = read_wafer_maps(data)
        assert (wafer.die_count, sorted(wafer.bin.tolist()), wafer.flat) == (2, [1, 2], flat)
