"""The specialised PTR kernel against the table-driven path, chunking, and the scan kernel."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from failmap_assets.stdf import decode as D
from failmap_assets.stdf import tables as T
from failmap_assets.stdf.scan import detect, scan
from failmap_assets.stdf.source import open_sources
from tests.stdf.conftest import ALL_V4_FILES
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


@pytest.mark.parametrize("big_endian", [False, True])
def test_prr_decoder_fuzz_every_length(big_endian):
    """Random PRR bodies of every length 0..60 (string lengths that fit, overrun or end
    exactly at REC_LEN), one buffer: the specialised decoder equals the interpreter."""
    rng = np.random.default_rng(16 + big_endian)
    chunks, offs, lens = [], [], []
    at = 0
    for ln in list(range(0, 61)) * 40:
        body = rng.integers(0, 256, ln, dtype=np.uint8)
        if ln > 17 and rng.random() < 0.7:       # plausible string lengths around the end
            room = ln - 17
            body[17] = min(255, max(0, room - 1 + int(rng.integers(-2, 3))))
        chunks.append(np.concatenate([np.array([ln & 0xFF, ln >> 8, 5, 20], np.uint8), body]))
        offs.append(at)
        lens.append(ln)
        at += 4 + ln
    buf = np.concatenate(chunks)
    _same_prr(buf, np.array(offs, np.int64), np.array(lens, np.int32), big_endian)
    # an index that does not fit the buffer (never produced by the scan) reads nothing
    cols, used = D.prr_columns(buf[:10], np.array([0, 4], np.int64), np.array([40, 3], np.int32), big_endian)
    assert used.tolist() == [0, 0] and cols["head_num"].null_count == 2
