"""The record table, every V4-2007 record type, both byte orders, truncation, the default-data rule.

Synthetic records are written by failmap_synth/stdf_any.py from the same record table and
checked against values written by hand here.
"""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from failmap_assets.stdf import override_bits, parse_stdf
from failmap_assets.stdf import records as R
from failmap_synth.stdf_any import body, far, record, stdf

SPEC_TYPES = {
    "FAR": (0, 10), "ATR": (0, 20), "VUR": (0, 30), "MIR": (1, 10), "MRR": (1, 20), "PCR": (1, 30),
    "HBR": (1, 40), "SBR": (1, 50), "PMR": (1, 60), "PGR": (1, 62), "PLR": (1, 63), "RDR": (1, 70),
    "SDR": (1, 80), "PSR": (1, 90), "NMR": (1, 91), "CNR": (1, 92), "SSR": (1, 93), "CDR": (1, 94),
    "WIR": (2, 10), "WRR": (2, 20), "WCR": (2, 30), "PIR": (5, 10), "PRR": (5, 20), "TSR": (10, 30),
    "PTR": (15, 10), "MPR": (15, 15), "FTR": (15, 20), "STR": (15, 30), "BPS": (20, 10), "EPS": (20, 20),
    "GDR": (50, 10), "DTR": (50, 30),
}


def test_record_table_is_complete_and_consistent():
    assert R.self_check() == []
    assert {r.name: r.key for r in R.RECORDS} == SPEC_TYPES
    # field counts per the V4 spec (without the header)
    n = {r.name: len(r.fields) for r in R.RECORDS}
    assert (n["MIR"], n["PRR"], n["PTR"], n["MPR"], n["FTR"], n["TSR"], n["SDR"], n["WRR"]) == \
        (38, 12, 20, 27, 28, 16, 20, 14)


def _generic(d, name):
    return [json.loads(r["fields"]) for r in d.tables["generic"].to_pylist() if r["rec_name"] == name]


V2007 = [
    ("PSR", {"CONT_FLG": 0, "PSR_INDX": 7, "PSR_NAM": "seq", "OPT_FLG": 3, "TOTP_CNT": 2, "LOCP_CNT": 2,
             "PAT_BGN": [0, 2**40], "PAT_END": [99, 2**40 + 5], "PAT_FILE": ["a.pat", "b.pat"],
             "PAT_LBL": ["A", "B"], "FILE_UID": ["u1", "u2"], "ATPG_DSC": ["", "d"], "SRC_ID": ["s", ""]}),
    ("NMR", {"CONT_FLG": 0, "TOTM_CNT": 3, "LOCM_CNT": 3, "PMR_INDX": [1, 2, 300], "ATPG_NAM": ["x", "y", "z"]}),
    ("CNR", {"CHN_NUM": 4, "BIT_POS": 70000, "CELL_NAM": "top/u1/reg[3]" * 30}),
    ("SSR", {"SSR_NAM": "scan", "CHN_CNT": 2, "CHN_LIST": [1, 2]}),
    ("CDR", {"CONT_FLG": 0, "CDR_INDX": 1, "CHN_NAM": "c1", "CHN_LEN": 100, "SIN_PIN": 3, "SOUT_PIN": 4,
             "MSTR_CNT": 1, "M_CLKS": [9], "SLAV_CNT": 2, "S_CLKS": [10, 11], "INV_VAL": 0, "LST_CNT": 2,
             "CELL_LST": ["c0", "c1"]}),
    ("STR", {"CONT_FLG": 0, "TEST_NUM": 55, "HEAD_NUM": 1, "SITE_NUM": 2, "PSR_REF": 7, "TEST_FLG": 128,
             "LOG_TYP": "log", "TEST_TXT": "scan1", "ALARM_ID": "", "PROG_TXT": "", "RSLT_TXT": "r",
             "Z_VAL": 1, "FMU_FLG": 0, "MASK_MAP": (3, b"\x05"), "FAL_MAP": (0, b""), "CYC_CNT_T": 2**33,
             "TOTF_CNT": 5, "TOTL_CNT": 5, "CYC_BASE": 10, "BIT_BASE": 20, "COND_CNT": 1, "LIM_CNT": 1,
             "CYC_SIZE": 8, "PMR_SIZE": 2, "CHN_SIZE": 1, "PAT_SIZE": 4, "BIT_SIZE": 2, "U1_SIZE": 1,
             "U2_SIZE": 4, "U3_SIZE": 8, "UTX_SIZE": 3, "CAP_BGN": 0, "LIM_INDX": [1], "LIM_SPEC": [100],
             "COND_LST": ["VDD=1.2"], "CYC_CNT": 2, "CYC_OFST": [1, 2**40], "PMR_CNT": 2, "PMR_INDX": [1, 65535],
             "CHN_CNT": 1, "CHN_NUM": [200], "EXP_CNT": 2, "EXP_DATA": [0, 1], "CAP_CNT": 1, "CAP_DATA": [1],
             "NEW_CNT": 0, "NEW_DATA": [], "PAT_CNT": 1, "PAT_NUM": [70000], "BPOS_CNT": 1, "BIT_POS": [300],
             "USR1_CNT": 1, "USR1": [255], "USR2_CNT": 1, "USR2": [2**31], "USR3_CNT": 1, "USR3": [2**63],
             "TXT_CNT": 2, "USER_TXT": ["abc", "de "]}),
]


@pytest.mark.parametrize("e", ["<", ">"])
def test_v4_2007_records(e):
    recs = [record("VUR", {"UPD_CNT": 2, "UPD_NAM": ["V4-2007", "Scan:2007.1"]}, e),
            record("VUR", {"UPD_NAM": "V4-2007"}, e, alt=True)]
    recs += [record("PIR", {"HEAD_NUM": 1, "SITE_NUM": 2}, e)]
    recs += [record(n, v, e) for n, v in V2007]
    recs += [record("PRR", {"HEAD_NUM": 1, "SITE_NUM": 2, "PART_FLG": 0, "NUM_TEST": 1, "HARD_BIN": 1,
                            "SOFT_BIN": 1, "X_COORD": 0, "Y_COORD": 0}, e)]
    d = parse_stdf(stdf(recs, e))
    assert d.complete and not d.issues, d.issues
    vur = _generic(d, "VUR")
    assert vur[0] == {"UPD_CNT": 2, "UPD_NAM": ["V4-2007", "Scan:2007.1"], "layout": "count+names"}
    assert vur[1] == {"UPD_CNT": None, "UPD_NAM": ["V4-2007"], "layout": "single name"}
    for name, values in V2007:
        got = _generic(d, name)[0]
        for k, v in values.items():
            if isinstance(v, tuple):                       # Dn: (bits, bytes) -> hex of the bytes
                v = v[1].hex()
            assert got[k] == v, (name, k)
    g = d.tables["generic"].to_pylist()
    assert [r["part_idx"] for r in g if r["rec_name"] == "STR"] == [0]   # STR belongs to the part


def test_byte_orders_agree():
    def make(e):
        return stdf([record("PIR", {"HEAD_NUM": 1, "SITE_NUM": 1}, e),
                     record("PTR", _ptr(5, 1.25, opt=0, lo=-1.0, hi=2.0), e),
                     record("MPR", {"TEST_NUM": 9, "HEAD_NUM": 1, "SITE_NUM": 1, "TEST_FLG": 0, "PARM_FLG": 0,
                                    "RTN_ICNT": 3, "RSLT_CNT": 2, "RTN_STAT": [1, 2, 3], "RTN_RSLT": [0.5, -7.0],
                                    "TEST_TXT": "m", "ALARM_ID": "", "OPT_FLAG": 0, "RES_SCAL": 0,
                                    "LLM_SCAL": 0, "HLM_SCAL": 0, "LO_LIMIT": 0.0, "HI_LIMIT": 1.0,
                                    "START_IN": 1.0, "INCR_IN": 0.5, "RTN_INDX": [4, 5, 6]}, e),
                     record("GDR", {"FLD_CNT": 5, "GEN_DATA": [(2, 513), (0, None), (6, -5), (8, 2.5),
                                                                (12, (9, b"\x01\x02"))]}, e),
                     record("PRR", {"HEAD_NUM": 1, "SITE_NUM": 1, "PART_FLG": 8, "NUM_TEST": 2, "HARD_BIN": 3,
                                    "SOFT_BIN": 4, "X_COORD": -3, "Y_COORD": 7, "TEST_T": 5, "PART_ID": "p1",
                                    "PART_TXT": "", "PART_FIX": b"\x01"}, e)], e)

    le, be = parse_stdf(make("<")), parse_stdf(make(">"))
    assert le.byte_order == "little" and be.byte_order == "big"
    for k in le.tables:
        if k != "files":
            assert le.tables[k].equals(be.tables[k]), k
    assert _generic(le, "GDR")[0]["GEN_DATA"] == [[2, 513], [0, None], [6, -5], [8, 2.5],
                                                  [12, {"bits": 9, "hex": "0102"}]]
    m = le.tables["mpr_results"].to_pylist()[0]
    t = [x for x in le.tables["tests"].to_pylist() if x["kind"] == "MPR"][0]
    # the test's first record: its RTN_STAT is kept in tests (null in the row)
    assert (m["rtn_stat"], t["rtn_stat"], m["rtn_rslt"]) == (None, [1, 2, 3], [0.5, -7.0])
    p = le.tables["parts"].to_pylist()[0]
    assert (p["x_coord"], p["y_coord"], p["hard_bin"], p["part_flg"], p["part_fix"]) == (-3, 7, 3, 8, b"\x01")


def test_unknown_and_reserved_types_kept_raw():
    data = stdf([record("X", raw=b"\x01\x02\x03", typ=99, sub=7), record("X", raw=b"img", typ=180, sub=1),
                 record("X", raw=b"", typ=181, sub=9)])
    d = parse_stdf(data)
    g = [r for r in d.tables["generic"].to_pylist() if r["fields"] is None]
    assert [(r["rec_name"], r["rec_typ"], r["rec_sub"], r["raw"]) for r in g] == [
        ("UNKNOWN", 99, 7, b"\x01\x02\x03"), ("RESERVED_IMAGE", 180, 1, b"img"), ("RESERVED_IG900", 181, 9, b"")]
    assert d.record_counts["UNKNOWN(99,7)"] == 1 and d.complete


def test_text_encodings():
    d = parse_stdf(stdf([record("DTR", {"TEXT_DAT": b"25\xb0C"}), record("DTR", {"TEXT_DAT": "5 µA".encode()}),
                         record("DTR", {"TEXT_DAT": b"\xff\xfe"})]))
    assert [x["TEXT_DAT"] for x in _generic(d, "DTR")] == ["25°C", "5 µA", "ÿþ"]


# ---------------------------------------------------------------- truncation


def _ptr(test, result, opt=None, lo=None, hi=None, units=None, lo_spec=None, hi_spec=None, txt="t",
         scal=(0, 0, 0), head=1, site=1, flg=0):
    v = {"TEST_NUM": test, "HEAD_NUM": head, "SITE_NUM": site, "TEST_FLG": flg, "PARM_FLG": 0,
         "RESULT": result, "TEST_TXT": txt, "ALARM_ID": ""}
    if opt is None:
        return v
    v.update({"OPT_FLAG": opt, "RES_SCAL": scal[0], "LLM_SCAL": scal[1], "HLM_SCAL": scal[2]})
    for k, x in (("LO_LIMIT", lo), ("HI_LIMIT", hi), ("UNITS", units), ("C_RESFMT", ""), ("C_LLMFMT", ""),
                 ("C_HLMFMT", ""), ("LO_SPEC", lo_spec), ("HI_SPEC", hi_spec)):
        if x is None:
            break
        v[k] = x
    return v


def test_every_truncation_of_a_ptr():
    """Cut a full PTR at every length: the decoded fields are exactly those that fit."""
    full = _ptr(7, 1.5, opt=0, lo=0.5, hi=2.5, units="V", lo_spec=0.0, hi_spec=3.0, txt="vdd")
    b = body("PTR", full)
    sizes = []
    acc = 0
    for f in R.BY_NAME["PTR"].fields:
        acc += len(body("PTR", {k: full[k] for k in list(full)[: R.BY_NAME["PTR"].index(f.name) + 1]})) - acc
        sizes.append(acc)
    for cut in range(len(b) + 1):
        raw = struct.pack("<HBB", cut, 15, 10) + b[:cut]
        d = parse_stdf(stdf([record("PIR", {"HEAD_NUM": 1, "SITE_NUM": 1}), raw]))
        row = d.tables["ptr_results"].to_pylist()[0]
        for f, end in zip(R.BY_NAME["PTR"].fields, sizes):
            if f.default is not None or f.name == "TEST_TXT":
                continue
            assert (row[f.column] is not None) == (end <= cut), (cut, f.name)


# ---------------------------------------------------------------- default data


def _effective(d, kind="PTR"):
    bits = override_bits(kind)
    tests = {(t["kind"], t["test_num"]): t for t in d.tables["tests"].to_pylist()}
    out = []
    for r in d.tables[f"{kind.lower()}_results"].to_pylist():
        t = tests[(kind, r["test_num"])]
        out.append({f.name: (r[f.column] if r["override_mask"] & bits[f.name] else t[f.column])
                    for f in R.BY_NAME[kind].fields if f.default is not None})
    return out


def test_default_data_rule():
    pir = ("PIR", {"HEAD_NUM": 1, "SITE_NUM": 1})
    recs = [
        pir,
        ("PTR", _ptr(1, 1.0, opt=0b1100, lo=0.5, hi=2.0, units="V", scal=(3, 3, 3))),  # defaults, no spec
        ("PTR", _ptr(1, 1.1)),                                  # truncated after ALARM_ID: all defaults
        ("PTR", _ptr(1, 1.2, opt=0b0011_0001, lo=9.0, hi=9.0, units="")),   # bits 0, 4, 5: use defaults
        ("PTR", _ptr(1, 1.3, opt=0b1100_0000, lo=9.0, hi=9.0, units="")),   # bits 6, 7: no limits
        ("PTR", _ptr(1, 1.4, opt=0, lo=0.7, hi=2.0, units="mV", lo_spec=0.1, hi_spec=5.0)),  # overrides
        ("PTR", _ptr(1, 1.5, opt=0, lo=0.5, hi=2.0, units="\x00")),        # NUL string: units -> null
        ("PTR", {**_ptr(1, 1.6), "OPT_FLAG": 0, "RES_SCAL": -2}),    # ends after RES_SCAL: only it overrides
        ("PRR", {"HEAD_NUM": 1, "SITE_NUM": 1, "PART_FLG": 0, "NUM_TEST": 7, "HARD_BIN": 1}),
    ]
    d = parse_stdf(stdf(recs))
    eff = _effective(d)
    base = {"RES_SCAL": 3, "LLM_SCAL": 3, "HLM_SCAL": 3, "LO_LIMIT": 0.5, "HI_LIMIT": 2.0, "UNITS": "V",
            "C_RESFMT": "", "C_LLMFMT": "", "C_HLMFMT": "", "LO_SPEC": None, "HI_SPEC": None}
    assert eff[0] == base
    assert eff[1] == base
    assert eff[2] == base
    assert eff[3] == {**base, "RES_SCAL": 0, "LLM_SCAL": None, "HLM_SCAL": None, "LO_LIMIT": None,
                      "HI_LIMIT": None}
    assert eff[4] == {**base, "LO_LIMIT": pytest.approx(0.7), "UNITS": "mV", "LLM_SCAL": 0, "HLM_SCAL": 0,
                      "RES_SCAL": 0, "LO_SPEC": pytest.approx(0.1), "HI_SPEC": 5.0}
    assert eff[5] == {**base, "UNITS": None, "RES_SCAL": 0, "LLM_SCAL": 0, "HLM_SCAL": 0}
    assert eff[6] == {**base, "RES_SCAL": -2}
    masks = d.tables["ptr_results"]["override_mask"].to_pylist()
    assert masks[0] == masks[1] == masks[2] == 0 and all(m for m in masks[3:])
    t = d.tables["tests"].to_pylist()[0]
    assert (t["test_num"], t["test_txt"], t["results"], t["opt_flag"]) == (1, "t", 7, 0b1100)


def test_multi_site_parts():
    recs = [("PIR", {"HEAD_NUM": 1, "SITE_NUM": 1}), ("PIR", {"HEAD_NUM": 1, "SITE_NUM": 2}),
            ("PTR", _ptr(1, 10.0, opt=0, lo=0.0, hi=1.0, site=2)), ("PTR", _ptr(1, 20.0, site=1)),
            ("PTR", _ptr(2, 30.0, site=2)),
            ("PRR", {"HEAD_NUM": 1, "SITE_NUM": 2, "PART_FLG": 8, "NUM_TEST": 2, "HARD_BIN": 5}),
            ("PTR", _ptr(2, 40.0, site=1)),
            ("PRR", {"HEAD_NUM": 1, "SITE_NUM": 1, "PART_FLG": 0, "NUM_TEST": 2, "HARD_BIN": 1}),
            ("PTR", _ptr(3, 50.0, site=3)),       # no PIR for site 3 and no PRR: orphan
            ("PIR", {"HEAD_NUM": 1, "SITE_NUM": 1})]  # never closed: a part without PRR
    d = parse_stdf(stdf(recs))
    parts = d.tables["parts"].to_pylist()
    assert [(p["site_num"], p["hard_bin"], p["results"]) for p in parts] == [(2, 5, 2), (1, 1, 2), (1, None, 0)]
    assert parts[2]["prr_rec_idx"] is None and parts[2]["pir_rec_idx"] is not None
    ptr = d.tables["ptr_results"].to_pylist()
    assert [(r["result"], r["part_idx"]) for r in ptr] == [(10.0, 0), (20.0, 1), (30.0, 0), (40.0, 1),
                                                           (50.0, None)]


def test_mpr_and_ftr_defaults():
    mpr = {"TEST_NUM": 9, "HEAD_NUM": 1, "SITE_NUM": 1, "TEST_FLG": 0, "PARM_FLG": 0, "RTN_ICNT": 2,
           "RSLT_CNT": 2, "RTN_STAT": [0, 1], "RTN_RSLT": [0.5, 0.25], "TEST_TXT": "m", "ALARM_ID": "",
           "OPT_FLAG": 0, "RES_SCAL": 0, "LLM_SCAL": 0, "HLM_SCAL": 0, "LO_LIMIT": 0.0, "HI_LIMIT": 1.0,
           "START_IN": 1.0, "INCR_IN": 0.5, "RTN_INDX": [4, 5], "UNITS": "A", "UNITS_IN": "V"}
    later = {k: mpr[k] for k in list(mpr)[:11]}
    ftr = {"TEST_NUM": 3, "HEAD_NUM": 1, "SITE_NUM": 1, "TEST_FLG": 0, "OPT_FLAG": 0xFF, "CYCL_CNT": 0,
           "REL_VADR": 0, "REPT_CNT": 0, "NUM_FAIL": 0, "XFAIL_AD": 0, "YFAIL_AD": 0, "VECT_OFF": 0,
           "RTN_ICNT": 0, "PGM_ICNT": 0, "RTN_INDX": [], "RTN_STAT": [], "PGM_INDX": [], "PGM_STAT": [],
           "FAIL_PIN": (0, b""), "VECT_NAM": "", "TIME_SET": "", "OP_CODE": "", "TEST_TXT": "f", "ALARM_ID": "",
           "PROG_TXT": "", "RSLT_TXT": "", "PATG_NUM": 2, "SPIN_MAP": (4, b"\x0f")}
    ftr2 = {**ftr, "PATG_NUM": 255, "SPIN_MAP": (0, b"")}    # blank: inherit
    ftr3 = {**ftr, "PATG_NUM": 7}
    d = parse_stdf(stdf([("PIR", {"HEAD_NUM": 1, "SITE_NUM": 1}), ("MPR", mpr), ("MPR", later),
                         ("MPR", {**later, "RTN_ICNT": 0, "RSLT_CNT": 0, "RTN_STAT": [], "RTN_RSLT": []}),
                         ("FTR", ftr), ("FTR", ftr2), ("FTR", ftr3),
                         ("PRR", {"HEAD_NUM": 1, "SITE_NUM": 1, "PART_FLG": 0, "NUM_TEST": 4, "HARD_BIN": 1})]))
    e = _effective(d, "MPR")
    assert e[1]["RTN_INDX"] == [4, 5] and e[1]["UNITS_IN"] == "V" and e[1]["START_IN"] == 1.0
    assert e[2] == e[0]
    f = _effective(d, "FTR")
    assert f == [{"PATG_NUM": 2, "SPIN_MAP": b"\x0f"}, {"PATG_NUM": 2, "SPIN_MAP": b"\x0f"},
                 {"PATG_NUM": 7, "SPIN_MAP": b"\x0f"}]


def test_far_only_and_header_edge_cases():
    d = parse_stdf(far("<"))
    assert d.complete and d.record_counts == {"FAR": 1}
    assert d.tables["parts"].num_rows == 0 and d.tables["files"].num_rows == 1
    d = parse_stdf(far(">") + b"\x00")
    assert [e.reason for e in d.errors] == ["truncated_header"]
    d = parse_stdf(far("<") + struct.pack("<HBB", 500, 15, 10) + b"\x00" * 10)
    assert [(e.reason, e.offset) for e in d.errors] == [("record_past_end", 6)]
    assert "claims 500 bytes but only 10 remain" in d.errors[0].detail
    # a FAR whose REC_LEN is not 2: byte order from CPU_TYPE, with a warning
    d = parse_stdf(struct.pack("<HBBBB", 3, 0, 10, 2, 4) + b"\x00")
    assert d.byte_order == "little" and d.warnings[0].reason == "far_length"


def test_readonly_buffers_only():
    """Kernels get read-only arrays (one Numba specialisation, cached)."""
    from failmap_assets.stdf.source import as_array

    a = as_array(bytearray(b"abc"))
    assert not a.flags.writeable and a.dtype == np.uint8


def test_gdr_json_text_exact():
    """GEN_DATA text laid out by the GDR kernel: escapes as json.dumps(ensure_ascii=False),
    Latin-1 bytes transcoded, floats in Arrow's shortest form (NaN / Infinity as strings),
    Bn as hex, Dn as bits + hex, pads as null, signed / unsigned extremes."""
    nasty = b'q"b\\s\x01\x08\t\n\x0c\r\x1f\x7f\xe9'     # quote, backslash, controls, DEL, Latin-1 e-acute
    gen = [(10, nasty), (0, None), (1, 255), (3, 4294967295), (6, -2147483648), (4, -128), (13, 9),
           (8, float("nan")), (8, float("-inf")), (7, 1.5), (8, 47135.0), (11, b"\x00\xff"), (12, (12, b"\xab\x0c")),
           (10, "")]
    d = parse_stdf(stdf([record("GDR", {"FLD_CNT": len(gen), "GEN_DATA": gen}),
                         record("GDR", {"FLD_CNT": 0, "GEN_DATA": []})]))
    texts = [r["fields"] for r in d.tables["generic"].to_pylist() if r["rec_name"] == "GDR"]
    want_str = json.dumps(nasty.decode("latin-1"), ensure_ascii=False)
    assert texts[0] == ('{"FLD_CNT": 14, "GEN_DATA": [[10, ' + want_str + '], [0, null], [1, 255], [3, 4294967295], '
                        '[6, -2147483648], [4, -128], [13, 9], [8, "NaN"], [8, "-Infinity"], [7, 1.5], [8, 47135], '
                        '[11, "00ff"], [12, {"bits": 12, "hex": "ab0c"}], [10, ""]]}')
    assert texts[1] == '{"FLD_CNT": 0, "GEN_DATA": []}'
    assert json.loads(texts[0])["GEN_DATA"][0][1] == nasty.decode("latin-1")
