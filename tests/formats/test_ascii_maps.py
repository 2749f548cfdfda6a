"""ASCII row-map dialects: each real sample against what its header states,
hand-made variants, rejects, and adding a dialect through the registry."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from failmap_assets.formats import ascii_maps
from failmap_assets.formats.ascii_maps import DIALECTS, build_wafer, char_grid, dialect, read_ascii_map
from failmap_assets.formats.detect import detect_map_format, read_wafer_maps
from failmap_assets.wafer.rejects import Rejected
from tests.support.testdata import requires_shared, shared_file

E5_SIDE = {0: "D", 90: "L", 180: "U", 270: "R"}


def _bin(ch: str) -> int:
    return int(ch) if ch.isdigit() else ord(ch)


def _sample(name: str):
    path = shared_file("maps", "ascii", name)
    text = path.read_text(encoding="latin-1")
    [wafer] = read_ascii_map(path.read_bytes())
    return text, wafer


@requires_shared
def test_st_wm_sample():
    text, wafer = _sample("stm_wm13_G345875.021")
    key = lambda k: re.search(rf"^{k}\t([^\t\r\n]*)", text, re.M).group(1)  # noqa: E731
    xdim, ydim = int(re.search(r"WMXDIM=(\d+)", text).group(1)), int(re.search(r"WMYDIM=(\d+)", text).group(1))
    grid = [line for line in text.splitlines() if len(line) == xdim and "\t" not in line and "=" not in line]
    assert len(grid) == ydim
    null = chr(int(key("NULBC")))
    assert wafer.die_count == sum(len(r) - r.count(null) for r in grid)
    assert int((wafer.bin == 1).sum()) == int(key("GOODS")) == 4938          # the file's good-die count
    assert wafer.flat == E5_SIDE[int(key("FLAT"))] == "L"
    assert wafer.die_count == 5826 and wafer.format == "ascii:st_wm"
    # Target dies (TARGBC '+') sit at XBE/YBE TARGn in the file's coordinates.
    targets = wafer.bin == int(key("TARGBC"))
    got = sorted(zip(wafer.orig_x[targets].tolist(), wafer.orig_y[targets].tolist()))
    assert got == sorted([(int(key("XBE TARG1")), int(key("YBE TARG1"))), (int(key("XBE TARG2")), int(key("YBE TARG2")))])
    assert wafer.bin_names[int(key("TARGBC"))] == "target"
    assert (wafer.lot, wafer.wafer, wafer.stime) == ("G345875", "21", "20240913_164450")


@requires_shared
def test_binlist_sample():
    text, wafer = _sample("mchp_3A1877.01")
    legend = re.findall(r"^BIN = (.);COUNT =\s*(\d+);STATUS = (\w+);DESCR = (.*)$", text, re.M)
    counts = Counter(wafer.bin.tolist())
    grid = text.split("BINLIST = {", 1)[1].rsplit("}", 1)[0].split()
    for code, count, status, descr in legend:
        if "NO DIE" in descr:
            assert sum(r.count(code) for r in grid) == int(count)       # null positions, not dies
            assert _bin(code) not in counts
        else:
            assert counts.get(_bin(code), 0) == int(count)
            assert wafer.bin_pass[_bin(code)] is (status == "PASS")
    assert wafer.die_count == sum(int(c) for code, c, _, d in legend if "NO DIE" not in d) == 3079
    assert wafer.flat == E5_SIDE[int(re.search(r"FNLOC = (\d+)", text).group(1))] == "R"
    assert int(wafer.is_pass().sum()) == 2839
    assert wafer.die_size == (2.324, 2.2) and wafer.stime == "20230605_065518"


@requires_shared
@pytest.mark.parametrize(("name", "side", "total"), [("legic_U667T04-C5.map", "D", 6362), ("melexis_S96898-01-B6", "D", 8315)])
def test_maxxy_samples(name, side, total):
    text, wafer = _sample(name)
    stated = dict(re.findall(r"^(\w[\w/]*): (.*)$", text, re.M))
    cols, rows = map(int, stated["MaxXY"].split())
    assert wafer.die_count == int(stated["TotDie"]) == total
    assert int((wafer.bin == 1).sum()) == int(stated["Pickable"])
    assert int(stated["Tested"]) <= wafer.die_count
    assert wafer.x.max() < cols and wafer.y.max() < rows
    assert wafer.flat == side
    assert wafer.wafer == stated["WaferId"]


@requires_shared
def test_versid_sample():
    text, wafer = _sample("ifx_versid32_84P01V59.21")
    key = lambda k: re.search(rf"^{k} (\S+)", text, re.M).group(1)  # noqa: E731
    assert int((wafer.bin == _bin(key("PASBIN"))).sum()) == int(key("SUMPAS")) == 17704
    assert int(wafer.is_pass().sum()) == int(key("SUMPAS"))
    assert wafer.y.max() + 1 == int(key("ROWCNT")) and wafer.x.max() < int(key("COLCNT"))
    assert wafer.flat == E5_SIDE[int(key("FNLOC1"))] == "D"
    # Every REFPXn/REFPYn (the file's coordinates, origin per ORLOC1) holds the REFBIN code.
    refs = [(int(key(f"REFPX{i}")), int(key(f"REFPY{i}"))) for i in range(1, int(key("REFCNT")) + 1)]
    ref_bin = wafer.bin == _bin(key("REFBIN"))
    assert sorted(zip(wafer.orig_x[ref_bin].tolist(), wafer.orig_y[ref_bin].tolist())) == sorted(refs)
    assert wafer.die_count == 18181 and wafer.bin_names[_bin("X")] == "reference"
    assert wafer.origin == (39, 128)                      # REFPX1 +040 / REFPY1 +015, lower-left origin


# ---------------------------------------------------------------------------
# Hand-made variants
# ---------------------------------------------------------------------------

BINLIST = """WAFERID = W9.03\r
TESTDATE = 2024/01/02 03:04:05\r
COLCT = 4\r
ROWCT = 2\r
FNLOC = {fnloc}\r
BINTYPE = ASCII\r
BIN = 1;COUNT = 3;STATUS = PASS;DESCR = GOOD\r
BIN = B;COUNT = 1;STATUS = FAIL;DESCR = BAD\r
BIN = .;COUNT = 4;STATUS = FAIL;DESCR = NO DIE\r
BINLIST = {{\r
.11.\r
.1B.\r
}}"""


@pytest.mark.parametrize(("fnloc", "side"), [(0, "D"), (90, "L"), (180, "U"), (270, "R")])
def test_binlist_crlf_and_orientation(fnloc, side):
    [wafer] = read_ascii_map(BINLIST.format(fnloc=fnloc).encode())
    assert {(int(x), int(y)): int(b) for x, y, b in zip(wafer.x, wafer.y, wafer.bin)} == {
        (1, 0): 1, (2, 0): 1, (1, 1): 1, (2, 1): ord("B")}
    assert wafer.flat == side and wafer.bin_names[ord("B")] == "BAD"


def test_binlist_without_a_no_die_legend_entry_and_with_wrong_counts():
    text = BINLIST.format(fnloc=0).replace("BIN = .;COUNT = 4;STATUS = FAIL;DESCR = NO DIE\r\n", "")
    text = text.replace("BIN = 1;COUNT = 3", "BIN = 1;COUNT = 30")
    [wafer] = read_ascii_map(text.encode())
    assert wafer.die_count == 4                                   # '.' is still "no die"
    assert wafer.extra["bin_count_mismatch"] == "1: file 30, map 3"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (BINLIST.format(fnloc=0).rsplit("}", 1)[0], "truncated"),
        (BINLIST.format(fnloc=0).replace(".1B.", ".1B"), "bad_row"),
        (BINLIST.format(fnloc=0).replace("ROWCT = 2", "ROWCT = 3"), "row_count"),
        (BINLIST.format(fnloc=0).replace("BINTYPE = ASCII", "BINTYPE = DECIMAL"), "bad_bin_type"),
        (BINLIST.format(fnloc=0).replace("FNLOC = 0", "FNLOC = east-ish"), "bad_orientation"),
    ],
)
def test_binlist_rejects(text, reason):
    with pytest.raises(Rejected) as info:
        read_ascii_map(text.encode())
    assert info.value.reason == reason


def maxxy(orient_line: str, rows=("..1..", ".101.", "..X.."), size="5 3") -> bytes:
    return ("WaferId: W-1\n" + orient_line + f"\nMaxXY: {size}\nTotDie: 5\n\n\n" + "\n".join(rows) + "\n").encode()


@pytest.mark.parametrize(
    ("line", "side"),
    [("Orient: 6", "D"), ("Orient: 12", "U"), ("Orient: 3", "R"), ("Orient: 9", "L"),
     ("Flat/Notch: Down", "D"), ("Flat/Notch: Left", "L"), ("Flat/Notch: Up", "U")],
)
def test_maxxy_orientation(line, side):
    [wafer] = read_ascii_map(maxxy(line))
    assert wafer.flat == side and wafer.die_count == 5
    assert Counter(wafer.bin.tolist()) == {1: 3, 0: 1, ord("X"): 1}


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        (maxxy("Orient: 5"), "bad_orientation"),
        (maxxy("Orient: 6", size="5 4"), "truncated"),
        (maxxy("Orient: 6", size="6 3"), "bad_row"),
        (maxxy("Orient: 6", size="five"), "bad_header"),
    ],
)
def test_maxxy_rejects(doc, reason):
    with pytest.raises(Rejected) as info:
        read_ascii_map(doc)
    assert info.value.reason == reason


def versid(orloc: str, *, compre="1", rows=("..1X", "01.."), pasbin="1", skip=".,X", refbin="X", refs=((4, 2),)) -> bytes:
    ref_lines = "".join(f"REFPX{i} +{x:03d}\nREFPY{i} +{y:03d}\n" for i, (x, y) in enumerate(refs, 1))
    header = (f"VERSID 3.2\nMAPID1 W.01\nTIMEST 20230102030405\nLOTMEA LOT1\nDESIGN D1\nREFCNT {len(refs)}\nREFBIN {refbin}\n"
              f"{ref_lines}FNLOC1 180\nORLOC1 {orloc}\nROWCNT {len(rows)}\nCOLCNT {len(rows[0]) // int(compre)}\n"
              f"XDIES1 1.5\nYDIES1 2.0\nPASBIN {pasbin}\nCOMPRE {compre}\nSKIPDI {skip}\n")
    return (header + "".join(f"MAP{i:03d} {r}\n" for i, r in enumerate(rows, 1))).encode()


@pytest.mark.parametrize(
    ("orloc", "ref_file_xy"),
    # The 'X' reference die is at column 3, row 0 of a 4 x 2 grid; ORLOC numbers from 1 at the origin corner.
    [("1", (1, 1)), ("2", (4, 1)), ("3", (4, 2)), ("4", (1, 2))],
)
def test_versid_origin_quadrants(orloc, ref_file_xy):
    [wafer] = read_ascii_map(versid(orloc, refs=[ref_file_xy]))
    ref = list(wafer.bin).index(ord("X"))
    assert (wafer.x[ref], wafer.y[ref]) == (3, 0)
    assert (wafer.orig_x[ref], wafer.orig_y[ref]) == ref_file_xy
    assert wafer.origin == (3, 0)
    assert wafer.flat == "U" and wafer.bin_pass == {0: False, 1: True, ord("X"): False}


def test_versid_two_character_codes():
    [wafer] = read_ascii_map(versid("2", compre="2", rows=("0001XX", "0207.."), pasbin="01", skip="00,..,XX", refbin="XX",
                                    refs=[(3, 1)]))
    got = {(int(x), int(y)): int(b) for x, y, b in zip(wafer.x, wafer.y, wafer.bin)}
    assert got == {(1, 0): 1, (2, 0): 50000, (0, 1): 2, (1, 1): 7}
    assert wafer.bin_pass == {1: True, 2: False, 7: False, 50000: False}
    assert wafer.bin_names == {50000: "reference"}


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        (versid("2").replace(b"ROWCNT 2", b"ROWCNT 3"), "row_count"),
        (b"VERSID 3.2\nROWCNT 0\n", "no_rows"),
        (versid("2", compre="2", rows=("0001X", "0207.."), skip="00,..,XX", refbin="XX", refs=[]), "bad_row"),
        (versid("2").replace(b"COLCNT 4", b"COLCNT four"), "bad_header"),
    ],
)
def test_versid_rejects(doc, reason):
    with pytest.raises(Rejected) as info:
        read_ascii_map(doc)
    assert info.value.reason == reason


def test_versid_rejects_rows_out_of_sequence():
    doc = versid("2").replace(b"MAP002", b"MAP005")
    with pytest.raises(Rejected) as info:
        read_ascii_map(doc)
    assert info.value.reason == "bad_row" and info.value.line is not None


ST = "WM - V1.3 - STMicroelectronics Wafer Map File\n\nLOT\tL5\nWAFER\t3\nFLAT\t{flat}\nNULBC\t126\nTARGBC\t43\n" \
     "XSTRP\t10\nYSTRP\t20\nXBE TARG1\t11\nYBE TARG1\t20\nDATE\t2024-01-02\nTIME\t03:04:05\n" \
     "XSTEP\t100\tUNITS\tUM\nYSTEP\t200\tUNITS\tUM\n\nWMXDIM=3\nWMYDIM=2\n\n~+1\n10~\n\nCHECKSUM\tAB\n"


@pytest.mark.parametrize(("flat", "side"), [(0, "D"), (90, "L"), (180, "U"), (270, "R")])
def test_st_wm_variants(flat, side):
    [wafer] = read_ascii_map(ST.format(flat=flat).encode())
    assert wafer.flat == side and wafer.die_count == 4
    assert wafer.origin == (1, 0) and wafer.die_size == (0.1, 0.2)
    assert wafer.extra["CHECKSUM"] == "AB"


@pytest.mark.parametrize("change", [("NULBC\t126\n", ""), ("WMYDIM=2\n", "")])
def test_st_wm_without_null_code_or_grid_size_is_rejected(change):
    with pytest.raises(Rejected) as info:
        read_ascii_map(ST.format(flat=0).replace(*change).encode())
    assert info.value.reason == "bad_header"


def test_unknown_text_is_not_an_ascii_map():
    with pytest.raises(Rejected) as info:
        read_ascii_map(b"just some notes\nnothing to see\n")
    assert info.value.reason == "unknown_format"


def test_adding_a_dialect_is_one_function_and_one_registration():
    """A new dialect plugs into detection and reading without touching anything else."""

    @dialect("demo", lambda lines: bool(lines) and lines[0].startswith("DEMOMAP"))
    def _parse_demo(lines, pass_bins):
        bins, codes = char_grid(lines[1:], None, {"."}, "demo map")
        return build_wafer("demo", bins, codes, pass_bins=pass_bins, flat="U", extra={}, wafer=lines[0].split()[1])

    try:
        data = b"DEMOMAP W7\n.1.\n121\n"
        assert detect_map_format(data) == "ascii:demo"
        [wafer] = read_wafer_maps(data, pass_bins={2})
        assert (wafer.format, wafer.wafer, wafer.flat, wafer.die_count) == ("ascii:demo", "W7", "U", 4)
        assert wafer.bin_pass == {1: False, 2: True}
    finally:
        del DIALECTS["demo"]
    assert detect_map_format(b"DEMOMAP W7\n.1.\n121\n") is None


def test_registry_lists_the_shipped_dialects():
    assert list(ascii_maps.DIALECTS) == ["st_wm", "binlist", "maxxy", "versid"]
    assert all(callable(d.sniff) and callable(d.parse) for d in DIALECTS.values())
