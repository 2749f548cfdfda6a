"""Wafer maps from STDF: real files against the README facts, retest rules, orientation, pass/fail."""

from __future__ import annotations

import numpy as np
import pytest

from failmap_assets.wafer.model import WaferMap
from failmap_assets.stdf import parse_stdf, wafer_maps
from failmap_synth.stdf_any import stdf
from tests.support.testdata import requires_shared


@requires_shared
@pytest.mark.parametrize("name,n_maps,dies,xr,yr", [
    ("N09D212_1_12_P_ETS060702_04222019.std", 1, 5601, (154, 257), (231, 298)),
    ("a595.stdf", 3, 336, (-2, 9), (14, 25)),
    ("WS_P9AR90_25C_SmartScale1_20191226_23h16m02s.stdf", 1, 64, (4, 25), (4, 16)),
    ("ayad_ws.stdf", 1, 140, (0, 125), (0, 119)),
    ("bcdm_S11189_c_01.stdf", 1, 40, (8, 26), (2, 6)),
    ("main_Lot_1_Wafer_1_Oct_13_09h33m41s_STDF.stdf", 1, 13, (-7, 7), (-4, 0)),
])
def test_real_wafers(name, n_maps, dies, xr, yr, parsed):
    maps = wafer_maps(parsed(name))
    assert len(maps) == n_maps and all(isinstance(m, WaferMap) and m.format == "stdf" for m in maps)
    assert sum(m.rows_read for m in maps) == dies
    x = np.concatenate([m.x for m in maps])
    y = np.concatenate([m.y for m in maps])
    assert (x.min(), x.max()) == xr and (y.min(), y.max()) == yr
    for m in maps:    # each die once
        assert len(set(zip(m.x.tolist(), m.y.tolist()))) == m.die_count


@requires_shared
def test_lot2_orientation_and_retests(parsed):
    d = parsed("lot2.stdf")
    (m,) = wafer_maps(d)
    w = d.tables["wafers"].to_pylist()[0]
    assert (w["pos_x"], w["pos_y"]) == ("R", "U")
    # y up in the file (-45..-3) -> y down in the canonical frame (3..45); the file's values kept
    assert (m.y.min(), m.y.max()) == (3, 45) and (m.orig_y.min(), m.orig_y.max()) == (-45, -3)
    assert np.array_equal(m.orig_x, m.x) and np.array_equal(m.orig_y, -m.y)
    assert m.rows_read == 1569 and m.die_count == 1456 and int(m.retest_count.sum()) == 113
    assert (m.lot, m.wafer, m.product) == (d.mir["lot_id"], w["wafer_id"], d.mir["part_typ"])
    assert m.extra["wcr_pos_y"] == "U"
    assert m.bin_pass[1] is True and not any(v for b, v in m.bin_pass.items() if b != 1)


@requires_shared
def test_no_wir_and_final_test_files(parsed):
    (m,) = wafer_maps(parsed("main_Lot_1_Wafer_1_Oct_13_09h33m41s_STDF.stdf"))
    assert m.lot and m.die_count == 13
    assert wafer_maps(parsed("rabbi.stdf")) == []           # X/Y all -32768: no map
    assert wafer_maps(parsed("sort_4die_20times.stdf")) == []


def _prr(x, y, hb, flg=0, site=1):
    return ("PRR", {"HEAD_NUM": 1, "SITE_NUM": site, "PART_FLG": flg, "NUM_TEST": 0, "HARD_BIN": hb,
                    "SOFT_BIN": hb, "X_COORD": x, "Y_COORD": y, "TEST_T": 0, "PART_ID": "", "PART_TXT": "",
                    "PART_FIX": b""})


def _file(prrs, wcr=None, hbr=()):
    recs = []
    if wcr:
        recs.append(("WCR", wcr))
    recs.append(("WIR", {"HEAD_NUM": 1, "SITE_GRP": 255, "START_T": 1_600_000_000, "WAFER_ID": "W7"}))
    for p in prrs:
        recs += [("PIR", {"HEAD_NUM": 1, "SITE_NUM": 1}), p]
    recs.append(("WRR", {"HEAD_NUM": 1, "SITE_GRP": 255, "FINISH_T": 0, "PART_CNT": len(prrs)}))
    for b, pf in hbr:
        recs.append(("HBR", {"HEAD_NUM": 255, "SITE_NUM": 0, "HBIN_NUM": b, "HBIN_CNT": 0, "HBIN_PF": pf,
                             "HBIN_NAM": f"bin{b}"}))
    return parse_stdf(stdf(recs))


FAIL, PASS = 0b1000, 0


@pytest.mark.parametrize("rule,expected_bin", [("last", 7), ("first", 5), ("best", 1), ("worst", 7)])
def test_retest_rules(rule, expected_bin):
    d = _file([_prr(0, 0, 5, FAIL), _prr(0, 0, 1, PASS), _prr(0, 0, 7, FAIL), _prr(1, 0, 1, PASS)])
    (m,) = wafer_maps(d, rule)
    by = {(x, y): (b, r) for x, y, b, r in zip(m.x.tolist(), m.y.tolist(), m.bin.tolist(), m.retest_count.tolist())}
    assert by == {(0, 0): (expected_bin, 2), (1, 0): (1, 0)}
    assert m.rows_read == 4 and m.wafer == "W7" and m.stime == "20200913_122640"


def test_supersede_bits_are_honoured():
    # bit 1 (supersedes same X/Y) on the second test only: the third test does not replace it
    d = _file([_prr(0, 0, 5, FAIL), _prr(0, 0, 1, PASS | 0b10), _prr(0, 0, 7, FAIL)])
    (m,) = wafer_maps(d)
    assert m.bin.tolist() == [1] and m.extra["supersede_bits"] == "honoured"
    (m,) = wafer_maps(d, "first")
    assert m.bin.tolist() == [5]


def test_orientation_and_flat():
    wcr = {"WAFR_SIZ": 200.0, "DIE_HT": 2.0, "DIE_WID": 4.0, "WF_UNITS": 3, "WF_FLAT": "R", "CENTER_X": 10,
           "CENTER_Y": -3, "POS_X": "L", "POS_Y": "U"}
    d = _file([_prr(3, 4, 1), _prr(-2, 5, 1)], wcr)
    (m,) = wafer_maps(d)
    assert m.x.tolist() == [-3, 2] and m.y.tolist() == [-4, -5]
    assert m.orig_x.tolist() == [3, -2] and m.orig_y.tolist() == [4, 5]
    assert m.flat == "R" and m.die_size == (4.0, 2.0) and m.origin == (-10, 3)
    assert (m.extra["wcr_pos_x"], m.extra["wcr_pos_y"], m.extra["wcr_wf_flat"]) == ("L", "U", "R")
    d = _file([_prr(3, 4, 1)], {**wcr, "POS_X": "R", "POS_Y": "D", "WF_FLAT": " ", "WF_UNITS": 1})
    (m,) = wafer_maps(d)
    assert m.x.tolist() == [3] and m.y.tolist() == [4] and m.orig_x is None and m.flat == "D"
    assert m.die_size == pytest.approx((101.6, 50.8)) and m.extra["flat_unknown"] == "true"


def test_pass_fail_from_part_flags_else_hbr():
    no_verdict = 0b1_0000
    d = _file([_prr(0, 0, 1, PASS), _prr(1, 0, 3, FAIL), _prr(2, 0, 9, no_verdict), _prr(3, 0, 8, no_verdict)],
              hbr=[(9, "P"), (8, "F"), (3, "P")])
    (m,) = wafer_maps(d)
    assert m.bin_pass == {1: True, 3: False, 8: False, 9: True}    # PART_FLG beats HBR for bin 3
    assert m.is_pass().tolist() == [True, False, True, False]
    assert m.bin_names == {9: "bin9", 8: "bin8", 3: "bin3"}


def test_missing_coordinates_skipped():
    d = _file([_prr(-32768, -32768, 1), _prr(-32768, 5, 1), _prr(0, 0, 2)])
    (m,) = wafer_maps(d)
    assert m.die_count == 1 and m.rows_read == 1


def test_bad_rule():
    with pytest.raises(ValueError):
        wafer_maps(_file([_prr(0, 0, 1)]), "median")
