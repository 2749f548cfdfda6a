"""SEMI E142 reader. There is no public E142 sample with clear rights, so the files
here are built from the E142-1 schema's structure (MapData > Layouts / Substrates /
SubstrateMaps > SubstrateMap > Overlay > BinCodeMap > BinDefinitions + BinCode rows)."""

from __future__ import annotations

from collections import Counter

import pytest

from failmap_assets.formats.detect import detect_map_format, read_wafer_maps
from failmap_assets.formats.e142 import read_e142
from failmap_assets.wafer.rejects import Rejected

NS = "urn:semi-org:xsd.E142-1.V1005.SubstrateMap"


def e142(
    rows,
    *,
    origin="UpperLeft",
    axes="DownRight",
    orientation="0",
    bin_type="ASCII",
    null=".",
    defs=(("1", "Pass", "GOOD"), ("2", "Fail", "OPEN")),
    dims=None,
    refs=(),
    overlays=1,
    side=None,
    units="mm",
):
    width = dims[0] if dims else len(rows[0]) // {"ASCII": 1, "HexaDecimal": 2, "Integer2": 4}.get(bin_type, 1)
    height = dims[1] if dims else len(rows)
    counts = Counter("".join(rows)) if bin_type == "ASCII" else Counter()
    bin_defs = "".join(
        f'<BinDefinition BinCode="{c}" BinCount="{counts.get(c, 0)}" BinQuality="{q}" BinDescription="{d}" Pick="{q == "Pass"}"/>'
        for c, q, d in defs
    )
    ref_xml = "".join(f'<ReferenceDevice Name="R{i}"><Coordinates X="{x}" Y="{y}"/></ReferenceDevice>' for i, (x, y) in enumerate(refs))
    ref_block = f"<ReferenceDevices>{ref_xml}</ReferenceDevices>" if refs else ""
    attr = lambda name, value: "" if value is None else f' {name}="{value}"'  # noqa: E731
    overlay = (
        f'<Overlay MapName="SortGrade" MapVersion="1">{ref_block}'
        f'<BinCodeMap BinType="{bin_type}" NullBin="{null}"><BinDefinitions>{bin_defs}</BinDefinitions>'
        + "".join(f"<BinCode>{r}</BinCode>" for r in rows)
        + "</BinCodeMap></Overlay>"
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<MapData xmlns="{NS}">
  <Layouts>
    <Layout LayoutId="WaferLayout" DefaultUnits="{units}" TopLevel="true">
      <Dimension X="1" Y="1"/>
      <ChildLayouts><ChildLayout LayoutId="Devices"/></ChildLayouts>
    </Layout>
    <Layout LayoutId="Devices" DefaultUnits="{units}">
      <Dimension X="{width}" Y="{height}"/>
      <DeviceSize X="2.5" Y="1.5"/>
      <ProductId>PROD-7</ProductId>
    </Layout>
  </Layouts>
  <Substrates>
    <Substrate SubstrateType="Wafer" SubstrateId="LOT9-07"><LotId>LOT9</LotId><GoodDevices>3</GoodDevices></Substrate>
  </Substrates>
  <SubstrateMaps>
    <SubstrateMap SubstrateType="Wafer" SubstrateId="LOT9-07" LayoutSpecifier="WaferLayout/Devices"
        {attr("Orientation", orientation)}{attr("OriginLocation", origin)}{attr("AxisDirection", axes)}{attr("SubstrateSide", side)}>
      {overlay * overlays}
    </SubstrateMap>
  </SubstrateMaps>
</MapData>""".encode()


def placed(wafer) -> dict[tuple[int, int], int]:
    return {(int(x), int(y)): int(b) for x, y, b in zip(wafer.x, wafer.y, wafer.bin)}


# The file rows are y = 0, 1 (from the origin along AxisDirection); codes are x = 0, 1, 2.
ROWS = ["12.", "1.2"]


@pytest.mark.parametrize(
    ("origin", "axes", "expected"),
    [
        # y grows downward, x to the right: drawn exactly as written.
        ("UpperLeft", "DownRight", {(0, 0): 1, (1, 0): 2, (0, 1): 1, (2, 1): 2}),
        # y grows upward: the first BinCode row is the bottom row.
        ("LowerLeft", "UpRight", {(0, 1): 1, (1, 1): 2, (0, 0): 1, (2, 0): 2}),
        # x grows to the left: the first code of a row is the rightmost die.
        ("UpperRight", "DownLeft", {(2, 0): 1, (1, 0): 2, (2, 1): 1, (0, 1): 2}),
        ("LowerRight", "UpLeft", {(2, 1): 1, (1, 1): 2, (2, 0): 1, (0, 0): 2}),
    ],
)
def test_axis_direction_places_rows_and_columns(origin, axes, expected):
    [wafer] = read_e142(e142(ROWS, origin=origin, axes=axes))
    assert placed(wafer) == expected
    assert wafer.extra["AxisDirection"] == axes and wafer.extra["OriginLocation"] == origin
    # The file's own coordinates are the row / code indices.
    assert sorted(zip(wafer.orig_x.tolist(), wafer.orig_y.tolist())) == [(0, 0), (0, 1), (1, 0), (2, 1)]


@pytest.mark.parametrize("origin", ["LowerLeft", "UpperLeft", "UpperRight", "LowerRight", "Center", None])
def test_missing_axis_direction_is_the_schema_default_up_right(origin):
    # E142-1 schema defaults (Critical Manufacturing's published schema; artwork.com's E142
    # notes): AxisDirection UpRight whatever the origin, OriginLocation LowerLeft.
    [wafer] = read_e142(e142(ROWS, origin=origin, axes=None))
    assert wafer.extra["axis_direction"] == "UpRight"
    assert wafer.extra["origin_location"] == (origin or "LowerLeft")
    assert placed(wafer) == {(0, 1): 1, (1, 1): 2, (0, 0): 1, (2, 0): 2}     # first BinCode row at the bottom


# Every row order the schema allows: 4 AxisDirection x 5 OriginLocation. The drawing follows
# AxisDirection alone (rows run up or down, codes left or right); OriginLocation moves only
# the file's own numbering (from the centre for Center).
_DRAWN = {
    "DownRight": {(0, 0): 1, (1, 0): 2, (0, 1): 1, (2, 1): 2},
    "UpRight": {(0, 1): 1, (1, 1): 2, (0, 0): 1, (2, 0): 2},
    "DownLeft": {(2, 0): 1, (1, 0): 2, (2, 1): 1, (0, 1): 2},
    "UpLeft": {(2, 1): 1, (1, 1): 2, (2, 0): 1, (0, 0): 2},
}


@pytest.mark.parametrize("axes", sorted(_DRAWN))
@pytest.mark.parametrize("origin", ["LowerLeft", "LowerRight", "UpperLeft", "UpperRight", "Center"])
def test_every_origin_and_axis_direction_combination(origin, axes):
    rows = ROWS + ["..."]                                   # 3 x 3, so Center is the middle position
    [wafer] = read_e142(e142(rows, origin=origin, axes=axes))
    assert placed(wafer) == {(x, y + (1 if axes.startswith("Up") else 0)): b for (x, y), b in _DRAWN[axes].items()}
    file_xy = sorted(zip(wafer.orig_x.tolist(), wafer.orig_y.tolist()))
    shift = 1 if origin == "Center" else 0
    assert file_xy == sorted((x - shift, y - shift) for x, y in [(0, 0), (0, 1), (1, 0), (2, 1)])


def test_center_origin_counts_from_the_middle():
    [wafer] = read_e142(e142(["...", ".1.", "..2"], origin="Center", axes="UpRight"))
    one = list(wafer.bin).index(1)
    assert (wafer.orig_x[one], wafer.orig_y[one]) == (0, 0)
    assert placed(wafer) == {(1, 1): 1, (2, 0): 2}


@pytest.mark.parametrize(
    ("orientation", "side"),
    [("0", "D"), ("90", "L"), ("180", "U"), ("270", "R"), ("Downward", "D"), ("Up", "U"), (None, "D")],
)
def test_orientation_gives_the_flat_side(orientation, side):
    [wafer] = read_e142(e142(ROWS, orientation=orientation))
    assert wafer.flat == side


def test_bin_definitions_counts_and_metadata():
    [wafer] = read_e142(e142(["112", "1.2"], refs=[(2, 1)], side="TopSide"))
    assert Counter(wafer.bin.tolist()) == {1: 3, 2: 2}
    assert wafer.bin_pass == {1: True, 2: False} and wafer.bin_names == {1: "GOOD", 2: "OPEN"}
    assert "bin_count_mismatch" not in wafer.extra
    assert (wafer.wafer, wafer.lot, wafer.product) == ("LOT9-07", "LOT9", "PROD-7")
    assert wafer.die_size == (2.5, 1.5)
    assert wafer.origin == (2, 1)
    assert wafer.extra["Substrate.gooddevices"] == "3" and wafer.extra["Overlay.MapName"] == "SortGrade"


def test_without_layout_specifier_the_innermost_layout_sizes_the_map():
    doc = e142(ROWS).replace(b' LayoutSpecifier="WaferLayout/Devices"', b"")
    assert read_e142(doc)[0].die_size == (2.5, 1.5)
    with pytest.raises(Rejected) as info:
        read_e142(e142(ROWS, dims=(3, 2)).replace(b'Dimension X="3" Y="2"', b'Dimension X="3" Y="two"'))
    assert info.value.reason == "bad_header"


def test_device_size_units():
    [wafer] = read_e142(e142(ROWS, units="um"))
    assert wafer.die_size == (0.0025, 0.0015)


def test_hexadecimal_bin_codes_and_null_quality():
    defs = (("01", "Pass", "GOOD"), ("1F", "Fail", "LEAK"), ("FE", "Null", "EDGE"))
    [wafer] = read_e142(e142(["011FFE", "FFFF01"], bin_type="HexaDecimal", null="FF", defs=defs))
    assert placed(wafer) == {(0, 0): 1, (1, 0): 0x1F, (2, 1): 1}
    assert wafer.bin_pass == {1: True, 0x1F: False}


def test_count_mismatch_is_recorded():
    doc = e142(ROWS).replace(b'BinCode="1" BinCount="2"', b'BinCode="1" BinCount="9"')
    assert read_e142(doc)[0].extra["bin_count_mismatch"] == "1: file 9, map 2"


def test_every_bin_code_map_overlay_is_a_wafer_map():
    assert len(read_e142(e142(ROWS, overlays=2))) == 2


def test_configured_pass_bins():
    [wafer] = read_e142(e142(["13", "31"], defs=(("1", "Pass", "GOOD"),)), pass_bins={3})
    assert wafer.bin_pass == {1: True, 3: True}


def test_detected_and_read_through_detect():
    assert detect_map_format(e142(ROWS)) == "e142"
    assert read_wafer_maps(e142(ROWS))[0].format == "e142"


TRANSFER_ONLY = f"""<MapData xmlns="{NS}"><SubstrateMaps><SubstrateMap SubstrateType="Strip" SubstrateId="S1">
<Overlay MapName="T"><TransferMap FromSubstrateType="Wafer" FromSubstrateId="W1"><T X="0" Y="0" FX="3" FY="4"/>
</TransferMap></Overlay></SubstrateMap></SubstrateMaps></MapData>""".encode()
XXE = f"""<?xml version="1.0"?><!DOCTYPE MapData [<!ENTITY x SYSTEM "file:///etc/hostname">]>
<MapData xmlns="{NS}"><SubstrateMaps><SubstrateMap SubstrateId="&x;"/></SubstrateMaps></MapData>""".encode()


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        (TRANSFER_ONLY, "no_bincode_map"),
        (XXE, "unsafe_xml"),
        (e142(ROWS, dims=(3, 5)), "row_count"),
        (e142(ROWS, dims=(4, 2)), "bad_row"),
        (e142(ROWS, axes="Sideways"), "bad_orientation"),
        (e142(ROWS, origin="Middle"), "bad_orientation"),
        (e142(ROWS, bin_type="Base64"), "bad_bin_type"),
        (e142(ROWS)[:-40], "bad_xml"),
    ],
)
def test_broken_files_are_rejected_with_a_reason(doc, reason):
    with pytest.raises(Rejected) as info:
        read_e142(doc)
    assert info.value.reason == reason


@pytest.mark.parametrize(("orientation", "side"), [("0", "D"), ("90", "R"), ("270", "L")])
def test_bottom_side_maps_are_drawn_as_seen_from_the_top(orientation, side):
    top = read_e142(e142(ROWS, side="TopSide", orientation=orientation, refs=[(1, 0)]))[0]
    bottom = read_e142(e142(ROWS, side="BottomSide", orientation=orientation, refs=[(1, 0)]))[0]
    assert placed(top) == {(0, 0): 1, (1, 0): 2, (0, 1): 1, (2, 1): 2}
    assert placed(bottom) == {(2, 0): 1, (1, 0): 2, (2, 1): 1, (0, 1): 2}       # columns mirrored, rows kept
    assert top.origin == (1, 0) and bottom.origin == (1, 0)
    assert bottom.flat == side and "substrate_side" in bottom.extra
    assert sorted(zip(bottom.orig_x.tolist(), bottom.orig_y.tolist())) == sorted(zip(top.orig_x.tolist(), top.orig_y.tolist()))


def test_unknown_substrate_side_is_rejected_by_name():
    with pytest.raises(Rejected) as info:
        read_e142(e142(ROWS, side="EdgeSide"))
    assert info.value.reason == "bad_orientation" and "SubstrateSide" in info.value.detail


# ---------------------------------------------------------------------------
# Rejects name the construct and the line of the element that holds it
# ---------------------------------------------------------------------------


def _line_of(doc: bytes, needle: bytes) -> int:
    return doc[: doc.index(needle)].count(b"\n") + 1


@pytest.mark.parametrize(
    ("change", "reason", "construct", "element"),
    [
        ({"axes": "Sideways"}, "bad_orientation", "AxisDirection", b"<SubstrateMap "),
        ({"origin": "Middle"}, "bad_orientation", "OriginLocation", b"<SubstrateMap "),
        ({"side": "EdgeSide"}, "bad_orientation", "SubstrateSide", b"<SubstrateMap "),
        ({"orientation": "sideways"}, "bad_orientation", "Orientation", b"<SubstrateMap "),
        ({"bin_type": "Base64"}, "bad_bin_type", "BinType", b"<BinCodeMap "),
        ({"dims": (3, 5)}, "row_count", "BinCode rows", b"<BinCodeMap "),
    ],
)
def test_unknown_variants_are_rejected_with_line_and_construct(change, reason, construct, element):
    doc = e142(ROWS, side=change.pop("side", "TopSide"), **change)
    with pytest.raises(Rejected) as info:
        read_e142(doc)
    exc = info.value
    assert exc.reason == reason and construct in exc.detail, exc.detail
    assert exc.line == _line_of(doc, element) and exc.line > 1
    assert f"line {exc.line}" in str(exc)


def test_a_bad_bin_code_row_is_rejected_on_its_own_line():
    doc = e142(["011FFE", "FF0G01"], bin_type="HexaDecimal", null="FF", defs=(("01", "Pass", "GOOD"),))
    with pytest.raises(Rejected) as info:
        read_e142(doc)
    assert info.value.reason == "bad_bin_code" and "map row 2" in info.value.detail
    assert info.value.line == _line_of(doc, b"<BinCode>FF0G01")


def test_lines_count_from_the_file_as_received_when_a_repair_cuts_the_prolog():
    # Blank lines before the XML declaration make expat refuse the file; the repaired copy
    # starts later, but the line given is still the line in the file received.
    doc = b"\n\n\n" + e142(ROWS, axes="Sideways")
    with pytest.raises(Rejected) as info:
        read_e142(doc)
    assert info.value.line == _line_of(doc, b"<SubstrateMap ")
