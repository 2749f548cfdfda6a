"""SEMI G85 reader: the real sample files against their own BinCount statements,
hand-made files for every BinType / origin / orientation, and rejected files."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest

from failmap_assets.formats.g85 import read_g85
from failmap_assets.wafer.rejects import Rejected
from tests.support.testdata import MAPS_DIR, requires_shared, shared_file

SAMPLES = ["waferview_SEMI_G85_1101_ALL.xml", "nuvoton_BQ16652-01.xml", "tdk_342001-03.xml"]
E5_SIDE = {0: "D", 90: "L", 180: "U", 270: "R"}


def _stated(text: str) -> tuple[str, dict[str, int], str, int]:
    """BinType, {BinCode: BinCount}, Orientation and Rows read straight from the file text."""
    bin_type = re.search(r'BinType\s*=\s*"([^"]*)"', text)
    counts = {}
    for tag in re.findall(r"<Bin\b[^>]*>", text, flags=re.S):
        code = re.search(r'BinCode\s*=\s*"([^"]*)"', tag).group(1)
        counts[code] = int(re.search(r'BinCount\s*=\s*"(\d+)"', tag).group(1))
    orientation = re.search(r'\bOrientation\s*=\s*"([^"]*)"', text).group(1)
    rows = int(re.search(r'\bRows\s*=\s*"(\d+)"', text).group(1))
    return (bin_type.group(1) if bin_type else "ASCII"), counts, orientation, rows


def _number(code: str, bin_type: str) -> int:
    if bin_type.lower() == "hexadecimal":
        return int(code, 16)
    return int(code) if code.isdigit() else ord(code)


@requires_shared
@pytest.mark.parametrize("name", SAMPLES)
def test_sample_matches_its_own_bin_counts_and_orientation(name):
    path = shared_file("maps", "g85", name)
    text = path.read_text(encoding="utf-8", errors="replace")
    bin_type, stated, orientation, rows = _stated(text)
    [wafer] = read_g85(path.read_bytes())

    expected = {_number(code, bin_type): n for code, n in stated.items()}
    assert dict(Counter(wafer.bin.tolist())) == expected
    assert wafer.die_count == sum(stated.values())
    assert wafer.flat == E5_SIDE[int(orientation)]
    assert wafer.y.max() < rows
    assert "bin_count_mismatch" not in wafer.extra


@requires_shared
def test_samples_hand_checked_numbers():
    by_name = {n: read_g85((MAPS_DIR / "g85" / n).read_bytes())[0] for n in SAMPLES}
    tdk = by_name["tdk_342001-03.xml"]
    assert tdk.die_count == 5563
    assert (tdk.bin == ord("g")).sum() == 64 and tdk.bin_names[ord("g")] == "FAIL_HBIN_42"
    assert tdk.bin_pass == {1: True, 4: False, 5: False, ord("g"): False}
    assert tdk.extra["SubstrateId"] == "342001-03" and tdk.wafer == "342001-03"
    assert tdk.product == "CURA1" and tdk.lot == "342001.503" and tdk.stime == "20250926_094859"
    # ReferenceDevice (28, 8) with OriginLocation 2 (upper left) is column 28, row 8.
    assert tdk.origin == (28, 8) and tdk.extra["reference_devices"] == "28,8;61,34;58,18"
    assert tdk.die_size == (1.65, 3.0)

    nuvoton = by_name["nuvoton_BQ16652-01.xml"]
    assert (nuvoton.die_count, int((nuvoton.bin == 1).sum())) == (2040, 1576)
    assert nuvoton.is_pass().sum() == 1576

    hexa = by_name["waferview_SEMI_G85_1101_ALL.xml"]
    assert hexa.die_count == 2808
    assert Counter(hexa.bin.tolist()) == {0x00: 2765, 0xDE: 38, 0xAD: 5}
    # Pass is bin 0 here: the file's verdict, not the "bin 1 passes" default.
    assert hexa.is_pass().sum() == 2765
    # The first row is drawn on top: its dies are DE DE AD DE DE 00 DE at columns 27..33.
    top = sorted(zip(hexa.x[hexa.y == 0].tolist(), hexa.bin[hexa.y == 0].tolist()))
    assert top == [(27, 0xDE), (28, 0xDE), (29, 0xAD), (30, 0xDE), (31, 0xDE), (32, 0x00), (33, 0xDE)]


# ---------------------------------------------------------------------------
# Hand-made files
# ---------------------------------------------------------------------------


def g85(rows, *, bin_type="ASCII", null="x", bins="", orientation="0", origin="2", extra_device="", cdata=True,
        decl='<?xml version="1.0" encoding="UTF-8"?>', rows_attr=None, cols_attr=None, prefix=""):
    p = prefix
    row_xml = "".join(
        f"<{p}Row><![CDATA[{r}]]></{p}Row>" if cdata else f"<{p}Row>{r}</{p}Row>" for r in rows
    )
    n_rows = len(rows) if rows_attr is None else rows_attr
    attrs = f'BinType="{bin_type}" ' if bin_type is not None else ""
    cols = f'Columns="{cols_attr}" ' if cols_attr is not None else ""
    return (
        f'{decl}\n<{p}Map xmlns="http://www.semi.org" WaferId="W1" FormatRevision="SEMI G85-1101">'
        f'<{p}Device {attrs}NullBin="{null}" Rows="{n_rows}" {cols}Orientation="{orientation}" '
        f'OriginLocation="{origin}" LotId="L1" ProductId="P1" CreateDate="20240102030405" {extra_device}>'
        f"{bins}<{p}Data>{row_xml}</{p}Data></{p}Device></{p}Map>"
    ).encode()


def _dies(wafer) -> dict[tuple[int, int], int]:
    return {(int(x), int(y)): int(b) for x, y, b in zip(wafer.x, wafer.y, wafer.bin)}


EXPECTED = {(0, 0): 1, (1, 0): 2, (1, 1): 1, (2, 1): 17}


@pytest.mark.parametrize(
    ("bin_type", "null", "rows"),
    [
        ("ASCII", "x", ["12x", "x1\x41"]),                            # 'A' = code point 65
        ("HexaDecimal", "FF", ["0102FF", "FF0111"]),
        ("Integer2", "FFFF", ["00010002FFFF", "FFFF00010011"]),
        ("Decimal", "255", ["001002255", "255001017"]),               # fixed width 3
        ("Decimal", "255", ["1 2 255", "255  1\t17"]),               # blank separated
        ("HexaDecimal", "ff", ["01 02 FF", "ff,01,11"]),              # separated, NullBin case-insensitive
    ],
)
def test_every_bin_type_decodes_to_the_same_map(bin_type, null, rows):
    [wafer] = read_g85(g85(rows, bin_type=bin_type, null=null, cols_attr=3))
    dies = _dies(wafer)
    if bin_type == "ASCII":
        assert dies == {(0, 0): 1, (1, 0): 2, (1, 1): 1, (2, 1): 65}
    else:
        assert dies == EXPECTED
    assert wafer.format == "g85" and wafer.rows_read == 4


def test_missing_bin_type_is_inferred_from_the_row_width():
    [wafer] = read_g85(g85(["0102FF", "FF0111"], bin_type=None, null="FF", cols_attr=3))
    assert _dies(wafer) == EXPECTED and wafer.extra["bin_type"] == "hex"


def test_plain_rows_and_cdata_rows_read_alike():
    a = read_g85(g85(["12x", "x11"], cdata=True))[0]
    b = read_g85(g85(["12x", "x11"], cdata=False))[0]
    assert _dies(a) == _dies(b) == {(0, 0): 1, (1, 0): 2, (1, 1): 1, (2, 1): 1}


def test_bin_quality_count_description_and_null_quality():
    bins = (
        '<Bin BinCode="1" BinQuality="Pass" BinDescription="GOOD" BinCount="2"/>'
        '<Bin BinCode="2" BinQuality="Fail" BinDescription="OPEN" BinCount="5"/>'
        '<Bin BinCode="N" BinQuality="Null" BinCount="3"/>'
    )
    [wafer] = read_g85(g85(["12N", "N1N"], bins=bins, null="x"))
    assert _dies(wafer) == {(0, 0): 1, (1, 0): 2, (1, 1): 1}
    assert wafer.bin_pass == {1: True, 2: False}
    assert wafer.bin_names == {1: "GOOD", 2: "OPEN"}
    # Bin 2 says 5 dies, the map holds 1: kept, and the discrepancy is recorded.
    assert wafer.extra["bin_count_mismatch"] == "2: file 5, map 1"


def test_configured_pass_bins_fill_in_where_the_file_is_silent():
    bins = '<Bin BinCode="2" BinQuality="Fail"/>'
    [wafer] = read_g85(g85(["123", "xx7"], bins=bins), pass_bins={2, 3})
    # File verdict for 2 wins over the configuration; 1 and 7 are not configured passes.
    assert wafer.bin_pass == {1: False, 2: False, 3: True, 7: False}
    [default] = read_g85(g85(["123", "xx7"], bins=bins))
    assert default.bin_pass == {2: False}
    assert default.is_pass().tolist() == [True, False, False, False]   # bin 1 passes by default


@pytest.mark.parametrize(("degrees", "side"), [("0", "D"), ("90", "L"), ("180", "U"), ("270", "R"), ("-90", "R")])
def test_orientation_gives_the_flat_side(degrees, side):
    assert read_g85(g85(["11"], orientation=degrees))[0].flat == side


@pytest.mark.parametrize(
    ("origin", "orig_of_top_left", "orig_of_bottom_right"),
    [("2", (0, 0), (2, 1)), ("1", (2, 0), (0, 1)), ("3", (0, 1), (2, 0)), ("4", (2, 1), (0, 0)), ("0", (-1, 1), (1, 0))],
)
def test_origin_location_numbers_positions_without_reordering_rows(origin, orig_of_top_left, orig_of_bottom_right):
    [wafer] = read_g85(g85(["1xx", "xx2"], origin=origin))
    assert _dies(wafer) == {(0, 0): 1, (2, 1): 2}        # drawn as written, whatever the origin
    first, last = np.argsort(wafer.bin)
    assert (wafer.orig_x[first], wafer.orig_y[first]) == orig_of_top_left
    assert (wafer.orig_x[last], wafer.orig_y[last]) == orig_of_bottom_right


def test_reference_device_is_converted_to_the_canonical_frame():
    ref = '<ReferenceDevice ReferenceDeviceX="0" ReferenceDeviceY="0"/>'
    [wafer] = read_g85(g85(["1x1", "111"], origin="3", bins=ref))    # lower-left origin
    assert wafer.origin == (0, 1)


def test_broken_sml_declaration_and_blank_prefix_are_tolerated():
    for decl in ('<?sml version="1.0"?>', '   <?xml version="1.0"?>', '<?xml version=1.0?>'):
        assert read_g85(g85(["12"], decl=decl))[0].die_count == 2


def test_broken_declaration_keeps_its_encoding():
    doc = g85(["1\xe92"], decl='<?sml version="1.0" encoding="ISO-8859-1"?>').decode().encode("latin-1")
    [wafer] = read_g85(doc)
    assert sorted(wafer.bin.tolist()) == [1, 2, 0xE9]


def test_namespace_prefixes_declared_or_not():
    declared = g85(["12"], prefix="semi:").replace(b'xmlns="http://www.semi.org"', b'xmlns:semi="http://www.semi.org"')
    undeclared = g85(["12"], prefix="semi:").replace(b' xmlns="http://www.semi.org"', b"")
    assert b"xmlns:semi" not in undeclared and b"<semi:Map" in undeclared
    for doc in (declared, undeclared):
        [wafer] = read_g85(doc)
        assert _dies(wafer) == {(0, 0): 1, (1, 0): 2} and wafer.lot == "L1"


def test_maps_wrapper_holds_several_wafers():
    one = g85(["12"]).decode().split("\n", 1)[1]
    doc = f"<Maps>{one}{one.replace('W1', 'W2')}</Maps>".encode()
    assert [w.wafer for w in read_g85(doc)] == ["W1", "W2"]


def test_metadata():
    [wafer] = read_g85(g85(["12"], extra_device='DeviceSizeX="2500" DeviceSizeY="1250" WaferSize="200"'))
    assert (wafer.lot, wafer.wafer, wafer.product, wafer.stime) == ("L1", "W1", "P1", "20240102_030405")
    assert wafer.die_size == (2.5, 1.25)
    assert wafer.extra["WaferSize"] == "200" and wafer.extra["FormatRevision"] == "SEMI G85-1101"
    assert wafer.extra["Orientation"] == "0" and wafer.extra["OriginLocation"] == "2"


# ---------------------------------------------------------------------------
# Rejected files
# ---------------------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE Map [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<Map WaferId="&lol3;"><Device BinType="ASCII" NullBin="." Rows="1" Columns="1"><Data><Row>1</Row></Data></Device></Map>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE Map [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<Map WaferId="&secret;"><Device BinType="ASCII" NullBin="." Rows="1" Columns="1"><Data><Row>1</Row></Data></Device></Map>"""


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        (BILLION_LAUGHS, "unsafe_xml"),
        (EXTERNAL_ENTITY, "unsafe_xml"),
        (b"<Map><Device>", "bad_xml"),
        (g85(["12", "1"]), "bad_row"),
        (g85(["12", "11"], rows_attr=3), "row_count"),
        (g85(["12"], bin_type="Octal"), "bad_bin_type"),
        (g85(["01ZZ"], bin_type="HexaDecimal", null="FF"), "bad_bin_code"),
        (g85(["0102"], bin_type="Decimal", null="255", cols_attr=3), "bad_row"),
        (b'<?xml version="1.0"?><Maps><Other/></Maps>', "no_map"),
        (g85([]), "no_rows"),
        (g85(["11"], orientation="north-ish"), "bad_orientation"),
    ],
)
def test_broken_files_are_rejected_with_a_reason(doc, reason):
    with pytest.raises(Rejected) as info:
        read_g85(doc)
    assert info.value.reason == reason
    assert info.value.detail
