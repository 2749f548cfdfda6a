"""Bucket A / bucket B fail-map text: one test per contract rule and per reject reason."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from failmap_assets.wafer.model import CompanionMap, WaferMap
from failmap_assets.formats import failmap_text as ft
from failmap_assets.formats.failmap_text import REJECT_REASONS, parse_failmap_a, parse_failmap_b, sniff_failmap
from failmap_assets.wafer.rejects import Rejected
from tests.support.contract_examples import A_EXAMPLE, B_EXAMPLE


MINIMAL_A = b"FAILMAP 1\nLOT L1\nWAFER 01\nSTIME 20260111_143025\nDIES 1\n0 0 1\nEND\n"
MINIMAL_B = b"FAILMAP-B 1\nSTIME 20260111_143030\nVALUES 1 V\nDIES 1\n0 0 1 0.5\nEND\n"

def reject(parse, data: bytes) -> Rejected:
    with pytest.raises(Rejected) as exc:
        parse(data)
    assert exc.value.reason in REJECT_REASONS, exc.value.reason
    return exc.value


def a_file(rows: str = "0 0 1\n", dies: int | None = None, header: str = "", end: str = "END\n") -> bytes:
    n = rows.count("\n") if dies is None else dies
    return (f"FAILMAP 1\nLOT L1\nWAFER 01\nSTIME 20260111_143025\n{header}DIES {n}\n{rows}{end}").encode()


def b_file(rows: str = "0 0 1 0.5\n", k_names: str = "1 V", dies: int | None = None, end: str = "END\n") -> bytes:
    n = rows.count("\n") if dies is None else dies
    return f"FAILMAP-B 1\nSTIME 20260111_143030\nVALUES {k_names}\nDIES {n}\n{rows}{end}".encode()


# ------------------------------------------------------------ the contract's examples


def test_contract_example_a():
    w = parse_failmap_a(A_EXAMPLE)
    assert isinstance(w, WaferMap) and w.format == "failmap"
    assert (w.lot, w.wafer, w.product, w.step, w.tester, w.partid, w.stime) == (
        "N4A123.1", "07", "SCT101A", "CP1", "T5503-02", "N4A123-07", "20260111_143025")
    assert (w.flat, w.die_size, w.origin) == ("D", (5.12, 6.34), (0, 0))
    assert w.bin_pass == {1: True, 285: False} and w.bin_names == {1: "PASS", 285: "IDDQ_FAIL"}
    assert w.x.tolist() == [-1, 0, 1, 0] and w.y.tolist() == [0, 0, 0, 1] and w.bin.tolist() == [1, 1, 285, 1]
    assert (w.x.dtype, w.y.dtype, w.bin.dtype, w.retest_count.dtype) == (np.int32, np.int32, np.int32, np.int16)
    assert w.retest_count.tolist() == [0, 0, 0, 0] and w.rows_read == 4 and w.extra == {}
    assert w.is_pass().tolist() == [True, True, False, True]


def test_contract_example_b():
    c = parse_failmap_b(B_EXAMPLE)
    assert isinstance(c, CompanionMap)
    assert (c.stime, c.partid, c.tester) == ("20260111_143030", "N4A123-07", "T5503-07")
    assert c.value_names == ["VDD_MIN", "IDDQ_UA", "FMAX_MHZ"]
    assert c.x.tolist() == [-1, 0, 1] and c.bin.tolist() == [1, 1, 285]
    assert c.values.shape == (3, 3) and c.values[0].tolist() == [0.812, 1.25, 1350.0]
    assert c.values_na.tolist() == [[False] * 3, [False, True, False], [False] * 3]
    assert np.isnan(c.values[1, 1])
    # transformed_values: verbatim text, NA kept as NA, joined with ","
    assert isinstance(c.values_text, pa.StringArray)
    assert c.values_text.to_pylist() == ["0.812,1.25,1350", "0.807,NA,1342", "0.901,88.1,1101"]
    assert c.retest_count.tolist() == [0, 0, 0]


# ------------------------------------------------------------ sniffing


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (A_EXAMPLE, "a"),
        (B_EXAMPLE, "b"),
        (b"\xef\xbb\xbf# tester v2\r\n\r\n  \t\r\nFAILMAP 1\r\n", "a"),
        (b"# c\n\nFAILMAP-B\t1\n", "b"),
        (b"FAILMAP-C 1\n", None),
        (b"FAILMAPS 1\n", None),
        (b"LOT x\nFAILMAP 1\n", None),
        (b"", None),
        (b"# only comments\n", None),
        (b"\x1f\x8b\x08\x00garbage\xff\xfe", None),
        (b"<?xml version='1.0'?><Map/>", None),
    ],
)
def test_sniff(data, kind):
    assert sniff_failmap(data) == kind


# ------------------------------------------------------------ first line and version


def test_comments_and_blank_lines_may_precede_the_first_line():
    w = parse_failmap_a(b"# exported by T5503\n\n   \n" + MINIMAL_A)
    assert w.die_count == 1


def test_failmap_must_be_the_first_non_comment_line():
    e = reject(parse_failmap_a, b"LOT L1\n" + MINIMAL_A)
    assert e.reason == "unknown_format" and e.line == 1


@pytest.mark.parametrize("first", [b"FAILMAP 2", b"FAILMAP", b"FAILMAP 1.0", b"FAILMAP one", b"FAILMAP 1 extra"])
def test_only_version_1_is_read(first):
    e = reject(parse_failmap_a, MINIMAL_A.replace(b"FAILMAP 1", first, 1))
    assert e.reason == "unsupported_version" and e.line == 1


def test_version_with_leading_zero_is_version_1():
    assert parse_failmap_a(MINIMAL_A.replace(b"FAILMAP 1", b"FAILMAP 01", 1)).die_count == 1


def test_b_version_is_checked_too():
    e = reject(parse_failmap_b, MINIMAL_B.replace(b"FAILMAP-B 1", b"FAILMAP-B 3"))
    assert e.reason == "unsupported_version"


@pytest.mark.parametrize(
    "data",
    [b"", b"\n\n", b"# comments only\n# nothing else\n", b"<?xml version='1.0'?>\n<Map/>\n",
     b"WaferId: 12\nMaxXY: 3 4\n", b"\xef\xbb\xbf"],
)
def test_not_a_fail_map_is_unknown_format(data):
    assert reject(parse_failmap_a, data).reason == "unknown_format"
    assert reject(parse_failmap_b, data).reason == "unknown_format"


def test_each_parser_refuses_the_other_bucket():
    assert reject(parse_failmap_a, MINIMAL_B).reason == "unknown_format"
    assert reject(parse_failmap_b, MINIMAL_A).reason == "unknown_format"


# ------------------------------------------------------------ header keys


@pytest.mark.parametrize("key", [b"LOT", b"WAFER", b"STIME"])
def test_required_a_keys(key):
    lines = [ln for ln in MINIMAL_A.split(b"\n") if not ln.startswith(key + b" ")]
    e = reject(parse_failmap_a, b"\n".join(lines))
    assert e.reason == "missing_key" and key.decode() in e.detail


@pytest.mark.parametrize("key", [b"STIME", b"VALUES"])
def test_required_b_keys(key):
    lines = [ln for ln in MINIMAL_B.split(b"\n") if not ln.startswith(key + b" ")]
    e = reject(parse_failmap_b, b"\n".join(lines))
    assert e.reason == "missing_key" and key.decode() in e.detail


def test_missing_dies_line_is_missing_key():
    e = reject(parse_failmap_a, b"FAILMAP 1\nLOT L1\nWAFER 01\nSTIME 20260111_143025\nEND\n")
    assert e.reason == "missing_key" and "DIES" in e.detail and e.line == 5


def test_file_ending_inside_the_header_is_truncated():
    e = reject(parse_failmap_a, b"FAILMAP 1\nLOT L1\nWAFER 0")
    assert e.reason == "truncated" and e.line == 3


def test_optional_keys_absent_and_flat_default():
    w = parse_failmap_a(MINIMAL_A)
    assert (w.product, w.step, w.tester, w.partid, w.die_size, w.origin) == (None,) * 6
    assert w.flat == "D" and w.bin_pass == {} and w.bin_names == {}


def test_header_keys_in_any_order_after_the_first_line():
    shuffled = b"FAILMAP 1\nSTIME 20260111_143025\nBINDEF 7 P GOOD7\nFLAT R\nWAFER 01\nPRODUCT P\nLOT L1\nDIES 1\n0 0 7\nEND\n"
    w = parse_failmap_a(shuffled)
    assert (w.lot, w.wafer, w.flat, w.product, w.bin_pass) == ("L1", "01", "R", "P", {7: True})


def test_unknown_keys_are_kept_as_extra():
    w = parse_failmap_a(a_file(header="OPERATOR jdoe  nightly shift\nPROBECARD PC-17\nNOTE a\nNOTE b\n"))
    assert w.extra == {"OPERATOR": "jdoe  nightly shift", "PROBECARD": "PC-17", "NOTE": "a\nb"}
    c = parse_failmap_b(MINIMAL_B.replace(b"DIES", b"LOT N4A\nDIES"))
    assert c.extra == {"LOT": "N4A"}


@pytest.mark.parametrize("side", ["U", "D", "L", "R"])
def test_flat_sides(side):
    assert parse_failmap_a(a_file(header=f"FLAT {side}\n")).flat == side


def test_die_size_and_origin():
    w = parse_failmap_a(a_file(header="DIE_SIZE 5.12\t6.34\nORIGIN -3 +4\n"))
    assert w.die_size == (5.12, 6.34) and w.origin == (-3, 4)


@pytest.mark.parametrize(
    "header",
    [
        "FLAT X\n", "FLAT d\n", "DIE_SIZE 5.12\n", "DIE_SIZE 5 x\n", "DIE_SIZE 0 1\n", "DIE_SIZE inf 1\n",
        "ORIGIN 1\n", "ORIGIN 1.5 2\n", "ORIGIN 9999999999 0\n",
        "BINDEF 285\n", "BINDEF 285 X FAIL\n", "BINDEF -1 F X\n", "BINDEF 65536 F X\n", "BINDEF x P PASS\n",
        "BINDEF 2 F A\nBINDEF 2 P B\n",
        "LOT L2\n", "STIME 20261301_000000\n", "lot L1\n", "PRODUCT\n", "0 0 1\n", "FAILMAP 1\n",
    ],
)
def test_malformed_header_lines_are_bad_header(header):
    data = a_file(header=header)
    if header.startswith("STIME"):
        data = data.replace(b"STIME 20260111_143025\n", b"")
    e = reject(parse_failmap_a, data)
    assert e.reason == "bad_header" and e.line is not None


@pytest.mark.parametrize("stime", ["2026011_143025", "20260111143025", "20260111_246000", "20260230_000000", "x"])
def test_stime_must_be_a_time(stime):
    e = reject(parse_failmap_a, MINIMAL_A.replace(b"20260111_143025", stime.encode()))
    assert e.reason == "bad_header" and e.line == 4


@pytest.mark.parametrize("dies", [b"DIES -1", b"DIES x", b"DIES 1.0", b"DIES"])
def test_dies_must_be_a_count(dies):
    e = reject(parse_failmap_a, MINIMAL_A.replace(b"DIES 1", dies))
    assert e.reason == "bad_header" and e.line == 5


@pytest.mark.parametrize("values", [b"VALUES 2 V", b"VALUES 1 V W", b"VALUES x V", b"VALUES"])
def test_values_needs_exactly_k_names(values):
    e = reject(parse_failmap_b, MINIMAL_B.replace(b"VALUES 1 V", values))
    assert e.reason == "bad_header" and e.line == 3


# ------------------------------------------------------------ bins


def test_bindef_sets_pass_and_names_and_undefined_bins_fail_except_bin_1():
    w = parse_failmap_a(a_file("0 0 1\n1 0 2\n2 0 3\n3 0 4\n", header="BINDEF 3 P RETEST_PASS\nBINDEF 4 F\n"))
    assert w.bin_pass == {3: True, 4: False} and w.bin_names == {3: "RETEST_PASS"}
    assert w.is_pass().tolist() == [True, False, True, False]


def test_bindef_can_make_bin_1_a_fail_bin():
    w = parse_failmap_a(a_file(header="BINDEF 1 F SCRAP\n"))
    assert w.is_pass().tolist() == [False]


def test_bindef_names_may_hold_spaces():
    assert parse_failmap_a(a_file(header="BINDEF 9 F open  short\n")).bin_names == {9: "open  short"}


def test_bins_with_leading_zeros_and_the_full_range():
    w = parse_failmap_a(a_file("0 0 0285\n1 0 00000\n2 0 65535\n"))
    assert w.bin.tolist() == [285, 0, 65535]


# ------------------------------------------------------------ rows, counts and END


def test_dies_zero_is_an_empty_wafer():
    w = parse_failmap_a(a_file("", dies=0))
    assert w.die_count == 0 and w.rows_read == 0 and w.x.dtype == np.int32
    c = parse_failmap_b(b_file("", dies=0))
    assert c.die_count == 0 and c.values.shape == (0, 1) and c.values_text.to_pylist() == []


def test_fewer_rows_than_dies_is_truncated():
    e = reject(parse_failmap_a, a_file("0 0 1\n1 0 1\n", dies=3))
    assert e.reason == "truncated" and e.line == 8     # where END came too early


def test_missing_end_is_truncated():
    e = reject(parse_failmap_a, a_file("0 0 1\n", end=""))
    assert e.reason == "truncated" and e.line == 6


def test_data_ending_inside_a_row_is_truncated():
    data = a_file("0 0 1\n1 0 2\n")
    e = reject(parse_failmap_a, data[: data.index(b"1 0 2") + 3])
    assert e.reason == "truncated" and e.line == 7


def test_more_rows_than_dies_is_extra_content():
    e = reject(parse_failmap_a, a_file("0 0 1\n1 0 1\n", dies=1))
    assert e.reason == "extra_content" and e.line == 7


def test_content_after_end_is_extra_content_but_comments_are_fine():
    assert parse_failmap_a(MINIMAL_A + b"# trailer\n\n  \n").die_count == 1
    e = reject(parse_failmap_a, MINIMAL_A + b"\n0 0 1\n")
    assert e.reason == "extra_content" and e.line == 9


def test_end_with_trailing_blanks_and_no_final_newline():
    assert parse_failmap_a(MINIMAL_A.replace(b"END\n", b"END \t")).die_count == 1


@pytest.mark.parametrize(
    ("row", "line"),
    [("0 0 x\n", 7), ("0 0\n", 7), ("0 0 1 1\n", 7), ("0.5 0 1\n", 7), ("0 0 1;\n", 7), ("0 0 65536\n", 7),
     ("0 0 -1\n", 7), ("3000000000 0 1\n", 7), ("0 0 1 # note\n", 7)],
)
def test_bad_row_names_its_line(row, line):
    e = reject(parse_failmap_a, a_file("0 0 1\n" + row + "2 2 2\n"))
    assert e.reason == "bad_row" and e.line == line and row.strip() in e.detail


def test_bin_above_65535_is_bad_row():
    e = reject(parse_failmap_a, a_file("0 0 70000\n"))
    assert e.reason == "bad_row" and "65535" in e.detail and e.line == 6


@pytest.mark.parametrize("row", ["0 0 1 0.5 0.6\n", "0 0 1\n", "0 0 1 NA NA\n"])
def test_b_wrong_value_count_names_its_line(row):
    e = reject(parse_failmap_b, b_file("1 1 1 0.1\n" + row))
    assert e.reason == "value_count" and e.line == 6


def test_b_malformed_value_is_bad_row():
    e = reject(parse_failmap_b, b_file("1 1 1 abc\n"))
    assert e.reason == "bad_row" and e.line == 5


def test_b_values_forms_and_exact_floats():
    texts = ["1e-3", "-0.5", "+2.50", ".5", "7.", "1E+2", "NA", "0.1234567890123456789012", "1e400", "-0"]
    c = parse_failmap_b(b_file("".join(f"{i} 0 1 {t}\n" for i, t in enumerate(texts))))
    assert c.values_text.to_pylist() == texts
    for got, text in zip(c.values[:, 0].tolist(), texts):
        if text == "NA":
            assert np.isnan(got)
        else:
            assert np.float64(got).tobytes() == np.float64(float(text)).tobytes(), text
    assert c.values_na[:, 0].tolist() == [t == "NA" for t in texts]


def test_b_large_string_path(monkeypatch):
    # Beyond 2 GiB of value text Arrow needs 64-bit offsets: same content, other type.
    monkeypatch.setattr(ft, "_MAX_STRING_DATA", 4)
    c = parse_failmap_b(B_EXAMPLE)
    assert isinstance(c.values_text, pa.LargeStringArray)
    assert c.values_text.to_pylist() == ["0.812,1.25,1350", "0.807,NA,1342", "0.901,88.1,1101"]


# ------------------------------------------------------------ retests


def test_retest_rows_replace_earlier_rows_and_are_counted():
    w = parse_failmap_a(a_file("0 0 5\n1 0 1\n0 0 7\n2 0 1\n0 0 1\n"))
    assert w.rows_read == 5 and w.die_count == 3
    assert list(zip(w.x.tolist(), w.y.tolist(), w.bin.tolist(), w.retest_count.tolist())) == [
        (1, 0, 1, 0), (2, 0, 1, 0), (0, 0, 1, 2)]


def test_b_retests_keep_values_and_text_of_the_last_row():
    c = parse_failmap_b(b_file("0 0 9 1.5\n1 0 1 2\n0 0 1 NA\n"))
    assert c.x.tolist() == [1, 0] and c.bin.tolist() == [1, 1]
    assert c.values_text.to_pylist() == ["2", "NA"] and c.values_na[:, 0].tolist() == [False, True]
    assert c.retest_count.tolist() == [0, 1]


# ------------------------------------------------------------ text encoding and tolerances


def test_tolerate_bom_crlf_tabs_trailing_blanks():
    data = A_EXAMPLE.replace(b"\n", b" \t\r\n").replace(b"-1 0 1", b"-1\t0\t\t1").replace(b"LOT ", b"LOT\t  ")
    w = parse_failmap_a(b"\xef\xbb\xbf" + data)
    assert w.lot == "N4A123.1" and w.x.tolist() == [-1, 0, 1, 0] and w.bin.tolist() == [1, 1, 285, 1]
    c = parse_failmap_b(b"\xef\xbb\xbf" + B_EXAMPLE.replace(b"\n", b"\r\n"))
    assert c.values_text.to_pylist()[1] == "0.807,NA,1342"


def test_line_numbers_count_the_decompressed_text_from_1():
    data = b"\xef\xbb\xbf# c\r\n" + a_file("0 0 1\r\n0 0 x\r\n").replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n")
    e = reject(parse_failmap_a, data)
    assert e.reason == "bad_row" and e.line == 8


def test_comment_lines_between_rows():
    w = parse_failmap_a(a_file("# first row\n0 0 1\n\n# retest\n1 0 1\n", dies=2))
    assert w.die_count == 2


def test_utf8_header_values():
    w = parse_failmap_a(a_file(header="PRODUCT µ-Sensor ÄÖ\n"))
    assert w.product == "µ-Sensor ÄÖ"


@pytest.mark.parametrize(
    ("data", "line"),
    [
        (MINIMAL_A.replace(b"LOT L1", b"LOT L\xff1"), 2),           # not UTF-8
        (MINIMAL_A.replace(b"0 0 1", b"0 0\x001"), 6),               # NUL: binary
        ("FAILMAP 1\nLOT L1\n".encode("utf-16"), 1),                 # UTF-16
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", 3),                  # NUL on line 3
    ],
)
def test_binary_or_non_utf8_is_not_text(data, line):
    e = reject(parse_failmap_a, data)
    assert e.reason == "not_text" and e.line == line


def test_huge_dies_count_is_truncated_without_allocating():
    e = reject(parse_failmap_a, MINIMAL_A.replace(b"DIES 1", b"DIES " + b"9" * 5000))
    assert e.reason == "truncated"
    e = reject(parse_failmap_b, MINIMAL_B.replace(b"DIES 1", b"DIES 123456789012"))
    assert e.reason == "truncated"


REASON_EXAMPLES = {
    "not_text": (parse_failmap_a, MINIMAL_A.replace(b"L1", b"L\xc31")),
    "unknown_format": (parse_failmap_a, b"README\n"),
    "unsupported_version": (parse_failmap_b, MINIMAL_B.replace(b"-B 1", b"-B 9")),
    "missing_key": (parse_failmap_b, MINIMAL_B.replace(b"VALUES 1 V\n", b"")),
    "bad_header": (parse_failmap_a, MINIMAL_A.replace(b"WAFER 01", b"WAFER")),
    "truncated": (parse_failmap_b, MINIMAL_B[:-4]),
    "bad_row": (parse_failmap_a, MINIMAL_A.replace(b"0 0 1", b"0 0 one")),
    "value_count": (parse_failmap_b, MINIMAL_B.replace(b"0.5", b"0.5 0.6")),
    "extra_content": (parse_failmap_a, MINIMAL_A + b"END\n"),
}


def test_every_reason_has_an_example_and_is_documented():
    assert set(REASON_EXAMPLES) == set(REJECT_REASONS)
    for reason in REJECT_REASONS:
        # the module docstring is the list the lead copies into the rejects table
        assert f"``{reason}``" in ft.__doc__


@pytest.mark.parametrize("reason", REJECT_REASONS)
def test_reason_example(reason):
    parse, data = REASON_EXAMPLES[reason]
    assert reject(parse, data).reason == reason
