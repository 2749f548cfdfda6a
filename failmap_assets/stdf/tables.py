"""STDF -> analysis-ready Arrow tables, and Parquet.

``parse_stdf(path_or_bytes) -> STDFData`` gives one Arrow table per table below;
``parse_to_parquet(path, out_dir) -> ParseStats`` writes them as hive-partitioned
Parquet: ``<out>/<table>/product=<P>/test_type=<T>/<file id>.parquet``.

files           one row per file: FAR, MIR, MRR fields, the SDRs as a list, issues
wafers          one row per wafer (WIR..WRR), with the file's WCR
parts           one row per part (PRR; parts whose PRR is missing come last)
tests           one row per test number and kind (PTR / MPR / FTR): the defaults
ptr_results     one row per PTR; limits etc. only where the record overrides the default
mpr_results     one row per MPR (arrays as lists)
ftr_results     one row per FTR
bins            HBR and SBR rows
test_summaries  one row per TSR
generic         every other record (fields as JSON; unknown types raw)

Column documentation: ``SCHEMA.md`` beside this file.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from failmap_assets.kernels.jit import kernel
from failmap_assets.storage.layout import safe_name
from failmap_assets.wafer.rejects import Rejected
from . import decode as D
from . import flatjson, jsontext
from .allocator import keep_freed_memory
from .parquet_file import write_table_file
from . import records as R
from .decode.overrides import override_columns
from .decode.gdr import _json_float
from .decode.same_arrays import ANCHOR, SAME_AS_TEST, _dedupe_arrays
from .scan import Header, Issue, RecordIndex, detect, scan
from .source import Source, open_sources

TABLES = ("files", "wafers", "parts", "tests", "ptr_results", "mpr_results", "ftr_results", "bins",
          "test_summaries", "generic")

CHUNK = 262_144   # records per interpreter batch (bounds memory for MPR / FTR)

#: Clock of the per-stage ``timings`` (wall by default; ``benchmarks/stdf_parse.py --profile``
#: sets ``time.process_time`` so that other work on a shared machine does not count).
STAGE_CLOCK = time.perf_counter

# ------------------------------------------------------------------ schemas


def _f(name, typ):
    return pa.field(name, typ)


def _rec_fields(name: str, skip=(), rename: dict | None = None, prefix_conflicts: set | None = None) -> list[pa.Field]:
    rec = R.BY_NAME[name]
    out = []
    for f in rec.fields:
        if f.name in skip:
            continue
        col = (rename or {}).get(f.name, f.column)
        if prefix_conflicts is not None and col in prefix_conflicts:
            col = f"{name.lower()}_{col}"
        out.append(pa.field(col, f.arrow_type()))
    return out


def _sdr_struct() -> pa.DataType:
    return pa.struct(_rec_fields("SDR") + [_f("rec_idx", pa.int64())])


_SDR_FIELDS = list(_sdr_struct())
_SDR_LAYOUT = tuple((f.name, f.type) for f in _SDR_FIELDS)


def _files_schema() -> pa.Schema:
    cols = [_f("file_id", pa.string()), _f("file_name", pa.string()), _f("bytes", pa.int64()),
            _f("compression", pa.string()), _f("byte_order", pa.string()), _f("complete", pa.bool_()),
            _f("issues", pa.list_(pa.string())), _f("records", pa.int64())]
    cols += _rec_fields("FAR") + _rec_fields("MIR") + _rec_fields("MRR")
    cols += [_f("sdr", pa.list_(_sdr_struct())), _f("far_rec_idx", pa.int64()), _f("mir_rec_idx", pa.int64()),
             _f("mrr_rec_idx", pa.int64())]
    return pa.schema(cols)


def _wafers_schema() -> pa.Schema:
    cols = [_f("wafer_idx", pa.int32())]
    names = {"wafer_idx"}
    wir = _rec_fields("WIR")
    names |= {f.name for f in wir}
    wrr = _rec_fields("WRR", prefix_conflicts=names)
    names |= {f.name for f in wrr}
    wcr = _rec_fields("WCR", prefix_conflicts=names)
    cols += wir + wrr + wcr
    cols += [_f("wir_rec_idx", pa.int64()), _f("wrr_rec_idx", pa.int64()), _f("wcr_rec_idx", pa.int64()),
             _f("parts", pa.int64())]
    return pa.schema(cols)


def _parts_schema() -> pa.Schema:
    cols = [_f("part_idx", pa.int32())] + _rec_fields("PRR")
    cols += [_f("wafer_idx", pa.int32()), _f("pir_rec_idx", pa.int64()), _f("prr_rec_idx", pa.int64()),
             _f("results", pa.int64())]
    return pa.schema(cols)


# the default-data columns, in a fixed order for every kind (override bit = position in its kind)
_TEST_DEFAULT_COLS: list[tuple[str, str]] = []
for _k in ("PTR", "MPR", "FTR"):
    for _fl in R.BY_NAME[_k].fields:
        if _fl.default is not None and _fl.name not in [c for c, _ in _TEST_DEFAULT_COLS]:
            _TEST_DEFAULT_COLS.append((_fl.name, _k))


# the arrays stored once per test (decode/same_arrays.py) that are not default data already:
# tests.rtn_indx is MPR's default and FTR's first RTN_INDX
_TEST_ARRAY_COLS: list[tuple[str, str]] = []
for _k, _names in SAME_AS_TEST.items():
    for _n in _names:
        if _n not in [c for c, _ in _TEST_DEFAULT_COLS + _TEST_ARRAY_COLS]:
            _TEST_ARRAY_COLS.append((_n, _k))


def _tests_schema() -> pa.Schema:
    cols = [_f("kind", pa.string()), _f("test_num", pa.uint32()), _f("test_txt", pa.string()),
            _f("opt_flag", pa.uint8()), _f("first_rec_idx", pa.int64()), _f("results", pa.int64())]
    for name, kind in _TEST_DEFAULT_COLS + _TEST_ARRAY_COLS:
        cols.append(pa.field(name.lower(), R.BY_NAME[kind].field(name).arrow_type()))
    return pa.schema(cols)


def _results_schema(kind: str) -> pa.Schema:
    rec = R.BY_NAME[kind]
    cols = [_f("rec_idx", pa.int64()), _f("part_idx", pa.int32())]
    plain = [f for f in rec.fields if f.default is None]
    dflt = [f for f in rec.fields if f.default is not None]
    cols += [pa.field(f.column, f.arrow_type()) for f in plain]
    cols.append(_f("override_mask", pa.uint16()))
    cols += [pa.field(f.column, f.arrow_type()) for f in dflt]
    return pa.schema(cols)


def _bins_schema() -> pa.Schema:
    return pa.schema([_f("rec_idx", pa.int64()), _f("bin_type", pa.string()), _f("head_num", pa.uint8()),
                      _f("site_num", pa.uint8()), _f("bin_num", pa.uint16()), _f("bin_cnt", pa.uint32()),
                      _f("bin_pf", pa.string()), _f("bin_nam", pa.string())])


def _tsr_schema() -> pa.Schema:
    return pa.schema([_f("rec_idx", pa.int64())] + _rec_fields("TSR"))


def _generic_schema() -> pa.Schema:
    return pa.schema([_f("rec_idx", pa.int64()), _f("offset", pa.int64()), _f("rec_typ", pa.uint8()),
                      _f("rec_sub", pa.uint8()), _f("rec_len", pa.uint16()), _f("rec_name", pa.string()),
                      _f("part_idx", pa.int32()), _f("fields", pa.string()), _f("raw", pa.binary())])


SCHEMAS: dict[str, pa.Schema] = {
    "files": _files_schema(),
    "wafers": _wafers_schema(),
    "parts": _parts_schema(),
    "tests": _tests_schema(),
    "ptr_results": _results_schema("PTR"),
    "mpr_results": _results_schema("MPR"),
    "ftr_results": _results_schema("FTR"),
    "bins": _bins_schema(),
    "test_summaries": _tsr_schema(),
    "generic": _generic_schema(),
}


#: the tables of a file that has none of their records (shared: Arrow tables are immutable)
EMPTY: dict[str, pa.Table] = {name: schema.empty_table() for name, schema in SCHEMAS.items()}

# (name, type) per column of each schema, listed once: iterating a pyarrow Schema builds a
# Field object per column per call (~250 per small file)
_LAYOUTS: dict[int, tuple[pa.Schema, tuple[tuple[str, pa.DataType], ...]]] = {
    id(s): (s, tuple((f.name, f.type) for f in s)) for s in SCHEMAS.values()}


def override_bits(kind: str) -> dict[str, int]:
    """Bit of ``override_mask`` per default-data field of a result table (PTR / MPR / FTR)."""
    return D.DefaultSpec(R.BY_NAME[kind]).bits


# ------------------------------------------------------------------ result object


@dataclass
class STDFData:
    """One parsed STDF stream: an Arrow table per output table, and what went wrong."""

    name: str
    file_id: str
    tables: dict[str, pa.Table]
    issues: list[Issue]
    record_counts: dict[str, int]
    byte_order: str
    cpu_type: int
    stdf_ver: int
    nbytes: int
    compression: str = "plain"
    seconds: float = 0.0
    timings: dict = field(default_factory=dict)   # seconds per stage (scan, parts, ptr, ...)

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.severity != "error"]

    @property
    def complete(self) -> bool:
        """True when nothing was lost (the whole stream decoded)."""
        return not self.errors

    def __getattr__(self, item):
        tables = self.__dict__.get("tables")
        if tables is not None and item in tables:
            return tables[item]
        raise AttributeError(item)

    @property
    def mir(self) -> dict:
        """The MIR (and FAR / MRR) fields of the files row as a dict."""
        return self.tables["files"].to_pylist()[0]


@dataclass
class ParseStats:
    file_ids: list[str]
    parts: int
    tests: int
    results: int
    records: int
    bytes: int
    seconds: float
    product: str
    test_type: str
    files_written: list[str] = field(default_factory=list)
    issues: list[str] = field(default_factory=list)
    complete: bool = True
    timings: dict = field(default_factory=dict)

    @property
    def mb_per_s(self) -> float:
        return self.bytes / 1e6 / self.seconds if self.seconds > 0 else 0.0


# ------------------------------------------------------------------ helpers


@kernel
def _fast_hash(words, tail, n):
    """A 64-bit content hash (not cryptographic) for file ids: 8 bytes per step."""
    h = np.uint64(0x9E3779B97F4A7C15) ^ np.uint64(n)
    m = np.uint64(0xFF51AFD7ED558CCD)
    for i in range(words.shape[0]):
        h ^= words[i]
        h *= m
        h ^= h >> np.uint64(29)
    for i in range(tail.shape[0]):
        h ^= np.uint64(tail[i])
        h *= m
        h ^= h >> np.uint64(29)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    h ^= h >> np.uint64(33)
    return h


def fast_hash(buf: np.ndarray) -> int:
    n = int(buf.shape[0])
    n8 = n // 8 * 8
    head = buf[:n8]
    words = head.view(np.uint64) if head.ctypes.data % 8 == 0 else np.frombuffer(head.tobytes(), np.uint64)
    return int(_fast_hash(words, np.ascontiguousarray(buf[n8:]), n))


SAMPLE_BLOCK = 1 << 16


def sample_hash(buf: np.ndarray) -> int:
    """Hash of the size, the first and last MiB and 64 evenly spaced 64 KiB blocks.

    A file id must not cost a pass over 100 MB; two files that agree in size, name and
    all sampled bytes get the same id (and the later conversion replaces the earlier)."""
    n = int(buf.shape[0])
    if n <= (4 << 20):
        return fast_hash(buf)
    parts = [buf[: 1 << 20], buf[n - (1 << 20):]]
    step = (n - SAMPLE_BLOCK) // 63
    parts += [buf[i * step: i * step + SAMPLE_BLOCK] for i in range(64)]
    return fast_hash(np.concatenate(parts + [np.frombuffer(n.to_bytes(8, "little"), np.uint8)]))


def content_id(name: str, buf: np.ndarray) -> str:
    """Default file id: the file's stem (made path-safe) and a hash of its content (``sample_hash``)."""
    stem = name.rsplit("/", 1)[-1]
    for ext in (".gz", ".bz2", ".xz", ".zip", ".Z", ".stdf", ".std", ".STDF", ".STD"):
        if stem.endswith(ext):
            stem = stem[: -len(ext)]
    return f"{safe_name(stem, 80)}-{sample_hash(buf):016x}"


def _nullable_idx(a: np.ndarray, typ=pa.int64()) -> pa.Array:
    a = np.asarray(a)
    data = a.astype(typ.to_pandas_dtype(), copy=False)     # no copy of a million record ordinals
    if a.size and a.min() < 0:
        return pa.array(data, type=typ, mask=a < 0)
    return pa.array(data, type=typ)


def _take(arrays: dict[str, pa.Array], positions: np.ndarray) -> dict[str, pa.Array]:
    """Rows by position; -1 gives nulls."""
    pos = np.asarray(positions, dtype=np.int64)
    n = pos.shape[0]
    if all(len(v) == n for v in arrays.values()) and (pos == np.arange(n)).all():
        return dict(arrays)         # every row in place (one wafer, one WCR): nothing to take
    idx = pa.array(pos, mask=pos < 0) if (pos < 0).any() else pa.array(pos)
    return {k: v.take(idx) for k, v in arrays.items()}


def _empty(schema: pa.Schema, n: int, cols: dict[str, pa.Array]) -> pa.Table:
    """Table of ``schema`` from ``cols`` (cast where the type differs); absent columns are null."""
    known = _LAYOUTS.get(id(schema))
    layout = known[1] if known is not None and known[0] is schema else tuple((f.name, f.type) for f in schema)
    arrays = []
    chunked = False
    for name, typ in layout:
        a = cols.get(name)
        if a is None:
            a = D.null_array(typ, n)
        elif a.type != typ:
            a = a.cast(typ)
        chunked = chunked or isinstance(a, pa.ChunkedArray)
        arrays.append(a)
    if chunked:
        return pa.Table.from_arrays(arrays, schema=schema)
    # through a record batch: half the cost of Table.from_arrays (no ChunkedArray per column)
    return pa.Table.from_batches([pa.RecordBatch.from_arrays(arrays, schema=schema)])


class _Ctx:
    def __init__(self, src: Source, header: Header, index: RecordIndex):
        self.buf = src.data
        self.be = header.big_endian
        self.index = index
        self.issues: list[Issue] = list(header.issues)
        self.grouped, self.starts, self.counts = D.group_by_code(index.code)
        self.rec_idx_of_code: dict[int, np.ndarray] = {
            c: self.grouped[self.starts[c]:self.starts[c + 1]] for c in range(len(R.RECORDS) + 1)}
        self.unlisted = {R.CODE[name] for name in D.UNLISTED}

    def positions(self, name: str) -> np.ndarray:
        c = R.CODE[name]
        if c in self.unlisted:
            # left out of the grouping (the PTR kernel walks the index; nothing decodes PIRs): list on demand
            self.rec_idx_of_code[c] = np.flatnonzero(self.index.code == c)
            self.unlisted.discard(c)
        return self.rec_idx_of_code[c]

    def decode(self, name: str, positions: np.ndarray | None = None, alt: bool = False):
        rec = R.BY_NAME[name]
        pos = self.positions(name) if positions is None else positions
        val, aux, used = D.interpret(self.buf, self.index.offset[pos], self.index.length[pos], self.be, rec, alt)
        if not alt and rec.alt_fields is None:
            self.unparsed(name, pos, used)
        return val, aux

    def unparsed(self, name: str, pos: np.ndarray, used: np.ndarray, lens: np.ndarray | None = None) -> None:
        """A warning when records of ``name`` hold bytes after their last field (``lens``:
        their REC_LEN when the caller has gathered them already)."""
        extra = np.flatnonzero(used < (self.index.length[pos] if lens is None else lens))
        if extra.size:
            self.issues.append(Issue(int(self.index.offset[pos[extra[0]]]), "unparsed_bytes",
                                     f"{extra.size} {name} record(s) hold bytes after their last field "
                                     f"(first: record {int(pos[extra[0]])}); the extra bytes are ignored",
                                     int(pos[extra[0]]), "warning"))

    def cols(self, name: str, positions: np.ndarray | None = None) -> dict[str, pa.Array]:
        val, aux = self.decode(name, positions)
        return {k.lower(): v for k, v in D.columns(self.buf, self.be, R.BY_NAME[name], val, aux).items()}


# ------------------------------------------------------------------ table builders


def _first(ctx: _Ctx, name: str) -> tuple[int, dict[str, pa.Array] | None]:
    pos = ctx.positions(name)
    if pos.size == 0:
        return -1, None
    return int(pos[0]), ctx.cols(name, pos[:1])


def _files(ctx: _Ctx, src: Source, header: Header, file_id: str, issues: list[Issue]) -> pa.Table:
    # the issues as they stand before FAR / MIR / MRR are decoded (their warnings come later)
    complete = pa.array([not any(i.severity == "error" for i in issues)])
    issue_list = pa.array([[str(i) for i in issues]], pa.list_(pa.string()))
    firsts = {name: _first(ctx, name) for name in ("FAR", "MIR", "MRR")}
    # the one-row columns of one type as slices of one array (an array from Python costs ~6 us)
    texts = pa.array([file_id, src.name, src.compression, header.byte_order])
    ints = pa.array([src.nbytes, len(ctx.index)] + [ri if ri >= 0 else None for ri, _ in firsts.values()],
                    pa.int64())
    cols: dict[str, pa.Array] = {
        "file_id": texts.slice(0, 1), "file_name": texts.slice(1, 1), "compression": texts.slice(2, 1),
        "byte_order": texts.slice(3, 1), "bytes": ints.slice(0, 1), "records": ints.slice(1, 1),
        "complete": complete, "issues": issue_list,
    }
    for k, (name, (_, c)) in enumerate(firsts.items()):
        cols[f"{name.lower()}_rec_idx"] = ints.slice(2 + k, 1)
        if c:
            cols.update(c)
    sdr_pos = ctx.positions("SDR")
    sc = ctx.cols("SDR", sdr_pos)
    sc["rec_idx"] = pa.array(sdr_pos.astype(np.int64))
    struct = pa.StructArray.from_arrays([sc[n] if sc[n].type == t else sc[n].cast(t) for n, t in _SDR_LAYOUT],
                                        fields=_SDR_FIELDS)
    cols["sdr"] = pa.ListArray.from_arrays(pa.array([0, len(sdr_pos)], pa.int32()), struct)
    return _empty(SCHEMAS["files"], 1, cols)


def _wafers(ctx: _Ctx, w: D.Walk) -> pa.Table:
    schema = SCHEMAS["wafers"]
    n = int(w.wafer_wir.shape[0])
    wcr_pos = ctx.positions("WCR")
    if n == 0 and wcr_pos.size:
        n = 1
        wir = np.array([-1])
        wrr = np.array([-1])
    else:
        wir, wrr = w.wafer_wir, w.wafer_wrr
    cols: dict[str, pa.Array] = {"wafer_idx": pa.array(np.arange(n, dtype=np.int32))}
    names = {"wafer_idx"}
    for name, recs in (("WIR", wir), ("WRR", wrr)):
        pos = ctx.positions(name)
        c = ctx.cols(name, pos)
        where = np.searchsorted(pos, recs)
        where = np.where(recs >= 0, where, -1)
        taken = _take(c, where) if n else {k: v[:0] for k, v in c.items()}
        for k, v in taken.items():
            col = k if k not in names or name == "WIR" else f"wrr_{k}"
            cols[col] = v
        names |= {k for k in c} if name == "WIR" else set()
    if wcr_pos.size:
        c = ctx.cols("WCR", wcr_pos[:1])
        for k, v in _take(c, np.zeros(n, dtype=np.int64)).items():
            cols[k if k not in cols else f"wcr_{k}"] = v
    cols["wir_rec_idx"] = _nullable_idx(wir)
    cols["wrr_rec_idx"] = _nullable_idx(wrr)
    cols["wcr_rec_idx"] = pa.array([int(wcr_pos[0]) if wcr_pos.size else None] * n, pa.int64())
    cols["parts"] = pa.array(w.parts_per_wafer(n))
    return _empty(schema, n, cols)


def _parts(ctx: _Ctx, w: D.Walk) -> pa.Table:
    n = int(w.part_prr.shape[0])
    pos = ctx.positions("PRR")
    # the specialised PRR decoder: the same columns as ctx.cols("PRR", pos)
    lens = ctx.index.length[pos]
    c, used = D.prr_columns(ctx.buf, ctx.index.offset[pos], lens, ctx.be)
    ctx.unparsed("PRR", pos, used, lens)
    if np.array_equal(w.part_prr, pos):
        cols = c            # every part closed, in PRR order: no reordering needed
    else:
        cols = _take(c, np.where(w.part_prr >= 0, np.searchsorted(pos, w.part_prr), -1))
    # head / site of parts without a PRR: from the record that opened them
    for k, arr in (("head_num", w.part_head), ("site_num", w.part_site)):
        if cols[k].null_count == 0:
            continue
        fill = pa.array(arr.astype(np.int64), mask=arr < 0).cast(pa.uint8())
        cols[k] = pa.compute.coalesce(cols[k], fill)
    cols["part_idx"] = pa.array(np.arange(n, dtype=np.int32))
    cols["wafer_idx"] = _nullable_idx(w.part_wafer, pa.int32())
    cols["pir_rec_idx"] = _nullable_idx(w.part_pir)
    cols["prr_rec_idx"] = _nullable_idx(w.part_prr)
    cols["results"] = pa.array(w.part_results)
    return _empty(SCHEMAS["parts"], n, cols)


@dataclass
class _Tests:
    kind: str
    keys: np.ndarray           # test number per test (-1 = record too short)
    tidx: np.ndarray           # test per record
    first: np.ndarray          # position (within the kind) of each test's first record
    dval: np.ndarray
    daux: np.ndarray
    txt_val: np.ndarray        # TEST_TXT of the first record
    txt_aux: np.ndarray
    opt: np.ndarray            # OPT_FLAG of the first record (-1 missing)
    counts: np.ndarray
    first_rec: np.ndarray | None = None   # record ordinal of each test's first record
    arr_val: np.ndarray | None = None     # the first record's SAME_AS_TEST arrays: data offset,
    arr_aux: np.ndarray | None = None     # element count (-1 missing), one column per array


# per kind: its compiled default-data spec, its default-data fields as a tuple (one object:
# decode.columns lists a field tuple's scalar kinds once) and the names of those that are not
# arrays; built once (a spec costs ~15 us, three per file)
_DEFAULTS: dict[str, tuple[D.DefaultSpec, tuple[R.Field, ...], list[str]]] = {}
for _k in ("PTR", "MPR", "FTR"):
    _spec = D.DefaultSpec(R.BY_NAME[_k])
    _fd = tuple(R.BY_NAME[_k].fields[i] for i in _spec.index)
    _DEFAULTS[_k] = (_spec, _fd, [f.name for f in _fd if not f.is_array])


def _no_tests(kind: str) -> _Tests:
    """The tests of a kind the file has no records of (a small file often has no MPR / FTR)."""
    i64, nd = np.zeros(0, np.int64), len(_DEFAULTS[kind][1])
    na = len(SAME_AS_TEST.get(kind, ()))
    return _Tests(kind, i64, np.zeros(0, np.int32), i64, np.zeros((0, nd), np.int64), np.zeros((0, nd), np.int32),
                  i64, i64, i64, i64, first_rec=i64, arr_val=np.zeros((0, na), np.int64),
                  arr_aux=np.zeros((0, na), np.int64))


def _ptr_results(ctx: _Ctx, w: D.Walk, chunk_bytes: int | None = None) -> tuple[pa.Table, _Tests]:
    """PTR through the specialised one-pass kernel (see decode.ptr._ptr_kernel), in
    chunks of ``chunk_bytes`` (default ``D.PTR_CHUNK_BYTES``, read at each call:
    ``failmap warm`` lowers it to compile the chunking kernel on a small file)."""
    if chunk_bytes is None:
        chunk_bytes = D.PTR_CHUNK_BYTES
    n = int(ctx.counts[R.CODE["PTR"]])
    if n == 0:
        return EMPTY["ptr_results"], _no_tests("PTR")
    chunks, t, overrides = D.ptr_decode(ctx.buf, ctx.index, w.rec_part, n, ctx.be, chunk_bytes)
    _, fields_d, _ = _DEFAULTS["PTR"]
    assert tuple(f.name for f in fields_d) == D.PTR_DEFAULT_FIELDS
    ov_cols = override_columns(ctx.buf, ctx.be, fields_d, n, *overrides)
    schema = SCHEMAS["ptr_results"]
    batches = []
    start = 0
    first_rec = []
    for o in chunks:
        m = o.n
        nf = o.nfields
        nf_min = int(nf.min()) if m else 255
        cols: dict[str, pa.Array] = {
            "rec_idx": D.fixed_array(o.rec_idx, pa.int64()),
            "part_idx": D.nullable_int(o.part_idx, pa.int32()),
            "test_num": D.fixed_array(o.test_num, pa.uint32(), nf, 1, nf_min),
            "head_num": D.fixed_array(o.head, pa.uint8(), nf, 2, nf_min),
            "site_num": D.fixed_array(o.site, pa.uint8(), nf, 3, nf_min),
            "test_flg": D.fixed_array(o.test_flg, pa.uint8(), nf, 4, nf_min),
            "parm_flg": D.fixed_array(o.parm_flg, pa.uint8(), nf, 5, nf_min),
            "result": D.fixed_array(o.result.view(np.float32), pa.float32(), nf, 6, nf_min),
            "test_txt": o.strings("test_txt"),
            "alarm_id": o.strings("alarm_id"),
            "opt_flag": D.fixed_array(o.opt_flag, pa.uint8(), nf, 9, nf_min),
            "override_mask": D.fixed_array(o.mask, pa.uint16()),
        }
        for k, a in ov_cols.items():
            cols[k] = a.slice(start, m) if len(chunks) > 1 else a
        batches.append(_empty(schema, m, cols))
        first_rec.append(o.rec_idx)
        start += m
    # record ordinal of each test's first PTR (t["first"] is its row among the PTRs)
    rows = np.concatenate(first_rec) if first_rec else np.zeros(0, np.int64)
    keys = t["key"]
    tests = _Tests("PTR", keys, np.zeros(0, np.int32), t["first"], t["dval"], t["daux"].astype(np.int32),
                   t["txt_s"], t["txt_l"], t["opt"], t["count"], first_rec=rows[t["first"]])
    table = pa.concat_tables(batches) if len(batches) > 1 else (batches[0] if batches else EMPTY["ptr_results"])
    return table, tests


_KERNELS = {"MPR": D.mpr_chunk, "FTR": D.ftr_chunk}


def _kernel_results(ctx: _Ctx, kind: str, w: D.Walk) -> tuple[pa.Table, _Tests]:
    """MPR / FTR through their specialised one-pass kernels (decode/mpr.py, decode/ftr.py),
    in the interpreter's batches of ``CHUNK`` records (fewer when they exceed 64 MB: a kernel
    reserves its string and list buffers by the batch's bytes, per column)."""
    pos = ctx.positions(kind)
    if not pos.size:
        return EMPTY[f"{kind.lower()}_results"], _no_tests(kind)
    spec = _DEFAULTS[kind][0]
    offs, lens = ctx.index.offset, ctx.index.length
    tests = D.Tests(len(spec.index), len(SAME_AS_TEST[kind]))
    schema = SCHEMAS[f"{kind.lower()}_results"]
    batches, used = [], []
    for c0, c1, nb in D.chunk_bounds(lens[pos], CHUNK):
        cols, u = _KERNELS[kind](ctx.buf, ctx.be, offs, lens, pos, c0, c1, nb, w.rec_part, tests, spec)
        batches.append(_empty(schema, c1 - c0, cols))
        used.append(u)
    t = tests.arrays()
    # the interpreter's warnings, in its order: the tests' first records, then each batch
    used = np.concatenate(used) if used else np.zeros(0, np.int64)
    if t["first"].size:
        ctx.unparsed(kind, pos[t["first"]], used[t["first"]])
    for s in range(0, len(pos), CHUNK):
        ctx.unparsed(kind, pos[s:s + CHUNK], used[s:s + CHUNK])
    tests_ = _Tests(kind, t["key"], np.zeros(0, np.int32), t["first"], t["dval"], t["daux"], t["txt_s"], t["txt_l"],
                    t["opt"], t["count"], first_rec=pos[t["first"]].astype(np.int64), arr_val=t["arr_val"],
                    arr_aux=t["arr_aux"])
    return (pa.concat_tables(batches) if batches else EMPTY[f"{kind.lower()}_results"]), tests_


def _results(ctx: _Ctx, kind: str, w: D.Walk, generic: bool = False) -> tuple[pa.Table, _Tests]:
    """Result table and tests of one kind. PTR, MPR, FTR use their specialised kernels unless ``generic``
    (the field interpreter + default kernels, kept as a cross-check of the PTR kernel)."""
    if kind == "PTR" and not generic:
        return _ptr_results(ctx, w)
    if kind in _KERNELS and not generic:
        return _kernel_results(ctx, kind, w)
    rec = R.BY_NAME[kind]
    spec = D.DefaultSpec(rec)
    pos = ctx.positions(kind)
    offs = ctx.index.offset[pos]
    lens = ctx.index.length[pos]
    keys, uniq, tidx, first = D.test_keys(ctx.buf, offs, lens, ctx.be)
    fval, faux = ctx.decode(kind, pos[first]) if first.size else (np.zeros((0, len(rec.fields)), np.int64),
                                                                  np.zeros((0, len(rec.fields)), np.int32))
    dval, daux = D.defaults(ctx.buf, spec, fval, faux)
    ti = rec.index("TEST_TXT")
    txt_val = np.ascontiguousarray(fval[:, ti]) if first.size else np.zeros(0, np.int64)
    txt_aux = np.ascontiguousarray(faux[:, ti]).astype(np.int64) if first.size else np.zeros(0, np.int64)
    opt = np.where(faux[:, spec.opt] >= 0, fval[:, spec.opt], -1) if first.size else np.zeros(0, np.int64)
    arr_idx = [rec.index(n) for n in SAME_AS_TEST.get(kind, ())]
    tests = _Tests(kind, uniq, tidx, first, dval, daux, txt_val, txt_aux, opt,
                   np.bincount(tidx, minlength=len(uniq)).astype(np.int64),
                   arr_val=np.ascontiguousarray(fval[:, arr_idx]).astype(np.int64),
                   arr_aux=np.ascontiguousarray(faux[:, arr_idx]).astype(np.int64))
    schema = SCHEMAS[f"{kind.lower()}_results"]
    plain = [i for i, f in enumerate(rec.fields) if f.default is None]
    batches = []
    for s in range(0, len(pos), CHUNK):
        p = pos[s:s + CHUNK]
        val, aux = ctx.decode(kind, p)
        t = tidx[s:s + CHUNK]
        oval, oaux, mask = D.effective(ctx.buf, spec, val, aux, t, dval, daux)
        cols: dict[str, pa.Array] = {}
        t64 = np.ascontiguousarray(t, dtype=np.int64)
        # TEST_TXT: null when equal to the test's (first record's) text
        aux[:, ti] = _dedupe(ctx.buf, val[:, ti], aux[:, ti], t64, txt_val, txt_aux)
        # the SAME_AS_TEST arrays: null when equal to the test's first record's (decode/same_arrays.py)
        anchor = np.ascontiguousarray(aux[:, rec.index(ANCHOR[kind])]) if arr_idx else None
        for j, i in enumerate(arr_idx):
            aux[:, i] = _dedupe_arrays(ctx.buf, np.ascontiguousarray(val[:, i]), np.ascontiguousarray(aux[:, i]),
                                       anchor, t64, tests.arr_val[:, j], tests.arr_aux[:, j],
                                       _element_width(rec.fields[i]))
        for i in plain:
            f = rec.fields[i]
            cols[f.column] = D.column(ctx.buf, ctx.be, rec, i, val, aux)
        fields_d = tuple(rec.fields[i] for i in spec.index)
        for j, f in enumerate(fields_d):
            if f.is_array:
                cols[f.column] = _array_override(ctx.buf, ctx.be, rec, f, oval[:, j], oaux[:, j])
            else:
                cols[f.column] = D.column(ctx.buf, ctx.be, rec, j, oval, oaux, fields_d)
        cols["override_mask"] = pa.array(mask.astype(np.uint16))
        cols["rec_idx"] = pa.array(p.astype(np.int64))
        rp = w.rec_part[p]
        cols["part_idx"] = pa.array(rp, mask=rp < 0) if (rp < 0).any() else pa.array(rp)
        batches.append(_empty(schema, len(p), cols))
    table = pa.concat_tables(batches) if batches else EMPTY[f"{kind.lower()}_results"]
    return table, tests


def _element_width(f: R.Field) -> int:
    """Bytes per element of an array field; 0 for nibbles (N1)."""
    return 0 if f.type == "N1" else R.FIXED_SIZE[f.type]


def _dedupe(buf, v, a, t, dv, da):
    """TEST_TXT lengths with -1 where equal to the test's text: the rule of the arrays stored
    once per test (same_arrays._dedupe_arrays), bytes compared, the text its own anchor."""
    a = np.ascontiguousarray(a).astype(np.int64)
    return _dedupe_arrays(buf, np.ascontiguousarray(v), a, a, t, np.ascontiguousarray(dv, dtype=np.int64),
                          np.ascontiguousarray(da, dtype=np.int64), 1).astype(np.int32)


def _array_override(buf, be, rec: R.RecordDef, f: R.Field, v: np.ndarray, a: np.ndarray) -> pa.Array:
    """An array default field (MPR RTN_INDX) from (data offset, element count or -1) columns."""
    v = np.ascontiguousarray(v, dtype=np.int64).reshape(-1, 1)
    a = np.ascontiguousarray(a, dtype=np.int32).reshape(-1, 1)
    v2 = np.concatenate([np.where(a >= 0, a, 0).astype(np.int64), v], axis=1)
    a2 = np.concatenate([np.zeros_like(a), a], axis=1)
    fake = (R.Field("_CNT", "U2", ""), R.Field(f.name, f.type, f.desc, "_CNT"))
    return D.column(buf, be, rec, 1, v2, a2, fake)


def _tests_table(ctx: _Ctx, all_tests: list[_Tests]) -> pa.Table:
    schema = SCHEMAS["tests"]
    parts = []
    for t in all_tests:
        n = len(t.keys)
        if n == 0:
            continue
        rec = R.BY_NAME[t.kind]
        _, fields_d, scalars = _DEFAULTS[t.kind]
        cols: dict[str, pa.Array] = {
            "kind": pa.array([t.kind] * n),
            "test_num": D.nullable_int(t.keys, pa.uint32()),
            "test_txt": D.string_array(ctx.buf, t.txt_val, t.txt_aux),
            "opt_flag": D.nullable_int(t.opt, pa.uint8()),
            "first_rec_idx": pa.array(t.first_rec if t.first_rec is not None
                                      else ctx.positions(t.kind)[t.first].astype(np.int64)),
            "results": pa.array(t.counts),
        }
        dval, daux = np.ascontiguousarray(t.dval), np.ascontiguousarray(t.daux)
        cols.update((k.lower(), v) for k, v in
                    D.columns(ctx.buf, ctx.be, rec, dval, daux, only=scalars, fields=fields_d).items())
        for j, f in enumerate(fields_d):
            if f.is_array:
                cols[f.column] = _array_override(ctx.buf, ctx.be, rec, f, t.dval[:, j], t.daux[:, j])
        for j, name in enumerate(SAME_AS_TEST.get(t.kind, ())):
            f = rec.field(name)
            cols[f.column] = _array_override(ctx.buf, ctx.be, rec, f, t.arr_val[:, j], t.arr_aux[:, j])
        parts.append(_empty(schema, n, cols))
    return pa.concat_tables(parts) if parts else EMPTY["tests"]


assert [(f.type, f.name[1:]) for f in R.BY_NAME["HBR"].fields] == \
    [(f.type, f.name[1:]) for f in R.BY_NAME["SBR"].fields], "HBR and SBR no longer share a layout"


def _bins(ctx: _Ctx) -> pa.Table:
    """HBR and SBR rows in file order. The two records have one layout: decoded in one pass
    as HBRs (each kind's warnings under its own name, HBR first)."""
    hbr, sbr = ctx.positions("HBR"), ctx.positions("SBR")
    if not hbr.size and not sbr.size:
        return EMPTY["bins"]
    pos = np.concatenate([hbr, sbr])
    is_sbr = np.concatenate([np.zeros(hbr.size, np.bool_), np.ones(sbr.size, np.bool_)])
    if hbr.size and sbr.size and not (pos[1:] > pos[:-1]).all():
        order = np.argsort(pos, kind="stable")
        pos, is_sbr = pos[order], is_sbr[order]
    rec = R.BY_NAME["HBR"]
    val, aux, used = D.interpret(ctx.buf, ctx.index.offset[pos], ctx.index.length[pos], ctx.be, rec)
    ctx.unparsed("HBR", hbr, used[~is_sbr])
    ctx.unparsed("SBR", sbr, used[is_sbr])
    c = D.columns(ctx.buf, ctx.be, rec, val, aux)
    n = pos.size
    letters = np.where(is_sbr, ord("S"), ord("H")).astype(np.uint8)
    bin_type = pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(np.arange(n + 1, dtype=np.int32)),
                                                      pa.py_buffer(letters)])
    cols = {"rec_idx": pa.array(pos.astype(np.int64)), "bin_type": bin_type,
            "head_num": c["HEAD_NUM"], "site_num": c["SITE_NUM"], "bin_num": c["HBIN_NUM"],
            "bin_cnt": c["HBIN_CNT"], "bin_pf": c["HBIN_PF"], "bin_nam": c["HBIN_NAM"]}
    return _empty(SCHEMAS["bins"], n, cols)


def _tsr(ctx: _Ctx) -> pa.Table:
    pos = ctx.positions("TSR")
    if not pos.size:
        return EMPTY["test_summaries"]
    cols = ctx.cols("TSR", pos)
    cols["rec_idx"] = pa.array(pos.astype(np.int64))
    return _empty(SCHEMAS["test_summaries"], len(pos), cols)


def _jsonable(v):
    if isinstance(v, float):
        return _json_float(v)
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, list):
        return [_jsonable(x) for x in v]
    return v


def _record_json(cols: dict[str, pa.Array], n: int) -> pa.Array:
    """One JSON object per record; GDR GEN_DATA is already JSON text."""
    raw = {k: a for k, a in cols.items() if k == "GEN_DATA"}
    plain = {k: a for k, a in cols.items() if k not in raw}
    return jsontext.objects(plain, n, raw)


_REC_NAMES = pa.array(R.NAME_OF_CODE)      # by record code
_TYP_OF_CODE = np.array([0] + [r.typ for r in R.RECORDS], dtype=np.uint8)
_SUB_OF_CODE = np.array([0] + [r.sub for r in R.RECORDS], dtype=np.uint8)

GENERIC_RECORDS = ("ATR", "VUR", "PCR", "PMR", "PGR", "PLR", "RDR", "PSR", "NMR", "CNR", "SSR", "CDR", "STR",
                   "BPS", "EPS", "GDR", "DTR")


def _generic(ctx: _Ctx, w: D.Walk, extra: dict[str, np.ndarray], timings: dict | None = None) -> pa.Table:
    """``timings``: seconds per record kind (``generic_DTR``...) and for assembling the table."""
    t0 = STAGE_CLOCK()
    schema = SCHEMAS["generic"]
    idx = ctx.index
    rec_ids: list[np.ndarray] = []
    names: list[list[str]] = []
    jsons: list[pa.Array] = []
    raws: list[pa.Array] = []
    todo = {n: ctx.positions(n) for n in GENERIC_RECORDS}
    todo.update(extra)
    for name, pos in todo.items():
        if not pos.size:
            continue
        rec = R.BY_NAME[name]
        if rec.alt_fields is not None:
            rows = _vur_rows(ctx, pos)
            texts = pa.array([json.dumps({k: _jsonable(v) for k, v in row.items()}, ensure_ascii=False)
                              for row in rows], pa.string())
        elif flatjson.is_scalar(rec):       # PMR, PCR, DTR...: the text straight from the records
            lens = idx.length[pos]
            texts, used = flatjson.scalar_objects(ctx.buf, rec, idx.offset[pos], lens, ctx.be)
            ctx.unparsed(name, pos, used, lens)
        else:
            val, aux = ctx.decode(name, pos)
            if name == "GDR":               # typed items: one Numba pass writes the whole object
                texts = D.gdr_objects(ctx.buf, val, aux, ctx.be)
            elif flatjson.is_flat(rec):       # one Numba pass (SDR, PLR...): same text
                texts = flatjson.flat_objects(ctx.buf, rec, val, aux, ctx.be)
            else:
                texts = _record_json(D.columns(ctx.buf, ctx.be, rec, val, aux), len(pos))
        rec_ids.append(pos)
        names.append(np.full(len(pos), R.CODE[name], dtype=np.int64))
        jsons.append(texts)
        raws.append(D.null_array(pa.binary(), len(pos)))
        if timings is not None:
            now = STAGE_CLOCK()
            timings[f"generic_{name}"] = now - t0
            t0 = now
    unk = ctx.rec_idx_of_code[0]
    if unk.size:
        rec_ids.append(unk)
        names.append(np.zeros(len(unk), dtype=np.int64))
        jsons.append(D.null_array(pa.string(), len(unk)))
        raws.append(D.string_array(ctx.buf, idx.offset[unk] + 4, idx.length[unk], binary=True))
    if not rec_ids:
        return EMPTY["generic"]
    # kinds by their first record: when they do not interleave (PMRs in one run, DTRs in
    # another...) the rows are in file order as they stand and nothing is copied or reordered
    by_first = sorted(range(len(rec_ids)), key=lambda k: int(rec_ids[k][0]))
    rec_ids, names, jsons, raws = ([x[k] for k in by_first] for x in (rec_ids, names, jsons, raws))
    ri = np.concatenate(rec_ids)
    codes = np.concatenate(names)
    if (ri[1:] > ri[:-1]).all():
        fields, raw = pa.chunked_array(jsons), pa.chunked_array(raws)
    else:
        order = np.argsort(ri, kind="stable")
        ri = ri[order]
        codes = codes[order]
        take = pa.array(order)
        fields, raw = pa.concat_arrays(jsons).take(take), pa.concat_arrays(raws).take(take)
    part = w.rec_part[ri]
    rec_name = _REC_NAMES.take(pa.array(codes))
    if not unk.size:    # every record of a known kind: its REC_TYP / REC_SUB by code, not from the buffer
        typ, sub = _TYP_OF_CODE[codes], _SUB_OF_CODE[codes]
    else:
        typ, sub = idx.types(ri)
        u = codes == 0
        unk_names = pa.array([R.record_name(int(a), int(b)) for a, b in zip(typ[u], sub[u])], pa.string())
        rec_name = pc.replace_with_mask(rec_name, pa.array(u), unk_names)
    cols = {
        "rec_idx": pa.array(ri.astype(np.int64)),
        "offset": pa.array(idx.offset[ri]),
        "rec_typ": pa.array(typ),
        "rec_sub": pa.array(sub),
        "rec_len": pa.array(idx.length[ri].astype(np.uint16)),
        "rec_name": rec_name,
        "part_idx": D.nullable_int(part, pa.int32()),
        "fields": fields,
        "raw": raw,
    }
    table = _empty(schema, len(ri), cols)
    if timings is not None:
        timings["generic_table"] = STAGE_CLOCK() - t0
    return table


def _vur_rows(ctx: _Ctx, pos: np.ndarray) -> list[dict]:
    """VUR in either layout: UPD_CNT + UPD_NAM[] (V4-2007 errata) or one UPD_NAM (original V4-2007)."""
    rec = R.BY_NAME["VUR"]
    val, aux, used = D.interpret(ctx.buf, ctx.index.offset[pos], ctx.index.length[pos], ctx.be, rec)
    aval, aaux, aused = D.interpret(ctx.buf, ctx.index.offset[pos], ctx.index.length[pos], ctx.be, rec, alt=True)
    lens = ctx.index.length[pos]
    a = pa.table(D.columns(ctx.buf, ctx.be, rec, val, aux)).to_pylist()
    b = pa.table(D.columns(ctx.buf, ctx.be, rec, aval, aaux, alt=True)).to_pylist()
    rows = []
    for k in range(len(pos)):
        if used[k] == lens[k] and aux[k, 1] >= 0:
            rows.append({"UPD_CNT": a[k]["UPD_CNT"], "UPD_NAM": a[k]["UPD_NAM"], "layout": "count+names"})
        elif aused[k] == lens[k] and aaux[k, 0] >= 0:
            rows.append({"UPD_CNT": None, "UPD_NAM": [b[k]["UPD_NAM"]], "layout": "single name"})
        else:
            ctx.issues.append(Issue(int(ctx.index.offset[pos[k]]), "bad_vur",
                                    "VUR matches neither known layout; kept raw", int(pos[k]), "warning"))
            rows.append({"UPD_CNT": None, "UPD_NAM": None, "layout": "unknown",
                         "raw": bytes(ctx.buf[ctx.index.offset[pos[k]] + 4:
                                              ctx.index.offset[pos[k]] + 4 + lens[k]]).hex()})
    return rows


# ------------------------------------------------------------------ entry points


def _pick_source(src, name: str | None, member: str | None) -> Source:
    sources = open_sources(src, name=name)
    if member is not None:
        sources = [s for s in sources if s.member == member]
        if not sources:
            raise Rejected("no_member", f"archive has no member {member!r}")
    if len(sources) > 1:
        names = ", ".join(str(s.member) for s in sources[:5])
        raise Rejected("multiple_members", f"archive holds {len(sources)} files ({names}...): "
                                           f"pass member=... or use parse_to_parquet")
    return sources[0]


def parse_source(source: Source, file_id: str | None = None) -> STDFData:
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    last = [STAGE_CLOCK()]

    def lap(name):
        now = STAGE_CLOCK()
        timings[name] = now - last[0]
        last[0] = now

    buf = source.data
    header = detect(buf, source.name)
    index = scan(buf, header.big_endian)
    ctx = _Ctx(source, header, index)
    if index.issue is not None:
        ctx.issues.append(index.issue)
    fid = file_id or content_id(source.name, buf)
    lap("scan")
    w = D.walk(buf, index, ctx.counts)
    lap("walk")
    tables: dict[str, pa.Table] = {}
    tables["wafers"] = _wafers(ctx, w)
    tables["parts"] = _parts(ctx, w)
    lap("pir_prr_wafers")
    all_tests = []
    for kind in ("PTR", "MPR", "FTR"):
        t, tests = _results(ctx, kind, w)
        tables[f"{kind.lower()}_results"] = t
        all_tests.append(tests)
        lap(kind.lower())
    tables["tests"] = _tests_table(ctx, all_tests)
    lap("tests")
    tables["bins"] = _bins(ctx)
    lap("bins")
    tables["test_summaries"] = _tsr(ctx)
    lap("tsr")
    extra = {}
    for name in ("FAR", "MIR", "MRR", "WCR"):
        pos = ctx.positions(name)
        if pos.size > 1:
            extra[name] = pos[1:]
    tables["generic"] = _generic(ctx, w, extra, timings)
    last[0] = STAGE_CLOCK()
    tables["files"] = _files(ctx, source, header, fid, ctx.issues)
    counts = {R.NAME_OF_CODE[c]: int(n) for c, n in enumerate(ctx.counts) if n and c}
    unk = ctx.rec_idx_of_code[0]
    if unk.size:
        ut, us = index.types(unk)
        for a, b in zip(ut.tolist(), us.tolist()):
            nm = f"{R.record_name(a, b)}({a},{b})"
            counts[nm] = counts.get(nm, 0) + 1
    data = STDFData(source.name, fid, {k: tables[k] for k in TABLES}, ctx.issues, counts, header.byte_order,
                    header.cpu_type, header.stdf_ver, source.nbytes, source.compression)
    lap("files")
    data.seconds = time.perf_counter() - t0
    data.timings = timings
    return data


def parse_stdf(path_or_bytes, *, file_id: str | None = None, name: str | None = None,
               member: str | None = None) -> STDFData:
    """Parse one STDF file (path, bytes or uint8 array; gz / bz2 / xz / zip / .Z by magic bytes).

    Raises ``Rejected`` for input that is not STDF V4 (V3, other versions, not STDF,
    empty, broken compression). Corrupt data inside a V4 file is not an exception:
    everything before the corruption is returned and ``errors`` says where and why.
    """
    return parse_source(_pick_source(path_or_bytes, name, member), file_id)


def _partition_value(v: str | None) -> str:
    v = (v or "").strip()
    if not v:
        return "unknown"
    return safe_name(v, 80)


def write_parquet(data: STDFData, out_dir, product: str | None = None, test_type: str | None = None) -> list[str]:
    """Write ``data``'s tables under ``out_dir``; returns the files written (seconds per table
    in ``data.timings["parquet_<table>"]``). A table without rows has no file (a file of an
    earlier conversion of the same file id is removed)."""
    mir = data.tables["files"]
    prod = _partition_value(product if product is not None else mir["part_typ"][0].as_py())
    ttype = _partition_value(test_type if test_type is not None else mir["test_cod"][0].as_py())
    out = str(Path(out_dir))
    leaf = os.path.join(f"product={prod}", f"test_type={ttype}", f"{data.file_id}.parquet")
    written = []
    for name in TABLES:
        t = data.tables[name]
        path = os.path.join(out, name, leaf)
        if t.num_rows == 0:
            try:
                os.unlink(path)
            except (FileNotFoundError, NotADirectoryError):
                pass
            continue
        tw = STAGE_CLOCK()
        # files (the catalogue, one row per STDF file) keeps every column: its files read as one
        # column set with any reader (polars, pandas, a glob without union_by_name)
        write_table_file(t, path, name, keep_null_columns=(name == "files"), parts=data.tables["parts"].num_rows)
        data.timings[f"parquet_{name}"] = STAGE_CLOCK() - tw
        written.append(path)
    return written


def parse_to_parquet(path, out_dir, product: str | None = None, test_type: str | None = None, *,
                     file_id: str | None = None) -> ParseStats:
    """Parse ``path`` and write hive-partitioned Parquet under ``out_dir``.

    ``<out>/<table>/product=<P>/test_type=<T>/<file id>.parquet``; product from MIR
    PART_TYP and test type from MIR TEST_COD unless given (sanitised for paths).
    Each file is written to a temporary name and renamed, so readers never see
    half a file. An archive with several STDF members gives one file id per member.
    """
    t0 = time.perf_counter()
    keep_freed_memory()          # a converting process reuses its heap from file to file
    sources = open_sources(path)
    stats = None
    for k, src in enumerate(sources):
        fid = file_id if (file_id and len(sources) == 1) else (f"{file_id}-{k}" if file_id else None)
        data = parse_source(src, fid)
        files = write_parquet(data, out_dir, product, test_type)
        t = data.tables
        s = ParseStats([data.file_id], t["parts"].num_rows, t["tests"].num_rows,
                       t["ptr_results"].num_rows + t["mpr_results"].num_rows + t["ftr_results"].num_rows,
                       len(data.tables["files"]) and int(t["files"]["records"][0].as_py()), data.nbytes, 0.0,
                       _partition_value(product if product is not None else t["files"]["part_typ"][0].as_py()),
                       _partition_value(test_type if test_type is not None else t["files"]["test_cod"][0].as_py()),
                       files, [str(i) for i in data.issues], data.complete, dict(data.timings))
        if stats is None:
            stats = s
        else:
            stats.file_ids += s.file_ids
            stats.parts += s.parts
            stats.tests += s.tests
            stats.results += s.results
            stats.records += s.records
            stats.bytes += s.bytes
            stats.files_written += s.files_written
            stats.issues += s.issues
            stats.complete = stats.complete and s.complete
    stats.seconds = time.perf_counter() - t0
    return stats
