"""TSK / Accretech binary maps: the real sample against its own header, and
synthetic files built with struct.pack for every record layout we decode."""

from __future__ import annotations

import json
import struct
from collections import Counter

import numpy as np
import pytest

from failmap_assets.formats.detect import detect_map_format, read_wafer_maps
from failmap_assets.formats import tsk
from failmap_assets.formats.tsk import HEADER, read_tsk
from failmap_assets.wafer.rejects import Rejected
from tests.support.map_edges import edge_lengths
from tests.support.testdata import requires_shared, shared_file

SAMPLE = ("maps", "tsk", "larvata_001.QR2352-D5U278-CP-1")


@requires_shared
def test_sample_matches_its_header():
    data = shared_file(*SAMPLE).read_bytes()
    # Decoded independently at the manual's byte offsets.
    device = data[20:36].decode().strip()
    wafer_size, _machine, index_x, index_y, flat = struct.unpack_from(">HHIIH", data, 36)
    version = data[51]
    cols, rows = struct.unpack_from(">HH", data, 52)
    x_dir, y_dir = data[104], data[105]
    tested, passed, failed = struct.unpack_from(">HHH", data, 210)
    address = struct.unpack_from(">I", data, 216)[0]
    ext_tested, ext_passed, ext_failed = struct.unpack_from(">III", data, address + 6 * cols * rows + 52)
    # What the README says the header decodes to.
    assert (device, wafer_size, index_x, index_y, flat, version) == ("QR2352-8D2-4", 80, 78600, 75000, 180, 2)
    assert (cols, rows, x_dir, y_dir) == (254, 265, 1, 2)
    assert (tested, passed, failed) == (ext_tested, ext_passed, ext_failed) == (49631, 46927, 2704)

    [wafer] = read_tsk(data)
    assert wafer.die_count == tested
    assert Counter(wafer.bin.tolist()) == {1: passed, 2: failed}
    assert int(wafer.is_pass().sum()) == passed
    assert wafer.flat == "D"                                   # 180 degrees from the top
    assert 0 <= wafer.x.min() and wafer.x.max() < cols and 0 <= wafer.y.min() and wafer.y.max() < rows
    assert wafer.product == device and wafer.wafer == "QR2352-D5U278-CP-1" and wafer.lot == "QR2352-D5U278-CP"
    assert wafer.stime == "20140611_132900" and wafer.die_size == (0.786, 0.75)
    # Independent count of tested positions straight from the 6-byte records.
    words = np.frombuffer(data, ">u2", count=3 * cols * rows, offset=address).reshape(-1, 3)
    probing_tested = ((words[:, 1] >> 14) == 1) & ((words[:, 0] >> 14) != 0)
    assert int(probing_tested.sum()) == wafer.die_count
    # X increases leftward (direction 1): along a row the prober's X goes down.
    row = wafer.y == wafer.y[0]
    assert np.all(np.diff(wafer.orig_x[row]) < 0)
    assert wafer.extra["positions_marking"] == "3305" and wafer.extra["bin_source"] == "test_result"
    # Test sites: word 3 bits 13-8 of the tested dies, decoded here independently (8 sites).
    site = ((words[probing_tested, 2] >> 8) & 0x3F) + 1
    passing = (words[probing_tested, 0] >> 14) == 1
    expected = {str(s): {"dies": int((site == s).sum()), "pass": int((passing & (site == s)).sum())}
                for s in sorted(set(site.tolist()))}
    assert json.loads(wafer.extra["test_sites"]) == expected and len(expected) == 8
    assert sum(v["dies"] for v in expected.values()) == tested
    # The extension header's fail 1 / fail 2 split (4 bytes at 64 and 68) agrees with the records.
    fail1, fail2 = struct.unpack_from(">II", data, address + 6 * cols * rows + 64)
    assert (wafer.extra["ext_fail1"], wafer.extra["ext_fail2"]) == (str(fail1), str(fail2)) == ("2704", "0")
    assert "fail_kind_mismatch" not in wafer.extra and "ext_start_time" not in wafer.extra   # times left blank


@requires_shared
def test_sample_as_version7_with_extension_records_built_from_its_own_dies():
    """The real file turned into a map version 7 file: extension records appended (4 bytes per
    position: site - 1 in word 1, flags and category - 1 in word 2), each made from the die's
    own record, so the expected result comes from the file itself."""
    data = bytearray(shared_file(*SAMPLE).read_bytes())
    cols, rows = struct.unpack_from(">HH", data, 52)
    n = cols * rows
    words = np.frombuffer(bytes(data), ">u2", count=3 * n, offset=236).reshape(-1, 3).astype(np.int64)
    result, site = words[:, 0] >> 14, (words[:, 2] >> 8) & 0x3F
    category = np.where(result == 1, 0, 4999 + result)               # fail 1 -> 5002, fail 2 -> 5003 (actual)
    correction = (site == 7) & (result == 2)                          # some dies flagged
    w1 = site * 300                                                   # sites 1, 301, ..., 2101: 13 bits
    w2 = (correction.astype(np.int64) << 15) | category
    data[51] = 7                                                      # map version
    struct.pack_into(">H", data, 228, 0b11011)                        # config: + extension die records
    data += np.stack([w1, w2], axis=1).astype(">u2").tobytes()
    [wafer] = read_tsk(bytes(data))
    tested = ((words[:, 1] >> 14) == 1) & (result != 0)
    assert wafer.die_count == int(tested.sum())
    assert Counter(wafer.bin.tolist()) == {1: int((result[tested] == 1).sum()), 5002: int((result[tested] == 2).sum())}
    assert wafer.extra["bin_source"] == "category" and wafer.extra["test_site_source"] == "extension die records"
    sites = json.loads(wafer.extra["test_sites"])
    assert sorted(int(s) for s in sites) == [1 + 300 * s for s in range(8)]
    assert sum(v["dies"] for v in sites.values()) == wafer.die_count
    assert wafer.extra["correction_dies"] == str(int((correction & tested).sum()))


# ---------------------------------------------------------------------------
# Synthetic files
# ---------------------------------------------------------------------------


def header(cols, rows, *, version=0, flat=180, tested=0, passed=0, failed=0, config=0b11, line_count=0, address=236,
           line_address=0, max_categories=64):
    h = HEADER.pack(
        b"OPERATOR".ljust(20), b"DEV-1".ljust(16), 200, 3, 500000, 400000, flat, 0, version, cols, rows, 0,
        b"WAFER-01".ljust(21, b"\0"), 1, b"LOT-7".ljust(18), 1, 7,
        2, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0,
        b"2407151230\0\0", b"2407151300\0\0", b"2407151229\0\0", b"2407151301\0\0",
        b"\0" * 4, b"\0" * 4, b"\0" * 4, 0, tested, passed, failed,
        address, line_count, line_address, config, 1, max_categories,
    )
    assert len(h) == 236
    return h


def record(result, prop, x=0, y=0, category=0, site=0, reprobe=0):
    """One 6-byte die record; negative coordinates set the sign bits."""
    w1 = (result << 14) | (reprobe << 10) | (abs(x) & 0x1FF)
    w2 = (prop << 14) | ((x < 0) << 11) | ((y < 0) << 10) | (abs(y) & 0x1FF)
    w3 = (site << 8) | (category & 0x3F)
    return struct.pack(">HHH", w1, w2, w3)


SKIP, PROBE, MARK = 0, 1, 2
PASS, FAIL1, FAIL2 = 1, 2, 3

# 3 x 2 map, top row then bottom row.
GRID = [
    (SKIP, 0, 0), (PROBE, PASS, 4), (PROBE, FAIL1, 9),
    (MARK, 0, 0), (PROBE, PASS, 4), (PROBE, FAIL2, 10),
]


def make(grid=GRID, cols=3, rows=2, **kw):
    body = b"".join(record(res, prop, x=c - 2, y=-r, category=cat)
                    for i, (prop, res, cat) in enumerate(grid) for r, c in [divmod(i, cols)])
    return header(cols, rows, **kw) + body


def test_categories_become_bins_plus_one_with_verdicts_from_test_results():
    [wafer] = read_tsk(make())
    dies = {(int(x), int(y)): int(b) for x, y, b in zip(wafer.x, wafer.y, wafer.bin)}
    # Stored categories 4, 9, 10 are categories 5, 10, 11 on the prober.
    assert dies == {(1, 0): 5, (2, 0): 10, (1, 1): 5, (2, 1): 11}
    assert wafer.bin_pass == {5: True, 10: False, 11: False}
    assert wafer.extra["bin_source"] == "category"
    assert (wafer.extra["positions_skip"], wafer.extra["positions_marking"]) == ("1", "1")


def test_categories_that_mix_pass_and_fail_fall_back_to_test_results():
    grid = [(PROBE, PASS, 0), (PROBE, FAIL1, 0), (PROBE, FAIL2, 0), (PROBE, 0, 0)]
    [wafer] = read_tsk(make(grid, cols=2, rows=2))
    assert sorted(wafer.bin.tolist()) == [1, 2, 3]      # the untested probing die is not a die
    assert wafer.bin_pass == {1: True, 2: False, 3: False}
    assert wafer.bin_names == {1: "pass", 2: "fail 1", 3: "fail 2"}
    assert wafer.extra["positions_not_tested"] == "1"


def test_sign_bits_give_negative_prober_coordinates():
    [wafer] = read_tsk(make())
    got = sorted(zip(wafer.x.tolist(), wafer.y.tolist(), wafer.orig_x.tolist(), wafer.orig_y.tolist()))
    assert got == [(1, 0, -1, 0), (1, 1, -1, -1), (2, 0, 0, 0), (2, 1, 0, -1)]


@pytest.mark.parametrize(("degrees", "side"), [(0, "U"), (90, "R"), (180, "D"), (270, "L"), (359, "U")])
def test_flat_direction(degrees, side):
    assert read_tsk(make(flat=degrees))[0].flat == side


def test_header_metadata():
    [wafer] = read_tsk(make())
    assert (wafer.product, wafer.lot, wafer.wafer, wafer.stime) == ("DEV-1", "LOT-7", "WAFER-01", "20240715_123000")
    assert wafer.die_size == (5.0, 4.0)
    assert wafer.extra["slot"] == "7" and wafer.extra["x_direction"] == "2"


def ext_header(tested, passed, failed, fail1=None, fail2=0, *, start=b"", end=b"", continuous=0,
               multipass=(0, 0, 0), direct=(0, 0, 0)):
    """The 172-byte extension header (field offsets as jh-n/MapIO ExtendedHeaderInformation.cs)."""
    block = bytearray(172)
    struct.pack_into(">12s12sH", block, 20, start, end, continuous)
    struct.pack_into(">11I", block, 52, tested, passed, failed, failed if fail1 is None else fail1, fail2,
                     *multipass, *direct)
    return bytes(block)


def test_version2_extension_header_and_records_carry_large_categories():
    # config: header, die results, extension header, extension die records
    base = make(version=2, config=0b11011)
    ext_records = b"".join(struct.pack(">HH", (site << 8) | cat, 0) for site, cat in
                           [(0, 0), (1, 199), (2, 200), (0, 0), (3, 199), (1, 250)])
    [wafer] = read_tsk(base + ext_header(70000, 69000, 1000) + ext_records)
    assert sorted(wafer.bin.tolist()) == [200, 200, 201, 251]
    assert wafer.bin_pass == {200: True, 201: False, 251: False}
    assert (wafer.extra["ext_tested"], wafer.extra["ext_passed"]) == ("70000", "69000")
    # Word 1 high byte: the test execution site - 1 (jh-n/MapIO ExtendedTestResultPerDieV2).
    assert json.loads(wafer.extra["test_sites"]) == {"2": {"dies": 2, "pass": 1}, "3": {"dies": 1, "pass": 0},
                                                     "4": {"dies": 1, "pass": 1}}
    assert wafer.extra["test_site_source"] == "extension die records"


@pytest.mark.parametrize(("version", "word2"), [(4, lambda c: c & 0x3FF), (7, lambda c: c & 0x3FFF)])
def test_version4_and_7_extension_categories(version, word2):
    base = make(version=version, config=0b11011)
    cats = [0, 700, 900, 0, 700, 5000 if version == 7 else 1000]
    ext_records = b"".join(struct.pack(">HH", 1, word2(c)) for c in cats)
    [wafer] = read_tsk(base + ext_header(4, 2, 2) + ext_records)
    assert sorted(wafer.bin.tolist()) == sorted([701, 901, 701, cats[5] + 1])


def test_version3_extension_records_are_read_like_version2():
    # Map version 3: "256 multi-sites without extended header information" (larvata/tsk-parser).
    base = make(version=3, config=0b10011)
    ext_records = b"".join(struct.pack(">HH", (site << 8) | cat, 0) for site, cat in
                           [(0, 0), (1, 199), (2, 200), (0, 0), (3, 199), (1, 250)])
    [wafer] = read_tsk(base + ext_records)
    assert sorted(wafer.bin.tolist()) == [200, 200, 201, 251]
    assert "ext_tested" not in wafer.extra and "extension_records" not in wafer.extra


def test_extension_line_category_area_is_located_not_decoded():
    base = make(version=4, config=0b111011)
    ext_records = b"".join(struct.pack(">HH", 1, c) for c in [0, 700, 900, 0, 700, 1000])
    [wafer] = read_tsk(base + ext_header(4, 2, 2) + ext_records + b"\x01" * 16)
    offset = len(base) + 172 + 24
    assert wafer.extra["extension_line_categories"] == (f"present from byte offset {offset} (16 bytes to the "
                                                        f"file's end), not decoded")


def test_undocumented_extension_records_use_6_bit_categories_when_the_header_allows_only_64():
    base = make(version=6, config=0b11011)
    [wafer] = read_tsk(base + ext_header(4, 2, 2) + bytes(4 * 6))
    assert sorted(wafer.bin.tolist()) == [5, 5, 10, 11]
    assert "not decoded" in wafer.extra["extension_records"]
    assert wafer.extra["test_site_source"] == "die records"


def test_undocumented_extension_records_with_more_categories_are_an_unknown_variant():
    base = make(version=6, config=0b11011, max_categories=256)
    offset = len(base) + 172
    with pytest.raises(Rejected) as info:
        read_tsk(base + ext_header(4, 2, 2) + bytes(4 * 6))
    assert info.value.reason == "unknown_variant"
    assert f"extension die records of map version 6 at byte offset {offset}" in info.value.detail
    assert "byte offset 232" in info.value.detail                        # where max categories is


# Map versions 5 and 7 (jh-n/MapIO ExtendedTestResultPerDieV5 / V7): word 1 the site - 1
# (12 / 13 bits), word 2 bit 15 "correction execution die" (SOAK TIME / PMI correction),
# bit 14 "rearranged die" (1/2 index cap), category - 1 in bits 9-0 / 13-0.
@pytest.mark.parametrize(("version", "site_bits", "cat_bits"), [(5, 12, 10), (7, 13, 14)])
def test_version5_and_7_extension_records(version, site_bits, cat_bits):
    top_site, top_cat = (1 << site_bits) - 1, (1 << cat_bits) - 2
    # per position: (site - 1, correction, rearranged, category - 1); positions 0 and 3 are not dies
    ext = [(0, 1, 1, 0), (top_site, 0, 0, 700), (5, 1, 0, top_cat), (0, 1, 1, 0), (5, 0, 1, 700), (0, 1, 1, 1000)]
    records = b"".join(struct.pack(">HH", (0xF000 & ~((1 << site_bits) - 1)) | s, (c << 15) | (r << 14) | cat)
                       for s, c, r, cat in ext)
    base = make(version=version, config=0b11011, max_categories=9999)
    [wafer] = read_tsk(base + ext_header(4, 2, 1, 1, 1) + records)
    dies = {(int(x), int(y)): int(b) for x, y, b in zip(wafer.x, wafer.y, wafer.bin)}
    assert dies == {(1, 0): 701, (2, 0): top_cat + 1, (1, 1): 701, (2, 1): 1001}
    assert json.loads(wafer.extra["test_sites"]) == {"1": {"dies": 1, "pass": 0}, "6": {"dies": 2, "pass": 1},
                                                     str(top_site + 1): {"dies": 1, "pass": 1}}
    assert (wafer.extra["correction_dies"], json.loads(wafer.extra["correction_positions"])) == ("2", [[2, 0], [2, 1]])
    assert (wafer.extra["rearranged_dies"], json.loads(wafer.extra["rearranged_positions"])) == ("2", [[1, 1], [2, 1]])
    assert "extension_records" not in wafer.extra and "fail_kind_mismatch" not in wafer.extra


def test_version5_with_more_than_64_categories_is_read():
    # Was an unknown_variant before the V5 layout was found; the header allows 1024 categories.
    records = b"".join(struct.pack(">HH", 0, c) for c in [0, 900, 1023, 0, 900, 64])
    [wafer] = read_tsk(make(version=5, config=0b11011, max_categories=1024) + ext_header(4, 2, 2) + records)
    assert sorted(wafer.bin.tolist()) == [65, 901, 901, 1024]
    assert wafer.extra["correction_dies"] == "0" and "correction_positions" not in wafer.extra


def test_flagged_positions_above_the_listing_limit_are_counted(monkeypatch):
    monkeypatch.setattr(tsk, "_MAX_LISTED_DIES", 1)
    records = b"".join(struct.pack(">HH", 0, 1 << 15) for _ in range(6))
    [wafer] = read_tsk(make(version=7, config=0b11011) + ext_header(4, 2, 2) + records)
    assert wafer.extra["correction_dies"] == "4"
    assert wafer.extra["correction_positions"] == "not listed: 4 dies (more than 1)"


def test_version4_extension_site():
    # jh-n/MapIO ExtendedTestResultPerDieV4: site - 1 in word 1 bits 8-0.
    records = b"".join(struct.pack(">HH", 0xFE00 | s, 3) for s in [0, 300, 511, 0, 300, 2])
    [wafer] = read_tsk(make(version=4, config=0b11011) + ext_header(4, 2, 2) + records)
    assert json.loads(wafer.extra["test_sites"]) == {"3": {"dies": 1, "pass": 0}, "301": {"dies": 2, "pass": 2},
                                                     "512": {"dies": 1, "pass": 0}}


def test_sites_and_reprobe_results_from_the_six_byte_records():
    body = b"".join([record(SKIP, 0), record(PASS, PROBE, site=0, reprobe=1), record(FAIL1, PROBE, site=3, reprobe=2),
                     record(0, MARK), record(PASS, PROBE, site=3), record(FAIL2, PROBE, site=63, reprobe=3)])
    [wafer] = read_tsk(header(3, 2) + body)
    assert json.loads(wafer.extra["test_sites"]) == {"1": {"dies": 1, "pass": 1}, "4": {"dies": 2, "pass": 1},
                                                     "64": {"dies": 1, "pass": 0}}
    assert wafer.extra["test_site_source"] == "die records"
    assert json.loads(wafer.extra["reprobe_results"]) == {"passed at re-probing": 1, "failed at re-probing": 1,
                                                          "perform fail": 1}
    assert "reprobe_results" not in read_tsk(make())[0].extra           # nothing re-probed: nothing said


def test_extension_header_fields():
    ext = ext_header(4, 2, 2, 1, 1, start=b"2407151230\0\0", end=b"2407151305  ", continuous=3,
                     multipass=(4, 2, 2), direct=(1, 0, 1))
    [wafer] = read_tsk(make(version=2, config=0b1011) + ext)
    got = {k: v for k, v in wafer.extra.items() if k.startswith("ext_")}
    assert got == {"ext_tested": "4", "ext_passed": "2", "ext_failed": "2", "ext_fail1": "1", "ext_fail2": "1",
                   "ext_continuous_fail": "3", "ext_start_time": "2407151230", "ext_end_time": "2407151305",
                   "ext_multipass_tested_pass_fail": "4/2/2", "ext_direct_multipass_tested_pass_fail": "1/0/1"}
    assert "fail_kind_mismatch" not in wafer.extra and "count_mismatch" not in wafer.extra
    # GRID has one fail-1 and one fail-2 die: a header saying (2, 0) is noted, not rejected.
    wrong = read_tsk(make(version=2, config=0b1011) + ext_header(4, 2, 2, 2, 0))[0]
    assert wrong.extra["fail_kind_mismatch"] == "extension header fail 1/fail 2 (2, 0), die records (1, 1)"


def test_line_category_block_is_skipped_before_the_extension_header():
    base = make(version=2, config=0b11111, line_count=6)
    ext_records = b"".join(struct.pack(">HH", c, 0) for c in [0, 30, 40, 0, 30, 41])
    data = base + b"\xee" * 8 * 6 + ext_header(4, 2, 2) + ext_records
    [wafer] = read_tsk(data)
    assert sorted(wafer.bin.tolist()) == [31, 31, 41, 42]
    assert wafer.extra["ext_tested"] == "4"
    assert (wafer.extra["line_category_entries"], wafer.extra["line_category_offset"]) == ("6", str(len(base)))
    assert wafer.extra["extension_header_offset"] == str(len(base) + 48)
    assert json.loads(wafer.extra["line_category_words"]) == [[i, 0xEEEE, 0xEEEE, 0xEEEE, 0xEEEE] for i in range(6)]


def test_line_category_entries_are_kept_as_unnamed_words():
    # Entries that are all zero are left out; the others keep their index and four words, in file order (big-endian).
    entries = [(0, 0, 0, 0), (1, 2, 3, 4), (0, 0, 0, 0), (0, 0, 0, 0xFFFF), (0, 0, 0, 0), (7, 0, 0, 0)]
    base = make(version=2, config=0b111, line_count=6)
    [wafer] = read_tsk(base + b"".join(struct.pack(">4H", *e) for e in entries))
    assert json.loads(wafer.extra["line_category_words"]) == [[1, 1, 2, 3, 4], [3, 0, 0, 0, 0xFFFF], [5, 7, 0, 0, 0]]
    # all zero: nothing listed; more entries than are listed: counted
    [zero] = read_tsk(base + bytes(8 * 6))
    assert "line_category_words" not in zero.extra and zero.extra["line_category_entries"] == "6"
    many = make(version=2, config=0b111, line_count=5000)
    [wafer] = read_tsk(many + struct.pack(">4H", 0, 1, 0, 0) * 5000)
    assert wafer.extra["line_category_words"] == "not listed: 5000 entries not all zero (more than 4096)"


def test_line_category_area_at_the_address_the_header_gives():
    # Three entries placed after 16 filler bytes: the header's address is used, not "right after the records".
    base = make(version=2, config=0b11111, line_count=3, line_address=236 + 36 + 16)
    ext_records = b"".join(struct.pack(">HH", c, 0) for c in [0, 30, 40, 0, 30, 41])
    data = base + b"\0" * 16 + b"\xee" * 8 * 3 + ext_header(4, 2, 2) + ext_records
    [wafer] = read_tsk(data)
    assert sorted(wafer.bin.tolist()) == [31, 31, 41, 42] and wafer.extra["line_category_offset"] == str(236 + 36 + 16)


def test_extension_totals_are_checked_against_the_die_records():
    base = make(version=2, config=0b11011)
    ext_records = b"".join(struct.pack(">HH", c, 0) for c in [0, 3, 9, 0, 3, 10])
    agree = read_tsk(base + ext_header(4, 2, 2) + ext_records)[0]
    assert "count_mismatch" not in agree.extra
    disagree = read_tsk(base + ext_header(70000, 2, 2) + ext_records)[0]
    assert disagree.extra["count_mismatch"] == "extension header tested/pass/fail (70000, 2, 2), die records (4, 2, 2)"


V1_BODY = bytes([(PASS << 6) | 3, 0, (FAIL1 << 6) | 7, 1, 0, 0, (PASS << 6) | 3, 2])


def test_version1_two_byte_records():
    cols, rows = 2, 2
    data = header(cols, rows, version=1) + ext_header(3, 2, 1) + V1_BODY
    [wafer] = read_tsk(data)
    assert {(int(x), int(y)): int(b) for x, y, b in zip(wafer.x, wafer.y, wafer.bin)} == {(0, 0): 4, (1, 0): 8, (1, 1): 4}
    assert wafer.bin_pass == {4: True, 8: False} and wafer.orig_x is None
    # Byte 2 bits 5-0: the test execution site - 1.
    assert json.loads(wafer.extra["test_sites"]) == {"1": {"dies": 1, "pass": 1}, "2": {"dies": 1, "pass": 0},
                                                     "3": {"dies": 1, "pass": 1}}
    assert "reprobe_results" not in wafer.extra                           # no extension records in this file


def test_version1_extension_records_carry_the_reprobing_result():
    # jh-n/MapIO ExtendedTestResultPerDieV1: one byte per position, re-probing result in bits 1-0
    # (the spare bits above are ignored).
    data = header(2, 2, version=1, config=0b10011) + ext_header(3, 2, 1) + V1_BODY + bytes([0xF9, 0x02, 0x03, 0x00])
    [wafer] = read_tsk(data)
    assert json.loads(wafer.extra["reprobe_results"]) == {"passed at re-probing": 1, "failed at re-probing": 1}
    with pytest.raises(Rejected) as info:                                 # announced by bit 4, cut short
        read_tsk(data[:-1])
    assert info.value.reason == "truncated" and "byte offset 416" in info.value.detail


def test_detection():
    assert detect_map_format(make()) == "tsk"
    assert detect_map_format(make()[:-6]) == "tsk"                   # record area cut short: still TSK ...
    with pytest.raises(Rejected) as info:
        read_wafer_maps(make()[:-6])
    assert info.value.reason == "truncated" and "byte offset 236" in info.value.detail   # ... and says where
    assert detect_map_format(make(version=9)) == "tsk"               # an unknown version is named by the reader
    assert detect_map_format(bytes(300)) is None                     # zeros: no map area
    assert detect_map_format(b"\x89PNG\r\n\x1a\n" + bytes(400)) is None


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (make()[:100], "truncated"),
        (header(2, 2, version=1) + ext_header(1, 1, 0) + b"\0" * 7, "truncated"),
        (make()[:-1], "truncated"),
        (make(version=9), "unknown_variant"),
        (header(0, 0), "bad_header"),
        (make(version=2, config=0b1011), "truncated"),               # extension header announced, absent
        (make(version=2, config=0b11011) + ext_header(1, 1, 0), "truncated"),
    ],
)
def test_broken_files_are_rejected_with_a_reason(data, reason):
    with pytest.raises(Rejected) as info:
        read_tsk(data)
    assert info.value.reason == reason


# Every reject of a binary map names the construct and the byte offset where it applies.
@pytest.mark.parametrize(
    ("data", "construct", "offset"),
    [
        (make()[:100], "TSK header", 100),
        (make(version=9), "map version 9", 51),
        (header(0, 0), "map area 0 x 0", 52),
        (make()[:-1], "TSK die records", 236),
        (header(2, 2, version=1) + ext_header(1, 1, 0) + b"\0" * 7, "map version 1 die records", 408),
        (make(version=2, config=0b1011), "TSK extension header", 272),
        (make(version=2, config=0b11011) + ext_header(1, 1, 0), "TSK extension die records", 444),
        (make(version=2, config=0b111, line_count=9), "TSK line-category area", 272),
    ],
)
def test_rejects_name_the_construct_and_its_byte_offset(data, construct, offset):
    with pytest.raises(Rejected) as info:
        read_tsk(data)
    assert construct in info.value.detail and f"byte offset {offset}" in info.value.detail, info.value.detail


@requires_shared
def test_sample_flat_direction_counts_from_the_top():
    """The flat is where the map's outermost row is cut straight: the longest of the four edges.

    The real file says 180 degrees; its bottom row holds about twice the dies of its top row,
    so 180 is the bottom and the angle counts from the top (0 U, 90 R, 180 D, 270 L).
    """
    [wafer] = read_tsk(shared_file(*SAMPLE).read_bytes())
    edges = edge_lengths(wafer)
    assert wafer.flat == "D" and max(edges, key=edges.get) == "D" and edges["D"] > 1.5 * edges["U"]
    assert "count_mismatch" not in wafer.extra                       # the extension totals agree

