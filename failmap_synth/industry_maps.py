"""Small, valid files of each industry map format the readers accept (G85, E142, TSK,
KLARF, an ASCII row map), built in memory: ``failmap warm`` runs them through the day
pipeline so every path they take to the kernels is compiled before the first real run.

Each sample is a handful of dies in a round-ish layout with pass and fail bins; the
readers' own tests (tests/formats) hold the exhaustive variants.
"""

from __future__ import annotations

import struct

# A 6 x 5 map drawn as text: "." no die, "1" pass, "2"/"A" fail codes.
_ROWS = ("..11..", ".1121.", "121A11", ".1112.", "..11..")


def g85() -> bytes:
    """SEMI G85-1101 XML, BinType ASCII."""
    rows = "".join(f"<Row><![CDATA[{r}]]></Row>" for r in _ROWS)
    bins = ('<Bin BinCode="1" BinQuality="Pass" BinDescription="GOOD"/>'
            '<Bin BinCode="2" BinQuality="Fail" BinDescription="OPEN"/>'
            '<Bin BinCode="A" BinQuality="Fail" BinDescription="LEAK"/>')
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Map xmlns="http://www.semi.org" WaferId="W1" '
        'FormatRevision="SEMI G85-1101"><Device BinType="ASCII" NullBin="." '
        f'Rows="{len(_ROWS)}" Columns="{len(_ROWS[0])}" Orientation="0" OriginLocation="2" LotId="WARM1" '
        f'ProductId="P1" CreateDate="20260101030405">{bins}<Data>{rows}</Data></Device></Map>'
    ).encode()


def e142() -> bytes:
    """SEMI E142 XML substrate map, one BinCodeMap overlay."""
    ns = "urn:semi-org:xsd.E142-1.V1005.SubstrateMap"
    defs = "".join(f'<BinDefinition BinCode="{c}" BinQuality="{q}" BinDescription="{d}"/>'
                   for c, q, d in (("1", "Pass", "GOOD"), ("2", "Fail", "OPEN"), ("A", "Fail", "LEAK")))
    codes = "".join(f"<BinCode>{r}</BinCode>" for r in _ROWS)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<MapData xmlns="{ns}">
  <Layouts>
    <Layout LayoutId="WaferLayout" DefaultUnits="mm" TopLevel="true">
      <Dimension X="1" Y="1"/><ChildLayouts><ChildLayout LayoutId="Devices"/></ChildLayouts>
    </Layout>
    <Layout LayoutId="Devices" DefaultUnits="mm">
      <Dimension X="{len(_ROWS[0])}" Y="{len(_ROWS)}"/><DeviceSize X="2.5" Y="1.5"/><ProductId>P1</ProductId>
    </Layout>
  </Layouts>
  <Substrates><Substrate SubstrateType="Wafer" SubstrateId="WARM1-07"><LotId>WARM1</LotId></Substrate></Substrates>
  <SubstrateMaps>
    <SubstrateMap SubstrateType="Wafer" SubstrateId="WARM1-07" LayoutSpecifier="WaferLayout/Devices"
        Orientation="0" OriginLocation="UpperLeft" AxisDirection="DownRight">
      <Overlay MapName="SortGrade" MapVersion="1"><BinCodeMap BinType="ASCII" NullBin=".">
        <BinDefinitions>{defs}</BinDefinitions>{codes}</BinCodeMap></Overlay>
    </SubstrateMap>
  </SubstrateMaps>
</MapData>""".encode()


def tsk() -> bytes:
    """TSK / Accretech binary probe map, map version 0 (236-byte header, 6-byte records)."""
    from failmap_assets.formats.tsk import HEADER

    cols, rows = len(_ROWS[0]), len(_ROWS)
    records = []
    tested = passed = 0
    for r, line in enumerate(_ROWS):
        for c, ch in enumerate(line):
            prop, result, category = (0, 0, 0) if ch == "." else (1, 1 if ch == "1" else 2, 0 if ch == "1" else 9)
            tested += prop
            passed += prop and result == 1
            x, y = c - 2, -r
            w1 = (result << 14) | (abs(x) & 0x1FF)
            w2 = (prop << 14) | ((x < 0) << 11) | ((y < 0) << 10) | (abs(y) & 0x1FF)
            records.append(struct.pack(">HHH", w1, w2, category & 0x3F))
    head = HEADER.pack(
        b"OPERATOR".ljust(20), b"DEV-1".ljust(16), 200, 3, 500000, 400000, 180, 0, 0, cols, rows, 0,
        b"WAFER-01".ljust(21, b"\0"), 1, b"WARM1".ljust(18), 1, 7,
        2, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0,
        b"2601011230\0\0", b"2601011300\0\0", b"2601011229\0\0", b"2601011301\0\0",
        b"\0" * 4, b"\0" * 4, b"\0" * 4, 0, tested, passed, tested - passed,
        236, 0, 0, 0b11, 1, 64,
    )
    return head + b"".join(records)


def klarf() -> bytes:
    """KLARF 1.1 defect file: dies of the test plan, defects counted per die."""
    plan = [(c - 2, 2 - r) for r, line in enumerate(_ROWS) for c, ch in enumerate(line) if ch != "."]
    defects = [(x, y) for (x, y), ch in zip(plan, "".join(_ROWS).replace(".", "")) if ch != "1"]
    return (
        'FileVersion 1 1;\nLotID "WARM1";\nDeviceID "DEV";\nOrientationMarkLocation DOWN;\nWaferID "01";\n'
        f"InspectionTest 1;\nSampleTestPlan {len(plan)}\n" + "\n".join(f" {x} {y}" for x, y in plan) + ";\n"
        "DefectRecordSpec 4 DEFECTID XINDEX YINDEX TEST;\nDefectList\n"
        + "\n".join(f" {i + 1} {x} {y} 1" for i, (x, y) in enumerate(defects)) + ";\nEndOfFile;\n"
    ).encode()


def ascii_binlist() -> bytes:
    """Microchip-style BINLIST ASCII row map."""
    return (
        f"WAFERID = WARM1.03\r\nTESTDATE = 2026/01/02 03:04:05\r\nCOLCT = {len(_ROWS[0])}\r\n"
        f"ROWCT = {len(_ROWS)}\r\nFNLOC = 0\r\nBINTYPE = ASCII\r\n"
        "BIN = 1;COUNT = 14;STATUS = PASS;DESCR = GOOD\r\nBIN = 2;COUNT = 3;STATUS = FAIL;DESCR = OPEN\r\n"
        "BIN = A;COUNT = 1;STATUS = FAIL;DESCR = LEAK\r\nBIN = .;COUNT = 12;STATUS = FAIL;DESCR = NO DIE\r\n"
        "BINLIST = {\r\n" + "".join(f"{r}\r\n" for r in _ROWS) + "}"
    ).encode()


#: name -> (file name suffix, builder), in a fixed order
SAMPLES = {
    "g85": (".xml", g85),
    "e142": (".e142.xml", e142),
    "tsk": (".tsk", tsk),
    "klarf": (".klarf", klarf),
    "ascii:binlist": (".map", ascii_binlist),
}
