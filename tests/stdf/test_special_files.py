"""Files pystdf gets wrong (or cannot read): hand-checked expectations.

* makechip_x.stdf: every V4 record type; ends with a truncated FTR (pystdf raises IndexError)
* STS_001SRAM...: zero-filled / garbage tail after 72 good records (pystdf says nothing)
* in_v3.std: STDF V3 (pystdf raises UnicodeDecodeError): must be refused as V3
* spreadsheet14.stdf: PRRs without PIRs, 2 WIRs, no WRR
* a CPU_TYPE that lies about the byte order (made from real files in memory)
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from failmap_assets.wafer.rejects import Rejected
from failmap_assets.stdf import parse_stdf
from tests.stdf.pystdf_ref import read_pystdf
from tests.support.testdata import requires_shared

pytestmark = requires_shared


def _generic(data, name):
    g = data.tables["generic"]
    return [json.loads(r["fields"]) for r in g.to_pylist() if r["rec_name"] == name]


# ---------------------------------------------------------------- makechip_x


def test_makechip_every_record_type(parsed):
    d = parsed("makechip_x.stdf")
    assert d.complete and not d.issues
    assert d.record_counts == {
        "FAR": 1, "ATR": 1, "MIR": 1, "MRR": 1, "PCR": 1, "HBR": 1, "SBR": 1, "PMR": 4, "PGR": 1, "PLR": 1,
        "RDR": 1, "SDR": 1, "WIR": 1, "WRR": 1, "WCR": 1, "PIR": 1, "PRR": 1, "TSR": 1, "PTR": 1, "MPR": 1,
        "FTR": 2, "BPS": 1, "EPS": 1, "GDR": 2, "DTR": 2,
    }
    assert sum(d.record_counts.values()) == 31        # pystdf stops after 28 with IndexError
    f = d.mir
    assert (f["cpu_type"], f["stdf_ver"], f["setup_t"], f["start_t"], f["stat_num"]) == (2, 4, 1000, 2000, 1)
    assert (f["mode_cod"], f["rtst_cod"], f["prot_cod"], f["burn_tim"], f["cmod_cod"]) == ("A", "B", "C", 100, "D")
    assert (f["lot_id"], f["part_typ"], f["node_nam"], f["tstr_typ"]) == ("lotID", "partType", "nodeName",
                                                                          "testerType")
    assert (f["test_cod"], f["proc_id"], f["serl_num"], f["supr_nam"]) == ("stepCode", "fabID",
                                                                           "testerSerialNumber", "supervisorID")
    assert (f["finish_t"], f["disp_cod"], f["usr_desc"], f["exc_desc"]) == (1000, "C", "lotDesc", "execDesc")
    assert f["sdr"][0]["site_num"] == [0] and f["sdr"][0]["extr_id"] == "equipID"


def test_makechip_arrays_and_generic(parsed):
    d = parsed("makechip_x.stdf")
    assert _generic(d, "RDR") == [{"NUM_BINS": 4, "RTST_BIN": [1, 2, 3, 4]}]
    assert _generic(d, "PGR") == [{"GRP_INDX": 1, "GRP_NAM": "group1", "INDX_CNT": 2, "PMR_INDX": [1, 2]}]
    assert _generic(d, "PLR") == [{"GRP_CNT": 2, "GRP_INDX": [1, 2], "GRP_MODE": [3, 4], "GRP_RADX": [2, 2],
                                   "PGM_CHAR": ["a", "b"], "RTN_CHAR": ["c", "d"], "PGM_CHAL": ["e", "f"],
                                   "RTN_CHAL": ["g", "h"]}]
    # GDR: U1, U2, U4, I1, I2, R4 (0x42040000 = 33.0), Cn -- every value hand-decoded from the bytes
    gdr = _generic(d, "GDR")
    assert gdr[1] == {"FLD_CNT": 7, "GEN_DATA": [[1, 33], [2, 33], [3, 33], [4, 33], [5, 33], [7, 33.0],
                                                 [10, "string"]]}
    assert gdr[0] == {"FLD_CNT": 2, "GEN_DATA": [[6, 33], [8, 44.0]]}
    assert _generic(d, "DTR")[1] == {"TEXT_DAT": "TEXT_DATA : S/N : 30"}
    assert _generic(d, "EPS") == [{}]
    mpr = d.tables["mpr_results"].to_pylist()[0]
    # the test's only record: its RTN_STAT is the test's (null in the row, kept in tests)
    assert (mpr["rtn_icnt"], mpr["rslt_cnt"], mpr["rtn_stat"], mpr["rtn_rslt"]) == (2, 4, None, [1, 2, 3, 4])
    test = [t for t in d.tables["tests"].to_pylist() if t["kind"] == "MPR"][0]
    assert test["rtn_indx"] == [0, 1] and test["units_in"] == "unitsIn" and test["rtn_stat"] == [1, 2]
    w = d.tables["wafers"].to_pylist()[0]
    assert (w["wafer_id"], w["wafr_siz"], w["wf_units"], w["wf_flat"], w["center_x"], w["center_y"]) == \
        ("waferID", 6.0, 1, "L", 1, 2)


def test_makechip_truncated_ftr(parsed):
    """The last FTR stops after TEST_FLG (7 bytes): every later field is null, nothing else is lost."""
    d = parsed("makechip_x.stdf")
    ftr = d.tables["ftr_results"].to_pylist()
    first, last = ftr
    assert (last["test_num"], last["head_num"], last["site_num"], last["test_flg"]) == (3, 2, 1, 0)
    for col in ("opt_flag", "cycl_cnt", "rtn_icnt", "rtn_indx", "rtn_stat", "fail_pin", "vect_nam", "alarm_id",
                "rslt_txt"):
        assert last[col] is None, col
    assert last["override_mask"] == 0           # PATG_NUM / SPIN_MAP inherit the first FTR's defaults
    # the first FTR's arrays are its test's: null in the row, kept in tests
    assert first["rtn_indx"] is None and first["pgm_indx"] is None and first["rtn_icnt"] == 4
    assert first["fail_pin"] == b"\x03\x02\x01\x00"
    ftest = [t for t in d.tables["tests"].to_pylist() if t["kind"] == "FTR"][0]
    assert (ftest["patg_num"], ftest["spin_map"]) == (5, b"\x06\x07\x08")
    assert ftest["rtn_indx"] == [1, 2, 3, 4] and ftest["pgm_indx"] == [3, 4, 5, 6]


def test_makechip_pystdf_prefix_agrees(parsed, pystdf_records):
    """pystdf raises on record 28; the 28 records it does return agree with ours."""
    from failmap_assets.stdf import override_bits
    from tests.stdf.pystdf_ref import compare_records, ours_as_records

    recs, err = pystdf_records("makechip_x.stdf")
    assert err and "IndexError" in err
    assert len(recs) == 28
    ours = ours_as_records(parsed("makechip_x.stdf"), override_bits)
    # drop what pystdf never got to: the truncated FTR, the second GDR and DTR
    ours["FTR"], ours["GDR"], ours["DTR"] = ours["FTR"][:1], ours["GDR"][:1], ours["DTR"][:1]
    assert compare_records(ours, recs) == []


# ---------------------------------------------------------------- corrupt tail


def test_corrupt_tail_salvage(parsed, pystdf_records):
    name = "STS_001SRAM_8435_-30c_Nov_10_23h05m08s.stdf"
    d = parsed(name)
    assert not d.complete
    err = d.errors[0]
    assert (err.offset, err.reason, err.record) == (2180, "zero_filled", 72)
    assert "2180" in str(err)
    # everything before the corruption is kept: FAR, ATR, MIR, SDR, 68 PMR
    assert d.record_counts == {"FAR": 1, "ATR": 1, "MIR": 1, "SDR": 1, "PMR": 68}
    assert d.mir["tstr_typ"] == "93000-SOC" and d.mir["complete"] is False
    assert any("zero_filled at byte 2180" in s for s in d.mir["issues"])
    pmr = _generic(d, "PMR")
    assert len(pmr) == 68
    # the last PMR is itself short: LOG_NAM claims 15 bytes, 8 remain -> it and later fields are null
    assert pmr[-1] == {"PMR_INDX": 68, "CHAN_TYP": 0, "CHAN_NAM": "D1_CBE_M", "PHY_NAM": "", "LOG_NAM": None,
                       "HEAD_NUM": None, "SITE_NUM": None}
    assert any(w.reason == "unparsed_bytes" and w.record == 71 for w in d.warnings)
    # pystdf returns the same 72 records but reports nothing wrong
    recs, perr = pystdf_records(name)
    assert perr is None and len(recs) == 72


def test_zero_padding_is_a_warning(stdf_path, tmp_path):
    data = stdf_path("stdf4j_test.stdf").read_bytes() + bytes(512)
    d = parse_stdf(data)
    assert d.complete and d.record_counts["MRR"] == 1
    assert [w.reason for w in d.warnings] == ["zero_padding"]


# ---------------------------------------------------------------- V3 and friends


def test_v3_refused(stdf_path, pystdf_records):
    with pytest.raises(Rejected) as e:
        parse_stdf(stdf_path("in_v3.std"))
    assert e.value.reason == "stdf_v3"
    assert "V3" in str(e.value) and "V4" in str(e.value)
    _, err = read_pystdf(str(stdf_path("in_v3.std")))
    assert err and "UnicodeDecodeError" in err


@pytest.mark.parametrize("data,reason", [
    (b"", "empty"),
    (b"\x02\x00\x00", "not_stdf"),
    (b"hello world, not stdf", "not_stdf"),
    (b"\x02\x00\x00\x0a\x02\x05", "unsupported_version"),
    (b"\x02\x00\x00\x0a\x02\x03", "stdf_v3"),
    (b"\x07\x07\x00\x0a\x09\x04", "not_stdf"),
])
def test_not_v4_refused(data, reason):
    with pytest.raises(Rejected) as e:
        parse_stdf(data)
    assert e.value.reason == reason


# ---------------------------------------------------------------- no PIRs


def test_spreadsheet14_parts_without_pir(parsed):
    d = parsed("spreadsheet14.stdf")
    parts = d.tables["parts"].to_pylist()
    assert [(p["x_coord"], p["y_coord"], p["hard_bin"], p["soft_bin"]) for p in parts] == \
        [(1, 1, 2, 3), (2, 2, 2, 3), (3, 3, 2, 3), (4, 4, 2, 3)]
    assert all(p["pir_rec_idx"] is None for p in parts)
    assert [p["results"] for p in parts] == [2, 2, 2, 2]        # the two PTRs of head 1 / site 0
    assert [p["wafer_idx"] for p in parts] == [0, 0, 1, 1]      # WAF01, WAF02 (WIR on head 0, no WRR)
    w = d.tables["wafers"].to_pylist()
    assert [x["wafer_id"] for x in w] == ["WAF01", "WAF02"] and all(x["wrr_rec_idx"] is None for x in w)
    # the FTRs are on head 2 / site 1, which no PRR ever closes: orphans, kept with part_idx null
    ftr = d.tables["ftr_results"]
    assert ftr.num_rows == 4 and ftr["part_idx"].null_count == 4
    # test 3's limits change per part: only the later records carry overrides
    ptr = [r for r in d.tables["ptr_results"].to_pylist() if r["test_num"] == 3]
    from failmap_assets.stdf import override_bits
    bits = override_bits("PTR")
    assert [r["override_mask"] == bits["LO_LIMIT"] | bits["HI_LIMIT"] for r in ptr] == [False, True, True, True]
    assert [r["lo_limit"] for r in ptr[1:]] == pytest.approx([1.1, 0.9, 1.05])


# ---------------------------------------------------------------- lying CPU_TYPE


def _strip_file_meta(d):
    return {k: v for k, v in d.tables.items() if k != "files"}


@pytest.mark.parametrize("name,lie", [("sort_4die_20times.stdf", 1), ("a595.stdf", 2),
                                      ("main_Lot_1_Wafer_1_Oct_13_09h33m41s_STDF.stdf", 1)])
def test_cpu_type_lie(name, lie, stdf_path, parsed, tmp_path):
    raw = bytearray(stdf_path(name).read_bytes())
    assert raw[4] != lie
    raw[4] = lie
    d = parse_stdf(bytes(raw), name=name)
    ref = parsed(name)
    assert [w.reason for w in d.warnings][:1] == ["cpu_type_mismatch"]
    assert d.byte_order == ref.byte_order
    for k, t in _strip_file_meta(d).items():
        assert t.equals(ref.tables[k]), k
    assert d.mir["cpu_type"] == lie
    if name.startswith("main_Lot"):
        # pystdf trusts CPU_TYPE and decodes garbage
        p = tmp_path / name
        p.write_bytes(bytes(raw))
        recs, err = read_pystdf(str(p))
        from tests.stdf.pystdf_ref import counts

        assert err is not None or dict(counts(recs)) != ref.record_counts


# ---------------------------------------------------------------- compressed


def test_gzip_file_equals_plain(parsed):
    a, b = parsed("lot2.stdf.gz"), parsed("lot2.stdf")
    assert a.mir["compression"] == "gz"
    assert a.file_id == b.file_id           # id from the decompressed content
    for k, t in _strip_file_meta(a).items():
        assert t.equals(b.tables[k]), k


@pytest.mark.parametrize("kind", ["gz", "bz2", "xz", "zip", "Z"])
def test_compressed_inputs(kind, stdf_path, parsed, tmp_path):
    import bz2
    import gzip
    import lzma
    import zipfile

    import ncompress

    name = "sort_4die_20times.stdf"
    raw = stdf_path(name).read_bytes()
    p = tmp_path / f"{name}.{kind}"
    if kind == "gz":
        p.write_bytes(gzip.compress(raw))
    elif kind == "bz2":
        p.write_bytes(bz2.compress(raw))
    elif kind == "xz":
        p.write_bytes(lzma.compress(raw))
    elif kind == "Z":
        p.write_bytes(ncompress.compress(raw))
    else:
        with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr(name, raw)
    d = parse_stdf(p)
    assert d.mir["compression"] == kind
    ref = parsed(name)
    for k, t in _strip_file_meta(d).items():
        assert t.equals(ref.tables[k]), k


def test_broken_compression_rejected(stdf_path):
    import gzip

    raw = gzip.compress(stdf_path("d10_1.std").read_bytes())
    with pytest.raises(Rejected) as e:
        parse_stdf(raw[: len(raw) // 2])
    assert e.value.reason == "corrupt_archive"


def test_memmap_and_bytes_agree(stdf_path):
    p = stdf_path("bcdm_S11189_c_01.stdf")
    a = parse_stdf(p)
    b = parse_stdf(p.read_bytes(), name=p.name)
    c = parse_stdf(np.frombuffer(p.read_bytes(), dtype=np.uint8), name=p.name)
    for k in a.tables:
        assert a.tables[k].equals(b.tables[k]) and a.tables[k].equals(c.tables[k]), k
