"""KLARF 1.1 / 1.2 / 1.8 -> defect-count maps: real samples against their own
counts, hand-made files for each syntax, and rejected files."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from failmap_assets.formats.detect import detect_map_format
from failmap_assets.formats.klarf import read_klarf
from failmap_assets.wafer.rejects import Rejected
from tests.support.testdata import requires_shared, shared_file


def _read(name: str):
    path = shared_file("maps", "klarf", name)
    return path.read_text(encoding="utf-8"), read_klarf(path.read_bytes())


@requires_shared
def test_klarf11_sample_matches_its_test_plan_and_summary():
    text, [wafer] = _read("klarfkit_CPS3TwithoutReview.001")
    plan_n = int(re.search(r"SampleTestPlan (\d+)", text).group(1))
    testno, ndefect, _density, ndie, ndefdie = re.search(r"SummaryList\s+([^;]+);", text).group(1).split()
    defect_lines = re.search(r"DefectList\n(.*?);", text, re.S).group(1).strip().splitlines()
    assert wafer.die_count == plan_n == int(ndie) == 4988
    assert int(wafer.bin.sum()) == int(ndefect) == len(defect_lines) == 16
    assert int((wafer.bin > 0).sum()) == int(ndefdie) == 15
    assert int(wafer.is_pass().sum()) == 4988 - 15
    assert wafer.flat == "D"                                             # OrientationMarkLocation DOWN
    # Two defects on die (15, -35): canonical y is -YINDEX.
    die = (wafer.orig_x == 15) & (wafer.orig_y == -35)
    assert wafer.bin[die].tolist() == [2] and wafer.y[die].tolist() == [35]
    assert (wafer.lot, wafer.wafer, wafer.step, wafer.stime) == ("HJU008", "25", "IMD2_SRO", "20211019_100409")
    assert wafer.die_size == (2.48996, 2.25992) and wafer.extra["klarf_version"] == "1.1"


@requires_shared
def test_klarf12_sample():
    text, [wafer] = _read("jklarf_klarf12Example.klarf")
    plan = re.search(r"SampleTestPlan (\d+)\s+([^;]+);", text)
    pairs = list(zip(*[iter(map(int, plan.group(2).split()))] * 2))
    ndefect = int(re.search(r"SummaryList\s+\d+\s+(\d+)", text).group(1))
    assert wafer.die_count == int(plan.group(1)) == len(pairs) == 2
    assert int(wafer.bin.sum()) == ndefect == 2
    assert sorted(zip(wafer.orig_x.tolist(), wafer.orig_y.tolist())) == sorted(pairs)
    assert wafer.flat == "D" and wafer.extra["klarf_version"] == "1.2"


@requires_shared
@pytest.mark.parametrize("name", ["jklarf_simple18.klarf", "jklarf_wierdKlarfWithNAs.klarf"])
def test_klarf18_samples_match_their_list_counts(name):
    text, wafers = _read(name)
    # Each WaferRecord's DefectList says "Data n"; the test plans say "Data n" too.
    blocks = re.split(r'Record WaferRecord "', text)[1:]
    assert [w.wafer for w in wafers] == [b.split('"', 1)[0] for b in blocks] == ["FirstWaferId", "SecondWaferId"]
    for wafer, block in zip(wafers, blocks):
        defects = int(re.search(r"List DefectList.*?Data (\d+)", block, re.S).group(1))
        plans = [int(n) for n in re.findall(r"List SampleTestPlanList.*?Data (\d+)", block, re.S)]
        assert int(wafer.bin.sum()) == defects
        assert int(wafer.extra["plan_dies"]) == sum(plans)
        assert wafer.flat == "D"                                     # OrientationMarkLocation 0
        assert wafer.lot == "aLot.String" and wafer.product == "aDevice"
    first = wafers[0]
    # These synthetic defects lie outside the plan: they still become dies, with the plan's clean dies.
    assert first.die_count == 9 + 3 and first.extra["dies_outside_plan"] == "3"
    assert Counter(first.bin.tolist()) == {0: 9, 1: 3}
    assert first.die_size == (5.74415, 5.410203)                     # DiePitch in nm


# ---------------------------------------------------------------------------
# Hand-made files
# ---------------------------------------------------------------------------

K11 = """FileVersion 1 1;
LotID "L1";
DeviceID "DEV";
OrientationMarkLocation {mark};
WaferID "01";
InspectionTest 1;
SampleTestPlan 3
 0 0
 1 0
 0 1;
DefectRecordSpec 6 DEFECTID XINDEX YINDEX TEST IMAGECOUNT IMAGELIST;
DefectList
 1 0 0 1 2 2 1 7 2 8
 2 0 0 1 0 0
 3 1 0 1 1 1 5 6;
SummarySpec 3 TESTNO NDEFECT NDIE;
SummaryList
 1 3 3;
WaferID "02";
SampleTestPlan 1 5 5;
DefectList
 1 NA 3 1 0 0
 2 5 5 1 0 0;
EndOfFile;
"""


@pytest.mark.parametrize(("mark", "side"), [("DOWN", "D"), ("UP", "U"), ("LEFT", "L"), ("RIGHT", "R")])
def test_klarf11_image_lists_multiple_wafers_and_na(mark, side):
    w1, w2 = read_klarf(K11.format(mark=mark).encode())
    assert {(int(x), int(y)): int(b) for x, y, b in zip(w1.orig_x, w1.orig_y, w1.bin)} == {(0, 0): 2, (1, 0): 1, (0, 1): 0}
    assert w1.flat == side and w2.flat == side                     # stated before the first WaferID: applies to both
    assert (w1.wafer, w2.wafer, w1.lot, w2.product) == ("01", "02", "L1", "DEV")
    assert w2.die_count == 1 and w2.bin.tolist() == [1] and w2.extra["defects_without_die"] == "1"
    assert w1.extra["summary"] == "TESTNO=1,NDEFECT=3,NDIE=3"
    assert w1.bin_pass == {0: True, 1: False, 2: False}


def test_data_before_any_wafer_id_belongs_to_an_unnamed_wafer():
    doc = "FileVersion 1 2;\nSampleTestPlan 2 0 0 1 1;\nDefectRecordSpec 3 DEFECTID XINDEX YINDEX;\nDefectList 1 1 1;\nEndOfFile;\n"
    [wafer] = read_klarf(doc.encode())
    assert wafer.wafer is None and sorted(wafer.bin.tolist()) == [0, 1] and wafer.flat == "D"
    assert wafer.extra["flat_source"].startswith("default")


def test_configured_pass_bins_replace_the_defect_free_rule():
    [w1, _] = read_klarf(K11.format(mark="DOWN").encode(), pass_bins={0, 1})
    assert w1.bin_pass == {0: True, 1: True, 2: False}


K18 = """Record FileRecord "1.8"
{{
  Record LotRecord "LOT-A"
  {{
    Field DeviceID 1 {{"DEV-A"}}
    Field OrientationMarkLocation 1 {{{mark}}}
    Field StepID 1 {{"M1"}}
    Field ResultTimestamp 2 {{"01-02-2025", "03:04:05"}}
    Record WaferRecord "W-7"
    {{
      List DefectList
      {{
        Columns 4 {{ int32 DEFECTID, int32 XINDEX, int32 YINDEX, ImageList IMAGEINFO }}
        Data 3
        {{
          1 2 -1 {{ 1 {{"img.jpg", 1}} }};
          2 2 -1 {{ }};
          3 NA 4 {{ }};
        }}
      }}
      Record TestRecord "1"
      {{
        List SampleTestPlanList
        {{
          Columns 2 {{ int32 XINDEX, int32 YINDEX }}
          Data {plan_n}
          {{
            2 -1 ;
            3 -1 ;
          }}
        }}
      }}
    }}
  }}
}}
EndOfFile;
"""


@pytest.mark.parametrize(("mark", "side"), [("0", "D"), ("90", "L"), ("180", "U"), ("270", "R")])
def test_klarf18_nested_records_and_image_lists(mark, side):
    [wafer] = read_klarf(K18.format(mark=mark, plan_n=2).encode())
    assert {(int(x), int(y)): int(b) for x, y, b in zip(wafer.x, wafer.y, wafer.bin)} == {(2, 1): 2, (3, 1): 0}
    assert wafer.flat == side and wafer.extra["defects_without_die"] == "1"
    assert (wafer.lot, wafer.wafer, wafer.product, wafer.step, wafer.stime) == ("LOT-A", "W-7", "DEV-A", "M1", "20250102_030405")
    assert detect_map_format(K18.format(mark=mark, plan_n=2).encode()) == "klarf"


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        (K11.format(mark="DOWN").replace("SampleTestPlan 3", "SampleTestPlan 4"), "bad_list"),
        (K11.format(mark="DOWN").replace(" 3 1 0 1 1 1 5 6;", " 3 1 0 1 1 1 5;"), "bad_list"),
        (K11.format(mark="DOWN").replace("DefectRecordSpec 6", "DefectRecordSpec 7"), "bad_list"),
        (K11.format(mark="DOWN").replace("1 0 0 1 2 2 1 7 2 8", "1 x 0 1 2 2 1 7 2 8"), "bad_value"),
        (K11.format(mark="DOWN").replace("DOWN", "SIDEWAYS"), "bad_orientation"),
        (K11.format(mark="DOWN").split(" 2 5 5 1")[0], "truncated"),
        (K11.format(mark="DOWN").replace(" 1 3 3;", " 1 3 3"), "bad_list"),         # ';' missing: statements merge
        (K18.format(mark="0", plan_n=3), "bad_list"),
        (K18.format(mark="0", plan_n=2).replace("3 -1 ;", "3 -1 4 ;"), "bad_list"),
        (K18.format(mark="0", plan_n=2).rsplit("}", 2)[0], "truncated"),
        (K18.format(mark="0", plan_n=2).replace("Field StepID", "Bogus StepID"), "bad_syntax"),
        ("Hello KLARF", "unknown_format"),
        ("FileVersion 1 2;\nLotID \"L\";\nEndOfFile;\n", "no_wafer"),
        ("FileVersion 1 2;\nWaferID \"1\";\nDefectList 1 2 3;\nEndOfFile;\n", "bad_syntax"),
        (K11.format(mark="DOWN").replace("1 0 0 1 2 2 1 7 2 8", "1 0 0 1 2 two 1 7 2 8"), "bad_list"),
        (K18.format(mark="0", plan_n=2).replace("int32 XINDEX, int32 YINDEX }", "int32 XI, int32 YI }"), "bad_list"),
    ],
)
def test_broken_files_are_rejected_with_a_reason(doc, reason):
    with pytest.raises(Rejected) as info:
        read_klarf(doc.encode())
    assert info.value.reason == reason


# ---------------------------------------------------------------------------
# Image lists inside defect records, mirrored coordinates, mark type
# (layouts as KLA tools write them; see the sources cited in klarf.py)
# ---------------------------------------------------------------------------

K12_IMAGES = """FileVersion 1 2;
LotID "L2";
SampleOrientationMarkType {mark_type};
OrientationMarkLocation {mark};
CoordinatesMirrored {mirrored};
WaferID "W1";
SampleTestPlan 2 0 0 3 1;
DefectRecordSpec 5 DEFECTID XINDEX YINDEX IMAGECOUNT IMAGELIST ;
DefectList;
TiffFileName first.tif;
DefectList
 1 0 0 1 1 1 0
 2 3 1 0 0;
TiffFileName multi.tif;
DefectList
 3 3 1 3 3 4 0 5 1 6 0;
EndOfFile;
"""


def test_klarf12_image_lists_are_kept_per_defect():
    [wafer] = read_klarf(K12_IMAGES.format(mark_type="NOTCH", mark="DOWN", mirrored="NO").encode())
    assert {(int(x), int(y)): int(b) for x, y, b in zip(wafer.orig_x, wafer.orig_y, wafer.bin)} == {(0, 0): 1, (3, 1): 2}
    images = json.loads(wafer.extra["defect_images"])
    assert images == [
        {"defect": "1", "xindex": "0", "yindex": "0", "images": [{"file": "first.tif", "image": "1", "type": "0"}]},
        {"defect": "3", "xindex": "3", "yindex": "1", "images": [
            {"file": "multi.tif", "image": "4", "type": "0"}, {"file": "multi.tif", "image": "5", "type": "1"},
            {"file": "multi.tif", "image": "6", "type": "0"}]},
    ]
    assert wafer.extra["mark_type"] == "notch" and "coordinates_mirrored" not in wafer.extra


@pytest.mark.parametrize(("mark", "side"), [("LEFT", "R"), ("RIGHT", "L"), ("DOWN", "D")])
def test_klarf_mirrored_coordinates_are_drawn_from_the_front(mark, side):
    [wafer] = read_klarf(K12_IMAGES.format(mark_type="FLAT", mark=mark, mirrored="YES").encode())
    assert {(int(x), int(y)) for x, y in zip(wafer.x, wafer.y)} == {(0, 0), (-3, -1)}
    assert sorted(wafer.orig_x.tolist()) == [0, 3]                        # as written
    assert wafer.flat == side and wafer.extra["mark_type"] == "flat"


@pytest.mark.parametrize(
    ("change", "construct"),
    [({"mirrored": "MAYBE"}, "CoordinatesMirrored"), ({"mark_type": "DIMPLE"}, "SampleOrientationMarkType")],
)
def test_klarf_unknown_orientation_words_are_rejected_by_name(change, construct):
    fields = {"mark_type": "NOTCH", "mark": "DOWN", "mirrored": "NO", **change}
    with pytest.raises(Rejected) as info:
        read_klarf(K12_IMAGES.format(**fields).encode())
    assert info.value.reason == "bad_orientation" and construct in info.value.detail


K18_KLA_IMAGES = """Record FileRecord "1.8"
{
  Record LotRecord "LOT-B"
  {
    Field OrientationMarkLocation 1 {0}
    Field CoordinatesMirrored 1 {"NO"}
    Record WaferRecord "W-9"
    {
      List DefectList
      {
        Columns 4 { int32 DEFECTID, int32 XINDEX, int32 YINDEX, ImageList IMAGEINFO }
        Data 3
        {
          7 -2 -9 Images 2 { "a/p1.jpg" "JPG" 1 "Patch", "a/p2.jpg" "JPG" 1 "Topo" };
          8 -2 -9 N;
          9 4 1 0;
        }
      }
    }
  }
}
EndOfFile;
"""


def test_klarf18_kla_image_lists_no_longer_overflow_the_columns():
    [wafer] = read_klarf(K18_KLA_IMAGES.encode())
    assert {(int(x), int(y)): int(b) for x, y, b in zip(wafer.orig_x, wafer.orig_y, wafer.bin)} == {(-2, -9): 2, (4, 1): 1}
    assert json.loads(wafer.extra["defect_images"]) == [
        {"defect": "7", "xindex": "-2", "yindex": "-9",
         "images": [["a/p1.jpg", "JPG", "1", "Patch"], ["a/p2.jpg", "JPG", "1", "Topo"]]}
    ]
    with pytest.raises(Rejected) as info:
        read_klarf(K18_KLA_IMAGES.replace("Images 2", "Images 3").encode())
    assert info.value.reason == "bad_list" and "Images says 3 entries but holds 2" in info.value.detail
    assert info.value.line == 14                                          # the defect row


# ---------------------------------------------------------------------------
# Orientation records of the real files, as written and varied one at a time
# ---------------------------------------------------------------------------


@requires_shared
@pytest.mark.parametrize("name", ["jklarf_klarf12Example.klarf", "klarfkit_CPS3TwithoutReview.001",
                                  "jklarf_simple18.klarf", "jklarf_wierdKlarfWithNAs.klarf"])
def test_real_orientation_records_are_applied(name):
    # Every real file says NOTCH, at DOWN (1.1 / 1.2) or 0 degrees (1.8), mirrored: no.
    _, wafers = _read(name)
    for wafer in wafers:
        assert wafer.flat == "D" and wafer.extra["mark_type"] == "notch"
        assert "flat_source" not in wafer.extra and "coordinates_mirrored" not in wafer.extra
        assert wafer.x.tolist() == wafer.orig_x.tolist() and wafer.y.tolist() == (-wafer.orig_y).tolist()


@requires_shared
@pytest.mark.parametrize(
    ("old", "new", "flat", "mark", "mirrored"),
    [
        (b"OrientationMarkLocation DOWN;", b"OrientationMarkLocation LEFT;", "L", "notch", False),
        (b"SampleOrientationMarkType NOTCH;", b"SampleOrientationMarkType FLAT;", "D", "flat", False),
        (b"OrientationMarkLocation DOWN;", b"OrientationMarkLocation LEFT;\nCoordinatesMirrored YES;", "R", "notch", True),
        (b"OrientationMarkLocation DOWN;", b"OrientationMarkLocation UP;\nCoordinatesMirrored YES;", "U", "notch", True),
    ],
)
def test_orientation_records_varied_on_the_real_klarf11_file(old, new, flat, mark, mirrored):
    data = shared_file("maps", "klarf", "klarfkit_CPS3TwithoutReview.001").read_bytes()
    [base] = read_klarf(data)
    [wafer] = read_klarf(data.replace(old, new, 1))
    assert wafer.flat == flat and wafer.extra["mark_type"] == mark
    # The mark kind and its side move no die; mirroring reverses x and keeps y and the file's indices.
    assert wafer.x.tolist() == ((-base.x) if mirrored else base.x).tolist()
    assert wafer.y.tolist() == base.y.tolist() and wafer.orig_x.tolist() == base.orig_x.tolist()
    assert wafer.bin.tolist() == base.bin.tolist()


@requires_shared
@pytest.mark.parametrize(("degrees", "side"), [("0", "D"), ("90", "L"), ("180", "U"), ("270", "R"), ("360", "D")])
def test_klarf18_angle_varied_on_the_real_file(degrees, side):
    data = shared_file("maps", "klarf", "jklarf_simple18.klarf").read_bytes()
    changed = data.replace(b"Field OrientationMarkLocation 1 {0}", b"Field OrientationMarkLocation 1 {" + degrees.encode() + b"}")
    assert all(w.flat == side for w in read_klarf(changed))
