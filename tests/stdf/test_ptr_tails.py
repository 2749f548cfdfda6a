"""The PTR kernel's fast paths for records whose tail (OPT_FLAG on) repeats: the test's
first record's tail, or a later tail already seen without overrides. Synthetic files
(no shared data needed) mixing tails at random, byte-mutated: kernel == table-driven path."""

from __future__ import annotations

import random

import pytest

from failmap_assets.stdf import decode as D
from failmap_assets.stdf import tables as T
from failmap_assets.stdf.scan import detect, scan
from failmap_assets.stdf.source import open_sources
from failmap_synth.stdf_any import body, record


def _ptr(test, result, opt, tail, txt=None, alarm=""):
    v = {"TEST_NUM": test, "HEAD_NUM": 1, "SITE_NUM": 1, "TEST_FLG": 0, "PARM_FLG": 0, "RESULT": result,
         "TEST_TXT": f"t{test}" if txt is None else txt, "ALARM_ID": alarm}
    if opt is not None:
        v["OPT_FLAG"] = opt
        v.update(tail)
    return v


FULL = {"RES_SCAL": 0, "LLM_SCAL": 0, "HLM_SCAL": 0, "LO_LIMIT": 0.5, "HI_LIMIT": 2.0, "UNITS": "V",
        "C_RESFMT": "", "C_LLMFMT": "", "C_HLMFMT": "", "LO_SPEC": 0.0, "HI_SPEC": 3.0}
# (OPT_FLAG, fields): the first record's tail, "use the defaults" with junk limits (as in
# 11_2014's files), real overrides, a NUL unit, no limits, truncated tails, no OPT_FLAG
VARIANTS = [
    (0x0E, FULL),
    (0x3F, {**FULL, "LO_LIMIT": -1e30, "HI_LIMIT": 1e30}),
    (0x00, {**FULL, "LO_LIMIT": 0.7, "UNITS": "mV"}),
    (0x0E, {**FULL, "UNITS": "\x00"}),
    (0xC0, FULL),
    (0x0E, {k: FULL[k] for k in ("RES_SCAL", "LLM_SCAL", "HLM_SCAL")}),
    (0x3F, {"RES_SCAL": 9}),
    (None, {}),
]


def _records(rng: random.Random, e: str) -> list[bytes]:
    recs = []
    for part in range(8):
        recs.append(record("PIR", {"HEAD_NUM": 1, "SITE_NUM": 1}, e))
        # mostly the same test order part after part (the kernel predicts it), sometimes not
        tests = (1, 2, 3, 4) if rng.random() < 0.6 else rng.sample((1, 2, 3, 4), rng.randint(1, 4))
        for test in tests:
            opt, tail = VARIANTS[0] if part == 0 else rng.choice(VARIANTS)
            # texts of 0..40 bytes, the test's own or not (copied word-wise into the column)
            txt = rng.choice([None, "", f"leakage {test} pin {part}" * rng.randint(0, 2)])
            alarm = rng.choice(["", "", "alarm!" * rng.randint(1, 5)])
            recs.append(record("PTR", _ptr(test, 0.1 * part, opt, tail, txt, alarm), e))
        prr = {"HEAD_NUM": 1, "SITE_NUM": 1, "PART_FLG": 0, "NUM_TEST": len(tests), "HARD_BIN": 1}
        recs.append(record("PRR", prr, e))
    return recs


def _mutated(recs: list[bytes], rng: random.Random, e: str) -> list[bytes]:
    """A few bytes of a few PTR bodies changed (lengths kept): odd tails and strings."""
    out = list(recs)
    ptrs = [i for i, r in enumerate(recs) if r[2:4] == bytes((15, 10))]
    for i in rng.sample(ptrs, 3):
        b = bytearray(out[i])
        for _ in range(rng.randint(1, 3)):
            b[rng.randrange(8, len(b))] = rng.randrange(256) if len(b) > 8 else 0
        out[i] = bytes(b)
    return out


def _both_paths(data: bytes):
    src = open_sources(data, name="synthetic.stdf")[0]
    h = detect(src.data)
    idx = scan(src.data, h.big_endian)
    ctx = T._Ctx(src, h, idx)
    w = D.walk(src.data, idx, ctx.counts)
    return T._ptr_results(ctx, w), T._results(ctx, "PTR", w, generic=True)


def _assert_equal(fast, slow):
    (ft, ftests), (st, stests) = fast, slow
    assert ft.schema.equals(st.schema) and ft.num_rows == st.num_rows
    for col in ft.column_names:
        assert ft[col].combine_chunks().equals(st[col].combine_chunks()), col
    for k in ("keys", "counts", "opt", "dval", "daux"):
        assert (getattr(ftests, k) == getattr(stests, k)).all(), k


def test_repeated_tail_without_overrides():
    """First record full; then 'use the defaults' tails with junk limits: no overrides."""
    e = "<"
    recs = [record("PIR", {"HEAD_NUM": 1, "SITE_NUM": 1}, e)]
    recs += [record("PTR", _ptr(5, 1.0 + i, *VARIANTS[0 if i == 0 else 1]), e) for i in range(4)]
    fast, slow = _both_paths(_file(recs, e))
    table = fast[0]
    assert table["override_mask"].to_pylist() == [0, 0, 0, 0]
    assert table["opt_flag"].to_pylist() == [0x0E, 0x3F, 0x3F, 0x3F]
    _assert_equal(fast, slow)


def _file(recs: list[bytes], e: str) -> bytes:
    far = record("FAR", {"CPU_TYPE": 1 if e == ">" else 2, "STDF_VER": 4}, e)
    return far + b"".join(recs)


@pytest.mark.parametrize("seed", range(12))
def test_mixed_tails_fuzz(seed):
    rng = random.Random(seed)
    e = "<" if seed % 2 else ">"
    recs = _records(rng, e)
    if seed >= 4:
        recs = _mutated(recs, rng, e)
    _assert_equal(*_both_paths(_file(recs, e)))


def test_fixture_tails_differ():
    """The variants really are different tails (else the fuzz would test one path only)."""
    tails = {body("PTR", _ptr(1, 1.0, *v))[14:] for v in VARIANTS}
    assert len(tails) == len(VARIANTS)


def test_index_outside_the_buffer_is_refused_before_reading():
    """The kernel reads without bounds checks: a record index that does not fit the buffer,
    or more PTRs than announced, stops it with a ValueError, never a read past the end."""
    recs = _records(random.Random(1), "<")
    src = open_sources(_file(recs, "<"), name="synthetic.stdf")[0]
    h = detect(src.data)
    idx = scan(src.data, h.big_endian)
    ctx = T._Ctx(src, h, idx)
    w = D.walk(src.data, idx, ctx.counts)
    n = int(ctx.counts[T.R.CODE["PTR"]])
    last = int(ctx.positions("PTR")[-1])
    idx.length[last] += 1000                  # runs past the end of the buffer
    with pytest.raises(ValueError, match="does not fit"):
        D.ptr_decode(src.data, idx, w.rec_part, n, h.big_endian)
    idx.length[last] -= 1000
    with pytest.raises(ValueError, match="does not fit"):
        D.ptr_decode(src.data, idx, w.rec_part, n - 1, h.big_endian)     # fewer rows than PTRs
    chunks, _, _ = D.ptr_decode(src.data, idx, w.rec_part, n, h.big_endian)
    assert sum(c.n for c in chunks) == n
