"""The synthetic STDF writer, cross-checked with the reference reader pystdf 1.4.0."""

from __future__ import annotations

import gzip
import io
import struct
from collections import Counter, defaultdict
from datetime import date

import pytest

pystdf_io = pytest.importorskip("pystdf.IO")

from failmap_synth.day import generate_days  # noqa: E402
from failmap_synth.stdf_records import record  # noqa: E402
from failmap_synth.stdf_writer import build_wafer_sort, make_wafer_sort_stdf  # noqa: E402
from tests.failmap_synth.decode import STDF_KEY_RE  # noqa: E402

NAMES = {(0, 10): "FAR", (1, 10): "MIR", (1, 20): "MRR", (1, 30): "PCR", (1, 40): "HBR", (1, 50): "SBR",
         (1, 80): "SDR", (2, 10): "WIR", (2, 20): "WRR", (2, 30): "WCR", (5, 10): "PIR", (5, 20): "PRR",
         (10, 30): "TSR", (15, 10): "PTR", (15, 15): "MPR", (15, 20): "FTR"}


class _Sink:
    def __init__(self):
        self.records: list[tuple[str, dict]] = []

    def before_begin(self, ds):
        pass

    def before_send(self, ds, data):
        rtype, fields = data
        self.records.append((type(rtype).__name__.upper(), dict(zip(rtype.fieldNames, fields))))

    def before_complete(self, ds):
        pass

    def before_cancel(self, ds, exc):
        pass


def read_pystdf(data: bytes) -> list[tuple[str, dict]]:
    parser = pystdf_io.Parser(inp=io.BytesIO(data))
    sink = _Sink()
    parser.addSink(sink)
    parser.parse()
    return sink.records


def raw_records(data: bytes, endian: str) -> list[tuple[str, bytes]]:
    """Walk the REC_LEN headers ourselves: (name, body) per record."""
    out, pos = [], 0
    while pos < len(data):
        length, typ, sub = struct.unpack_from(endian + "HBB", data, pos)
        out.append((NAMES[(typ, sub)], data[pos + 4:pos + 4 + length]))
        pos += 4 + length
    assert pos == len(data)
    return out


@pytest.mark.parametrize("endian,sites", [("<", 1), (">", 1), ("<", 2), (">", 4)])
def test_pystdf_reads_both_byte_orders_and_sees_what_we_wrote(endian, sites):
    f = build_wafer_sort(3, endian=endian, dies=300, tests_per_die=20, sites=sites, retests=3)
    recs = read_pystdf(f.data)
    assert dict(Counter(name for name, _ in recs)) == f.counts
    assert recs[0] == ("FAR", {"CPU_TYPE": 1 if endian == ">" else 2, "STDF_VER": 4})
    order = [name for name, _ in recs]
    assert order[:4] == ["FAR", "MIR", "SDR", "WIR"] and order[-1] == "MRR"
    assert f.counts["PIR"] == f.counts["PRR"] == 303
    assert f.counts["WRR"] == f.counts["WCR"] == 1
    for name in ("PTR", "MPR", "FTR", "HBR", "SBR", "PCR", "TSR"):
        assert f.counts[name] >= 1, name
    sdr = dict(recs)["SDR"]
    assert sdr["SITE_CNT"] == sites and sdr["SITE_NUM"] == list(range(1, sites + 1))


def test_parts_bins_and_summaries_agree():
    f = build_wafer_sort(8, dies=400, tests_per_die=30, sites=2, retests=5)
    recs = read_pystdf(f.data)
    prr = [r for n, r in recs if n == "PRR"]
    first = [r for r in prr if not r["PART_FLG"] & 0x02]
    retest = [r for r in prr if r["PART_FLG"] & 0x02]
    assert len(first) == 400 and len(retest) == 5
    xy = {(r["X_COORD"], r["Y_COORD"]) for r in first}
    assert len(xy) == 400
    assert {(r["X_COORD"], r["Y_COORD"]) for r in retest} <= xy
    final = {(r["X_COORD"], r["Y_COORD"]): r["SOFT_BIN"] for r in prr}  # re-tests come last and win
    sbr = {r["SBIN_NUM"]: r["SBIN_CNT"] for n, r in recs if n == "SBR"}
    assert sbr == dict(Counter(final.values()))
    assert sum(r["HBIN_CNT"] for n, r in recs if n == "HBR") == 400
    assert Counter(final.values()).most_common(1)[0][0] == 1
    wrr = dict(recs)["WRR"]
    assert wrr["PART_CNT"] == 405 and wrr["RTST_CNT"] == 5
    pcr_all = [r for n, r in recs if n == "PCR" and r["HEAD_NUM"] == 255]
    assert pcr_all[0]["PART_CNT"] == 405


def test_num_test_and_tsr_match_the_records_written():
    f = build_wafer_sort(4, dies=150, tests_per_die=40, sites=2, stop_on_fail=True)
    recs = read_pystdf(f.data)
    per_part: dict[int, int] = defaultdict(int)
    open_part: dict[int, int] = {}
    n_part = 0
    exec_cnt = Counter()
    for name, r in recs:
        if name == "PIR":
            open_part[r["SITE_NUM"]] = n_part
            n_part += 1
        elif name in ("PTR", "MPR", "FTR"):
            per_part[open_part[r["SITE_NUM"]]] += 1
            exec_cnt[r["TEST_NUM"]] += 1
        elif name == "PRR":
            assert r["NUM_TEST"] == per_part[open_part.pop(r["SITE_NUM"])]
    tsr = {r["TEST_NUM"]: r["EXEC_CNT"] for n, r in recs if n == "TSR"}
    assert tsr == dict(exec_cnt)
    # Stop on fail: a failing part runs fewer tests than a passing one.
    assert len(set(per_part.values())) > 1


@pytest.mark.parametrize("tail", ["text", "bare"])
def test_first_ptr_has_limits_later_ones_are_truncated(tail):
    endian = ">"
    f = build_wafer_sort(5, endian=endian, dies=60, tests_per_die=20, sites=2, ptr_tail=tail)
    lengths = defaultdict(list)
    for name, body in raw_records(f.data, endian):
        if name == "PTR":
            lengths[struct.unpack_from(endian + "I", body)[0]].append(len(body))
    short = 0
    for test, lens in lengths.items():
        assert lens[0] > max(lens[1:]), test    # REC_LEN shorter after the first
        short += len(lens) - 1
    assert short == f.truncated["PTR"] > 0
    ptrs = [r for n, r in read_pystdf(f.data) if n == "PTR"]
    firsts, seen = [], set()
    for r in ptrs:
        (firsts if r["TEST_NUM"] not in seen else []).append(r)
        seen.add(r["TEST_NUM"])
    assert all(r["LO_LIMIT"] is not None and r["UNITS"] for r in firsts)
    later = [r for r in ptrs if r not in firsts]
    assert later and all(r["LO_LIMIT"] is None and r["OPT_FLAG"] is None for r in later)
    assert all(r["RESULT"] is not None for r in later)
    if tail == "text":
        assert all(r["TEST_TXT"] and r["ALARM_ID"] == "" for r in later)
    else:
        assert all(r["TEST_TXT"] is None for r in later)


def test_tests_per_die_bounds_and_exact_die_count():
    for tests in (20, 300):
        f = build_wafer_sort(6, dies=37, tests_per_die=tests, sites=1, stop_on_fail=False, retests=0)
        assert f.counts["PRR"] == 37
        assert f.counts["TSR"] == tests
        assert f.counts["PTR"] + f.counts["MPR"] + f.counts["FTR"] == 37 * tests


def test_gzip_output_and_determinism():
    plain = make_wafer_sort_stdf(9, endian="<", dies=80, tests_per_die=20)
    assert make_wafer_sort_stdf(9, endian="<", dies=80, tests_per_die=20) == plain
    assert make_wafer_sort_stdf(10, endian="<", dies=80, tests_per_die=20) != plain
    gz = make_wafer_sort_stdf(9, endian="<", dies=80, tests_per_die=20, gzip_output=True)
    assert gz[:2] == b"\x1f\x8b" and gzip.decompress(gz) == plain


def test_table_driven_encoding_matches_struct():
    assert record("PIR", "<", HEAD_NUM=1, SITE_NUM=3) == struct.pack("<HBBBB", 2, 5, 10, 1, 3)
    assert record("WIR", ">", HEAD_NUM=1, SITE_GRP=255, START_T=7, WAFER_ID="07") == \
        struct.pack(">HBBBBIB2s", 9, 2, 10, 1, 255, 7, 2, b"07")
    # Nibble arrays: first item in the low 4 bits.
    mpr = record("MPR", "<", TEST_NUM=1, RTN_ICNT=3, RSLT_CNT=0, RTN_STAT=[1, 2, 3])
    assert mpr[4 + 12:4 + 14] == bytes([0x21, 0x03])


def test_generate_days_writes_stdf_keys_in_both_byte_orders():
    objs = [o for o in generate_days(date(2026, 1, 11), 2, 5, 21, stdf_files_per_day=2, broken=False)
            if o.bucket == "stdf"]
    assert len(objs) == 4
    cpu = set()
    for o in objs:
        m = STDF_KEY_RE.match(o.key)
        assert m and m.group(1) == m.group(4)
        data = gzip.decompress(o.data) if m.group(6) else o.data
        assert data[2:4] == b"\x00\x0a"  # FAR first
        cpu.add(data[4])
    assert cpu == {1, 2}
