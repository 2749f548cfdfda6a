"""The specialised PTR kernel against the table-driven path, chunking, and the scan kernel."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from failmap_assets.stdf import decode as D
from failmap_assets.stdf import tables as T
from failmap_assets.stdf.scan import detect, scan
from failmap_assets.stdf.source import open_sources
from tests.stdf.conftest import ALL_V4_FILES, float_bits
from tests.support.testdata import STDF_DIR, requires_shared

pytestmark = requires_shared


def _ctx(name):
    src = open_sources(STDF_DIR / name)[0]
    h = detect(src.data)
    idx = scan(src.data, h.big_endian)
    ctx = T._Ctx(src, h, idx)
    return ctx, D.walk(src.data, idx, ctx.counts)


def _tests_equal(a: T._Tests, b: T._Tests, ctx):
    assert np.array_equal(a.keys, b.keys)
    assert np.array_equal(a.counts, b.counts) and np.array_equal(a.opt, b.opt)
    assert np.array_equal(a.dval, b.dval) and np.array_equal(a.daux, b.daux)
    assert T._tests_table(ctx, [a]).equals(T._tests_table(ctx, [b]))


@pytest.mark.parametrize("name", [n for n in ALL_V4_FILES if not n.endswith(".gz")])
def test_ptr_kernel_equals_table_driven_path(name):
    """The hand-written one-pass PTR kernel and the interpreter + default kernels agree exactly."""
    ctx, w = _ctx(name)
    fast, ft = T._ptr_results(ctx, w)
    slow, st = T._results(ctx, "PTR", w, generic=True)
    assert fast.schema.equals(slow.schema)
    for col in fast.column_names:
        assert fast[col].combine_chunks().equals(slow[col].combine_chunks()), col
    _tests_equal(ft, st, ctx)


@pytest.mark.parametrize("name", ["lot2.stdf", "sort_4die_20times.stdf"])
def test_ptr_kernel_chunking(name):
    """String offsets are int32, so huge files are decoded in chunks: chunked == unchunked."""
    ctx, w = _ctx(name)
    whole, wt = T._ptr_results(ctx, w)
    parts, pt = T._ptr_results(ctx, w, chunk_bytes=5_000)
    assert parts.num_rows == whole.num_rows
    for col in whole.column_names:
        assert parts[col].combine_chunks().equals(whole[col].combine_chunks()), col
    _tests_equal(wt, pt, ctx)
    chunks, _, _ = D.ptr_decode(ctx.buf, ctx.index, w.rec_part, int(ctx.counts[T.R.CODE["PTR"]]), ctx.be, 5_000)
    assert len(chunks) > 5


def test_scan_overallocation_is_exact():
    """The scan reserves one slot per 4 bytes and fills exactly the records present."""
    src = open_sources(STDF_DIR / "makechip_x.stdf")[0]
    idx = scan(src.data, False)
    assert len(idx) == 31 and idx.offset[-1] + 4 + idx.length[-1] == src.nbytes
    typ, sub = idx.types(np.arange(len(idx)))
    assert (typ[0], sub[0]) == (0, 10) and (typ[-1], sub[-1]) == (50, 30)


def test_text_latin1_fallback_in_kernel_strings():
    off = np.array([0, 2, 4, 4], np.int32)
    data = np.frombuffer(b"\xb0C" + "µ".encode(), np.uint8)
    valid = np.packbits(np.array([1, 1, 0], bool), bitorder="little")
    assert D.text_array(off, data, valid, 3).to_pylist() == ["°C", "µ", None]
    assert D.text_array(off[:2], data[:2], np.packbits([1], bitorder="little"), 1).type == pa.string()


def test_is_ascii_finds_a_high_byte_anywhere():
    """The word-at-a-time ASCII check: every length 0..40, a byte >= 0x80 at every position
    (and offset views, as the kernels pass slices of larger buffers)."""
    from failmap_assets.stdf.decode.strings import _is_ascii

    rng = np.random.default_rng(7)
    base = rng.integers(0, 0x80, 64, dtype=np.uint8)
    for start in range(3):
        for n in range(41):
            d = base[start:start + n].copy()
            assert _is_ascii(base[start:start + n]) and _is_ascii(d)
            for k in range(n):
                e = d.copy()
                e[k] = 0x80 | rng.integers(0, 0x80)
                assert not _is_ascii(e)
    ro = np.frombuffer(bytes(5000) + b"\xb0", np.uint8)       # read-only, high byte last
    assert not _is_ascii(ro) and _is_ascii(ro[:5000])


def test_all_null_columns_on_many_threads_never_slice_past_the_shared_zeros():
    """STDF files are parsed on several threads; the shared zero buffer grows under them."""
    from concurrent.futures import ThreadPoolExecutor

    import pyarrow as pa

    from failmap_assets.stdf.decode import arrow

    def work(i: int) -> int:
        total = 0
        for n in range(1, 3000, 7):
            total += len(arrow.null_array(pa.float64(), n * (1 + i % 5) * 37))
        return total

    arrow.ZEROS.buf = None
    with ThreadPoolExecutor(8) as pool:
        assert all(t > 0 for t in pool.map(work, range(32)))


def _same_prr(buf, offs, lens, be):
    rec = T.R.BY_NAME["PRR"]
    cols, used = D.prr_columns(buf, offs, lens, be)
    val, aux, used_ref = D.interpret(buf, offs, lens, be, rec)
    ref = {k.lower(): v for k, v in D.columns(buf, be, rec, val, aux).items()}
    assert list(cols) == list(ref)
    for k in ref:
        assert cols[k].type == ref[k].type and cols[k].equals(ref[k]), k
    assert np.array_equal(used, used_ref)


@pytest.mark.parametrize("name", [n for n in ALL_V4_FILES if not n.endswith(".gz")])
def test_prr_decoder_equals_interpreter(name):
    ctx, _ = _ctx(name)
    pos = ctx.positions("PRR")
    _same_prr(ctx.buf, ctx.index.offset[pos], ctx.index.length[pos], ctx.be)


@pytest.mark.parametrize("wide,spread", [(False, False), (True, False), (False, True)])
@pytest.mark.parametrize("big_endian", [False, True])
def test_prr_decoder_fuzz_every_length(big_endian, wide, spread, monkeypatch):
    """Random PRR bodies of every length 0..60 (string lengths that fit, overrun or end
    exactly at REC_LEN), one buffer: the specialised decoder equals the interpreter, with
    int32 string offsets and with the int64 ones of buffers of 2 GiB and more (``wide``), and
    with other bytes between the PRRs (``spread``: the decoder fetches them ahead)."""
    from failmap_assets.stdf.decode import prr

    if wide:
        monkeypatch.setattr(prr, "WIDE_OFFSETS_FROM", 0)
    rng = np.random.default_rng(16 + big_endian)
    chunks, offs, lens = [], [], []
    at = 0
    for ln in list(range(0, 61)) * 40:
        body = rng.integers(0, 256, ln, dtype=np.uint8)
        if ln > 17 and rng.random() < 0.7:       # plausible string lengths around the end
            room = ln - 17
            body[17] = min(255, max(0, room - 1 + int(rng.integers(-2, 3))))
        if spread:
            gap = rng.integers(0, 256, int(rng.integers(100, 400)), dtype=np.uint8)
            chunks.append(gap)
            at += gap.size
        chunks.append(np.concatenate([np.array([ln & 0xFF, ln >> 8, 5, 20], np.uint8), body]))
        offs.append(at)
        lens.append(ln)
        at += 4 + ln
    buf = np.concatenate(chunks)
    _same_prr(buf, np.array(offs, np.int64), np.array(lens, np.int32), big_endian)
    # every record holds its three strings (no validity bitmaps), with Latin-1 bytes (not UTF-8)
    chunks, offs, lens, at = [], [], [], 0
    for k in range(50):
        strings = [bytes([65 + k % 26, 0xE9]) * (k % 4), bytes([0xFF]) * (k % 3), bytes([k, 0x80])]
        body = rng.integers(0, 256, 17, dtype=np.uint8).tobytes() + b"".join(bytes([len(t)]) + t for t in strings)
        chunks.append(np.frombuffer(len(body).to_bytes(2, "big" if big_endian else "little") + bytes([5, 20]) + body,
                                    np.uint8))
        offs.append(at)
        lens.append(len(body))
        at += 4 + len(body)
    _same_prr(np.concatenate(chunks), np.array(offs, np.int64), np.array(lens, np.int32), big_endian)
    # an index that does not fit the buffer (never produced by the scan) reads nothing
    cols, used = D.prr_columns(buf[:10], np.array([0, 4], np.int64), np.array([40, 3], np.int32), big_endian)
    assert used.tolist() == [0, 0] and cols["head_num"].null_count == 2
    # ... also when the records lie far apart (fetched ahead): outside the buffer, before it, empty
    far = np.array([0, 5000, -4, 9, 3000], np.int64)
    cols, used = D.prr_columns(buf[:40], far, np.array([20, 30, 2, 0, 40], np.int32), big_endian)
    assert used.tolist()[1:] == [0, 0, 0, 0]


# ---------------------------------------------------------------- MPR / FTR kernels

MPR_FTR_FILES = ["LX7730_T25_SN192_20160322215334.stdf", "TEST_FT_GX36_A2_FT_E_02032013_0230.stdf", "a595.stdf",
                 "ayad_ws.stdf", "bcdm_S11189_c_01.stdf", "d10_1.std", "makechip_x.stdf", "rabbi.stdf",
                 "sn269_m40c.stdf", "sort_4die_20times.stdf", "spreadsheet14.stdf"]


def _same_results(ctx_of, kind: str):
    """The specialised kernel and the interpreter + default kernels give the same table, tests
    and warnings (``ctx_of()``: a fresh context and walk)."""
    ctx, w = ctx_of()
    fast, ft = T._results(ctx, kind, w)
    fast_issues = [str(i) for i in ctx.issues]
    ctx, w = ctx_of()
    slow, st = T._results(ctx, kind, w, generic=True)
    assert fast.schema.equals(slow.schema) and fast.num_rows == slow.num_rows
    for col in fast.column_names:
        assert float_bits(fast[col].combine_chunks()).equals(float_bits(slow[col].combine_chunks())), (kind, col)
    _tests_equal(ft, st, ctx)
    assert np.array_equal(ft.first_rec, ctx.positions(kind)[st.first])
    assert fast_issues == [str(i) for i in ctx.issues]
    return fast, fast_issues


@pytest.mark.parametrize("name", MPR_FTR_FILES)
def test_mpr_ftr_kernels_equal_table_driven_path(name):
    """Every real file with MPRs or FTRs: the one-pass kernels equal the interpreter path exactly."""
    found = 0
    for kind in ("MPR", "FTR"):
        if _ctx(name)[0].positions(kind).size:
            found += _same_results(lambda: _ctx(name), kind)[0].num_rows
    assert found > 0


def _real_bodies(kind: str) -> list[bytes]:
    out = []
    for name in ("bcdm_S11189_c_01.stdf", "ayad_ws.stdf", "a595.stdf", "TEST_FT_GX36_A2_FT_E_02032013_0230.stdf",
                 "sn269_m40c.stdf"):
        ctx, _ = _ctx(name)
        for p in ctx.positions(kind)[:150]:
            o, n = int(ctx.index.offset[p]), int(ctx.index.length[p])
            out.append(bytes(ctx.buf[o + 4:o + 4 + n]))
    return out


def _mutant(body: bytes, rng: np.random.Generator) -> bytes:
    b = bytearray(body)
    kind = rng.integers(0, 6)
    if b and len(b) >= 4:
        b[0:4] = int(rng.integers(0, 600)).to_bytes(4, "little")   # many tests, shared by several records
    if kind == 0 and b:
        del b[int(rng.integers(0, len(b))):]                         # truncated anywhere
    elif kind == 1 and b:
        for _ in range(int(rng.integers(1, 8))):                     # flipped bits (counts, lengths, OPT_FLAG)
            i = int(rng.integers(0, len(b)))
            b[i] ^= 1 << int(rng.integers(0, 8))
    elif kind == 2:
        b += bytes(rng.integers(0, 256, int(rng.integers(1, 12)), dtype=np.uint8))   # bytes after the last field
    elif kind == 3 and len(b) > 12:
        i = int(rng.integers(4, len(b) - 2))                         # a count or length set large
        b[i:i + 2] = b"\xff\xff"
    return bytes(b[:65535])


def _stdf(bodies: list[bytes], kind: str, big_endian: bool, gap: int = 0) -> bytes:
    """FAR, PIR, then the bodies as ``kind`` records, each followed by ``gap`` DTRs of 256 bytes."""
    typ, sub = T.R.BY_NAME[kind].key
    order = "big" if big_endian else "little"
    out = [(2).to_bytes(2, order) + bytes([0, 10, 1 if big_endian else 2, 4]),
           (2).to_bytes(2, order) + bytes([5, 10, 1, 1])]              # FAR, PIR
    dtr = (256).to_bytes(2, order) + bytes([50, 30, 255]) + b"d" * 255
    out += [len(b).to_bytes(2, order) + bytes([typ, sub]) + b + dtr * gap for b in bodies]
    return b"".join(out)


@pytest.mark.parametrize("kind,spread", [("MPR", False), ("FTR", False), ("MPR", True)])
@pytest.mark.parametrize("big_endian", [False, True])
def test_mpr_ftr_kernels_fuzz(kind, spread, big_endian, monkeypatch):
    """Real MPR / FTR bodies truncated, bit-flipped, extended and with huge counts, ~600 tests
    (the kernels' tables grow), small batches by records and by bytes: kernel == interpreter
    path, warnings included,
    and nothing is read past a record (the kernel only sees REC_LEN bytes that exist).
    ``spread``: two DTRs between the MPRs, so that they lie far apart (the kernel fetches
    them ahead, primitives._far_apart)."""
    rng = np.random.default_rng(16 + big_endian + 2 * (kind == "FTR"))
    real = _real_bodies(kind)
    bodies = [_mutant(real[int(rng.integers(0, len(real)))], rng) for _ in range(2500)]
    data = _stdf(bodies, kind, big_endian, gap=2 if spread else 0)
    if spread:
        held = sum(4 + len(b) for b in bodies)
        assert len(data) > 4 * held * 1.1           # far apart by the kernel's rule, in every batch on average
    monkeypatch.setattr(T, "CHUNK", 701)                   # the interpreter's batches (and warnings)
    monkeypatch.setattr(D.overrides, "BATCH_BYTES", 40_000)  # the kernels' batches: by bytes too

    def ctx_of():
        src = open_sources(data, name="fuzz")[0]
        h = detect(src.data)
        idx = scan(src.data, h.big_endian)
        ctx = T._Ctx(src, h, idx)
        return ctx, D.walk(src.data, idx, ctx.counts)

    t, issues = _same_results(ctx_of, kind)
    assert t.num_rows == len(bodies) and t["override_mask"].to_numpy().any()
    # arrays stored once per test: both left to the test (null, anchor present) and kept
    anchor = t["rtn_rslt" if kind == "MPR" else "fail_pin"].is_valid()
    assert pa.compute.sum(pa.compute.and_(t["rtn_stat"].is_null(), anchor)).as_py() > 20
    assert pa.compute.sum(pa.compute.and_(t["rtn_stat"].is_valid(), anchor)).as_py() > 20
    assert sum("unparsed_bytes" in i for i in issues) > 2       # the tests' first records, then batches
    assert t["test_num"].null_count > 0
    assert pa.compute.max(t["rec_idx"]).as_py() == 2 + (len(bodies) - 1) * (1 + 2 * spread)


def test_kernel_batches_respect_records_and_bytes():
    lens = np.array([10, 20, 65535, 5, 5, 5, 5], np.int32)
    b = D.chunk_bounds(lens, 3, max_bytes=60_000)       # a record larger than the limit is a batch alone
    assert [(x, y) for x, y, _ in b] == [(0, 2), (2, 3), (3, 6), (6, 7)] and [n for *_, n in b] == [38, 65539, 27, 9]
    assert D.chunk_bounds(lens[:0], 3) == []


def test_parts_per_wafer_counts_closed_parts_of_known_wafers():
    from failmap_assets.stdf.decode.walk import _parts_per_wafer

    part_wafer = np.array([0, 0, 1, -1, 1, 2, 5, 1], np.int64)
    part_prr = np.array([3, 7, 9, 11, -1, 15, 17, 20], np.int64)
    assert _parts_per_wafer(part_wafer, part_prr, 3).tolist() == [2, 2, 1]      # open part, wafer -1 / 5 left out
    assert _parts_per_wafer(part_wafer, part_prr, 0).tolist() == []
    assert _parts_per_wafer(part_wafer[:2], part_prr, 2).tolist() == [2, 0]     # lengths differ: the shorter one


def test_kept_parts_gives_the_order_of_the_sort_it_replaces():
    """walk's one-pass check against the numpy masks + stable sort it replaces: random parts
    with and without PIR / PRR, in order, shuffled, none kept, none at all."""
    from failmap_assets.stdf.decode.walk import _kept_parts

    rng = np.random.default_rng(5)
    cases = []
    for m in (0, 1, 2, 5, 40):
        for _ in range(30):
            prr = np.sort(rng.choice(1000, m, replace=False)).astype(np.int64)
            first = np.sort(rng.choice(1000, m, replace=False)).astype(np.int64)
            pir = first.copy()
            if rng.random() < 0.5:
                prr[rng.random(m) < 0.2] = -1                           # parts never closed
            if rng.random() < 0.5:
                pir[rng.random(m) < 0.3] = -1                           # parts opened by a result
            if rng.random() < 0.3:
                perm = rng.permutation(m)                               # sites interleaved
                prr, pir, first = prr[perm], pir[perm], first[perm]
            cases.append((pir, prr, first))
    cases.append((np.full(3, -1, np.int64), np.full(3, -1, np.int64), np.arange(3, dtype=np.int64)))
    seen = set()
    for pir, prr, first in cases:
        n = 1000
        keep = (pir >= 0) | (prr >= 0)
        key = np.where(prr >= 0, prr, n + first)
        identity_ref = bool(keep.all() and (key[1:] >= key[:-1]).all())
        order_ref = np.flatnonzero(keep)[np.argsort(key[keep], kind="stable")]
        kept, in_order, identity = _kept_parts(pir, prr, first, n)
        seen.add((identity, in_order))
        assert identity == identity_ref
        if not identity:
            assert np.array_equal(kept, order_ref)
    assert seen == {(True, True), (False, True), (False, False)}      # every path taken


@pytest.mark.parametrize("name", ["makechip_x.stdf", "main_Lot_1_Wafer_1_Oct_13_09h33m41s_STDF.stdf"])
def test_positions_of_every_record_kind_listed_or_not(name):
    """The grouping lists every kind but PTR and PIR (listed on demand): the same ordinals either way."""
    ctx, _ = _ctx(name)
    assert set(D.UNLISTED) == {"PTR", "PIR"}
    for rec in T.R.RECORDS:
        want = np.flatnonzero(ctx.index.code == T.R.CODE[rec.name])
        assert np.array_equal(ctx.positions(rec.name), want), rec.name
        assert ctx.counts[T.R.CODE[rec.name]] == want.size
    assert ctx.positions("PIR").size > 0
