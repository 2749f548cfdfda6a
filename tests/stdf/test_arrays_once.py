"""FTR RTN_INDX / RTN_STAT / PGM_INDX / PGM_STAT and MPR RTN_STAT are stored once per test
(decode/same_arrays.py): null in a result row that holds its test's first record's array,
restored by the ``ftr_effective`` / ``mpr_effective`` views. Lossless: the views give every
record's own arrays, on real files and on records made to hit each case."""

from __future__ import annotations

import numpy as np
import pytest

from failmap_assets.stdf import override_bits, parse_stdf, parse_to_parquet
from failmap_assets.stdf import tables as T
from failmap_assets.stdf.scan import detect, scan
from failmap_assets.stdf.source import open_sources
from failmap_assets.stdf.sql import open_views
from failmap_synth.stdf_records import encode, record
from tests.stdf.test_kernels import _ctx, _same_results
from tests.support.testdata import STDF_DIR, requires_shared

ARRAYS = {"FTR": ("rtn_indx", "rtn_stat", "pgm_indx", "pgm_stat"), "MPR": ("rtn_stat",)}


def _effective(out, file_id: str, kind: str, cols) -> list[tuple]:
    con = open_views(out)
    return con.execute(f"select {', '.join(cols)} from {kind.lower()}_effective where file_id = ? "
                       "order by rec_idx", [file_id]).fetchall()


def _own_arrays(ctx, kind: str) -> list[tuple]:
    """Every record's arrays as the interpreter reads them (no rule applied)."""
    c = ctx.cols(kind)
    return list(zip(*(c[a].to_pylist() for a in ARRAYS[kind])))


@requires_shared
@pytest.mark.parametrize("name", ["bcdm_S11189_c_01.stdf", "spreadsheet14.stdf", "ayad_ws.stdf",
                                  "makechip_x.stdf"])
def test_effective_views_give_every_record_its_arrays(name, tmp_path):
    d = parse_to_parquet(STDF_DIR / name, tmp_path)
    ctx, _ = _ctx(name)
    for kind in ("FTR", "MPR"):
        own = _own_arrays(ctx, kind)
        assert _effective(tmp_path, d.file_ids[0], kind, ARRAYS[kind]) == own, kind
    if name == "bcdm_S11189_c_01.stdf":
        # every FTR and MPR repeats its test's arrays: none is written per row
        t = parse_stdf(STDF_DIR / name).tables
        for kind in ("FTR", "MPR"):
            table = t[f"{kind.lower()}_results"]
            assert table.num_rows > 900 and all(table[a].null_count == table.num_rows for a in ARRAYS[kind])
    if name == "ayad_ws.stdf":
        # the MPRs whose RTN_STAT differs keep it, the others leave it to the test
        mpr = parse_stdf(STDF_DIR / name).tables["mpr_results"]
        assert 0 < mpr["rtn_stat"].null_count < mpr.num_rows


@requires_shared
def test_mpr_effective_defaults_and_text(tmp_path):
    """mpr_effective's default-data columns and names equal the independent plain-Python rule."""
    from tests.stdf.pystdf_ref import ours_as_records

    name = "bcdm_S11189_c_01.stdf"
    d = parse_to_parquet(STDF_DIR / name, tmp_path)
    ref = ours_as_records(parse_stdf(STDF_DIR / name), override_bits)["MPR"]
    got = _effective(tmp_path, d.file_ids[0], "MPR", ("rtn_indx", "lo_limit", "hi_limit", "units", "test_txt"))
    assert got == [(r["RTN_INDX"], r["LO_LIMIT"], r["HI_LIMIT"], r["UNITS"], r["TEST_TXT"]) for r in ref]


# ---------------------------------------------------------------- every case, made by hand

def _ftr(test_num, rtn, stat, pgm, pstat, **kw) -> bytes:
    return encode("FTR", "<", 1, TEST_NUM=test_num, RTN_ICNT=len(rtn), PGM_ICNT=len(pgm), RTN_INDX=rtn,
                  RTN_STAT=stat, PGM_INDX=pgm, PGM_STAT=pstat, **kw).tobytes()


def _mpr(test_num, stat, rslt, **kw) -> bytes:
    return encode("MPR", "<", 1, TEST_NUM=test_num, RTN_ICNT=len(stat), RSLT_CNT=len(rslt), RTN_STAT=stat,
                  RTN_RSLT=rslt, **kw).tobytes()


def _pad_nibble(rec: bytes, at: int) -> bytes:
    """The record with the unused high nibble of body byte ``at`` set (an odd N1 count's pad)."""
    b = bytearray(rec)
    b[4 + at] |= 0xF0
    return bytes(b)


A, S, P, Q = [1, 2, 3], [1, 2, 3], [4, 5], [6, 7]
CASES = [
    # (record, FTR row's arrays in ftr_results: None = the test's)
    (_ftr(7, A, S, P, Q), (None, None, None, None)),                       # the first record: the test's
    (_ftr(7, A, S, P, Q), (None, None, None, None)),                       # equal
    (_ftr(7, [1, 2, 4], S, P, Q), ([1, 2, 4], None, None, None)),          # one array differs: kept
    (_ftr(7, [], [], [], []), ([], [], [], [])),                           # empty vs non-empty: kept as []
    (_pad_nibble(_ftr(7, A, S, P, Q), 45), (None, None, None, None)),      # RTN_STAT's pad nibble ignored
    (_ftr(7, A, [1, 2, 5], P, Q), (None, [1, 2, 5], None, None)),          # the odd count's last nibble counts
    (encode("FTR", "<", 1, TEST_NUM=7, RTN_ICNT=3, PGM_ICNT=2, RTN_INDX=A, RTN_STAT=S, PGM_INDX=P,
            PGM_STAT=Q, tail_from="FAIL_PIN", keep_tail=np.array([False])).tobytes(),
     (A, S, P, Q)),                                                        # ends before the anchor: kept
    (encode("FTR", "<", 1, TEST_NUM=7, RTN_ICNT=3, PGM_ICNT=2, tail_from="RTN_INDX",
            keep_tail=np.array([False])).tobytes(), (None, None, None, None)),   # ends before the arrays
    (_ftr(8, [], [], [], []), (None, None, None, None)),                   # a test whose arrays are empty
    (_ftr(8, [9], [1], [], []), ([9], [1], None, None)),
]
MPR_CASES = [
    (_mpr(9, [1, 2, 3], [0.5, 1.5]), None),
    (_mpr(9, [1, 2, 3], [2.5, 3.5]), None),                               # results differ, states equal
    (_mpr(9, [1, 2, 0], [0.5, 1.5]), [1, 2, 0]),
    (_mpr(9, [], []), []),
    (encode("MPR", "<", 1, TEST_NUM=9, RTN_ICNT=3, RSLT_CNT=2, RTN_STAT=[1, 2, 3], tail_from="RTN_RSLT",
            keep_tail=np.array([False])).tobytes(), [1, 2, 3]),           # ends before RTN_RSLT: kept
]


def _made_file() -> bytes:
    body = [record("FAR", "<", CPU_TYPE=2, STDF_VER=4)]
    body += [r for r, _ in CASES] + [r for r, _ in MPR_CASES]
    return b"".join(body)


def _made_ctx():
    src = open_sources(_made_file(), name="made")[0]
    h = detect(src.data)
    idx = scan(src.data, h.big_endian)
    ctx = T._Ctx(src, h, idx)
    return ctx, T.D.walk(src.data, idx, ctx.counts)


def test_rows_hold_only_arrays_that_differ_from_the_tests(tmp_path):
    for kind in ("FTR", "MPR"):
        _same_results(_made_ctx, kind)          # the kernel and the table-driven path agree
    d = parse_stdf(_made_file(), name="made")
    ftr = d.tables["ftr_results"]
    assert list(zip(*(ftr[a].to_pylist() for a in ARRAYS["FTR"]))) == [want for _, want in CASES]
    assert d.tables["mpr_results"]["rtn_stat"].to_pylist() == [want for _, want in MPR_CASES]
    tests = {(t["kind"], t["test_num"]): t for t in d.tables["tests"].to_pylist()}
    assert [tests[("FTR", 7)][a] for a in ARRAYS["FTR"]] == [A, S, P, Q]
    assert [tests[("FTR", 8)][a] for a in ARRAYS["FTR"]] == [[], [], [], []]
    assert tests[("MPR", 9)]["rtn_stat"] == [1, 2, 3]
    # through Parquet and the views: every record's own arrays
    (tmp_path / "made.stdf").write_bytes(_made_file())
    stats = parse_to_parquet(tmp_path / "made.stdf", tmp_path / "out")
    ctx, _ = _made_ctx()
    for kind in ("FTR", "MPR"):
        assert _effective(tmp_path / "out", stats.file_ids[0], kind, ARRAYS[kind]) == _own_arrays(ctx, kind)
