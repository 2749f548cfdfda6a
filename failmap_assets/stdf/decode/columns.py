"""Interpreter output (``val`` / ``aux`` matrices of ``fields.interpret``) to one Arrow array
per field: numbers, C1, strings, bytes, bit fields, arrays and GDR values.

The top of the table-driven path: it dispatches each field type to ``strings``,
``arrays`` or ``gdr``.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from .. import records as R
from .arrays import _expand_fixed, _expand_strings, _list_array, _list_offsets
from .fields import DN_MASK
from .gdr import gdr_json
from .strings import _bitmap, _gather, char_array, string_array

# Fixed-width array elements whose bytes are the values: gathered as bytes and viewed
# (one copy), instead of read one by one into int64 and converted.
_RAW_DTYPE = {"U1": "u1", "U2": "u2", "U4": "u4", "U8": "u8", "I1": "i1", "I2": "i2", "I4": "i4", "I8": "i8",
              "R4": "f4", "R8": "f8"}


def _numeric_from_int64(v: np.ndarray, t: str) -> np.ndarray:
    if t == "R4":
        return (v & 0xFFFFFFFF).astype(np.uint32).view(np.float32)
    if t == "R8":
        return np.ascontiguousarray(v).view(np.float64)
    if t in ("U8", "Uf"):
        return np.ascontiguousarray(v).view(np.uint64)
    return v.astype(R.NUMPY_DTYPE[t])


def column(buf: np.ndarray, big_endian: bool, rec: R.RecordDef, fi: int, val: np.ndarray, aux: np.ndarray,
           fields: tuple[R.Field, ...] | None = None) -> pa.Array:
    """Arrow array of field ``fi`` of ``rec`` from interpreter output."""
    fields = fields if fields is not None else rec.fields
    f = fields[fi]
    v = np.ascontiguousarray(val[:, fi])
    a = np.ascontiguousarray(aux[:, fi]).astype(np.int64)
    valid = a >= 0
    t = f.type
    if not f.is_array:
        if t == "C1":
            return char_array(v.astype(np.uint8), valid)
        if t in ("Cn", "Sn"):
            return string_array(buf, v, a)
        if t == "Bn":
            return string_array(buf, v, a, binary=True)
        if t == "Dn":
            return string_array(buf, v & DN_MASK, a, binary=True)
        arr = np.ascontiguousarray(_numeric_from_int64(v, t))
        bm, nulls = _bitmap(valid)      # over the buffers: pa.array(arr, mask=) costs ~10 us a column
        return pa.Array.from_buffers(R.NUMERIC_ARROW[t], len(arr), [bm, pa.py_buffer(arr)], null_count=nulls)
    counts = np.where(valid, a, 0).astype(np.int64)
    item = R._scalar_arrow(t)
    names = [x.name for x in fields]
    if t in ("Cn", "Sn", "Cf"):
        kind = {"Cn": 0, "Sn": 1, "Cf": 2}[t]
        widths = np.zeros(len(v), dtype=np.int64)
        if t == "Cf":
            widths = np.ascontiguousarray(val[:, names.index(f.width)]).astype(np.int64)
        offsets, es, el = _expand_strings(buf, v, counts, big_endian, kind, widths)
        values = string_array(buf, es, el)
        return _list_array(offsets, values, valid, item)
    if t == "Vn":
        return gdr_json(buf, v, counts, valid, big_endian)
    if t in _RAW_DTYPE:
        w = R.FIXED_SIZE[t]
        offsets = _list_offsets(counts)
        _, data = _gather(buf, v, counts * w, False)
        raw = np.dtype(_RAW_DTYPE[t]).newbyteorder(">" if big_endian else "<")
        values = pa.array(np.frombuffer(data, dtype=raw).astype(_RAW_DTYPE[t], copy=False), type=item)
        return _list_array(offsets, values, valid, item)
    if t == "Uf":
        widths = np.ascontiguousarray(val[:, names.index(f.width)]).astype(np.int64)
        signed = False
    else:
        widths = np.full(len(v), max(R.FIXED_SIZE.get(t, 1), 1), dtype=np.int64)
        signed = t in ("I1", "I2", "I4", "I8")
    offsets, flat = _expand_fixed(buf, v, counts, widths, big_endian, signed, t == "N1")
    values = pa.array(_numeric_from_int64(flat, t), type=item)
    return _list_array(offsets, values, valid, item)


def columns(buf: np.ndarray, big_endian: bool, rec: R.RecordDef, val: np.ndarray, aux: np.ndarray,
            alt: bool = False, only: list[str] | None = None, fields: tuple[R.Field, ...] | None = None
            ) -> dict[str, pa.Array]:
    """One array per field of ``rec`` (``alt``: its second layout; ``fields``: these fields, the
    columns of ``val`` / ``aux``, e.g. the default-data fields; array fields need their count
    field among them). ``fields`` should be a lasting tuple: its scalar kinds are listed once."""
    if fields is None:
        fields = rec.alt_fields if alt else rec.fields
    if val.shape[0] == 0 and only is None:
        return _no_records(buf, big_endian, rec, fields)
    return _columns(buf, big_endian, rec, fields, val, aux, only)


_NONE: dict[int, tuple[tuple, dict[str, pa.Array]]] = {}


def _no_records(buf, big_endian: bool, rec: R.RecordDef, fields: tuple[R.Field, ...]) -> dict[str, pa.Array]:
    """The (empty) columns of a record type a file does not hold, made once per field tuple
    (a small file lacks most record types: SDR, MRR...)."""
    known = _NONE.get(id(fields))
    if known is None or known[0] is not fields:
        if len(_NONE) > 256:
            _NONE.clear()
        empty = np.zeros((0, len(fields)), np.int64)
        known = _NONE[id(fields)] = (fields, _columns(buf, big_endian, rec, fields, empty, empty.astype(np.int32),
                                                      None))
    return dict(known[1])


def _columns(buf: np.ndarray, big_endian: bool, rec: R.RecordDef, fields: tuple[R.Field, ...], val: np.ndarray,
             aux: np.ndarray, only: list[str] | None) -> dict[str, pa.Array]:
    done = _scalar_texts(buf, fields, val, aux, only)
    if val.shape[0]:
        done.update(_scalar_numbers(fields, val, aux, only))
        done.update(_scalar_chars(fields, val, aux, only))
    out = {}
    for i, f in enumerate(fields):
        if only is not None and f.name not in only:
            continue
        out[f.name] = done[i] if i in done else column(buf, big_endian, rec, i, val, aux, fields)
    return out


# Scalar fields of one record type by kind, listed once per field tuple: a small file
# converts ~20 record types, one or two records each, so per-field numpy calls dominate.
_KINDS: dict[int, tuple[tuple, dict[str, list[int]], list[int], list[int]]] = {}


def _scalar_kinds(fields: tuple[R.Field, ...]) -> tuple[dict[str, list[int]], list[int], list[int]]:
    """(numeric field indexes by type, C1 field indexes, Cn / Sn field indexes) of the scalar fields."""
    known = _KINDS.get(id(fields))
    if known is None or known[0] is not fields:
        numeric: dict[str, list[int]] = {}
        chars, texts = [], []
        for i, f in enumerate(fields):
            if f.is_array:
                continue
            if f.type == "C1":
                chars.append(i)
            elif f.type in ("Cn", "Sn"):
                texts.append(i)
            elif f.type in R.NUMERIC_ARROW:
                numeric.setdefault(f.type, []).append(i)
        if len(_KINDS) > 256:
            _KINDS.clear()
        known = _KINDS[id(fields)] = (fields, numeric, chars, texts)
    return known[1], known[2], known[3]


def _fields_array(typ: pa.DataType, valid: np.ndarray, buffers: list) -> pa.Array:
    """One array of k fields x n records (field-major) over ``buffers`` (values or offsets and
    data), validity from ``valid`` (k x n): the fields are its slices (a slice costs a fifth of
    building and validating an array)."""
    nulls = int(valid.size - np.count_nonzero(valid))
    bm = pa.py_buffer(np.packbits(valid.ravel(), bitorder="little")) if nulls else None
    return pa.Array.from_buffers(typ, int(valid.size), [bm] + buffers, null_count=nulls)


def _scalar_numbers(fields: tuple[R.Field, ...], val: np.ndarray, aux: np.ndarray, only: list[str] | None
                    ) -> dict[int, pa.Array]:
    """The scalar numeric fields, converted one type at a time (the same arrays as ``column``)."""
    n = int(val.shape[0])
    out = {}
    for t, idx in _scalar_kinds(fields)[0].items():
        if only is not None:
            idx = [i for i in idx if fields[i].name in only]
            if not idx:
                continue
        values = np.ascontiguousarray(_numeric_from_int64(np.ascontiguousarray(val[:, idx].T), t))
        whole = _fields_array(R.NUMERIC_ARROW[t], aux[:, idx].T >= 0, [pa.py_buffer(values)])
        for j, i in enumerate(idx):
            out[i] = whole.slice(j * n, n)
    return out


def _scalar_chars(fields: tuple[R.Field, ...], val: np.ndarray, aux: np.ndarray, only: list[str] | None
                  ) -> dict[int, pa.Array]:
    """The C1 fields in one gather (Latin-1 above 0x7F, like ``char_array``), one string array
    per field over the shared data."""
    idx = [i for i in _scalar_kinds(fields)[1] if only is None or fields[i].name in only]
    if len(idx) < 2:
        return {}
    n = int(val.shape[0])
    chars = np.ascontiguousarray(val[:, idx].T).astype(np.uint8).ravel()
    valid = aux[:, idx].T >= 0
    offsets, data = _gather(chars, np.arange(chars.shape[0], dtype=np.int64),
                            np.where(valid.ravel(), 1, -1).astype(np.int64), True)
    whole = _fields_array(pa.string(), valid, [pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data)])
    return {i: whole.slice(j * n, n) for j, i in enumerate(idx)}


def _scalar_texts(buf: np.ndarray, fields: tuple[R.Field, ...], val: np.ndarray, aux: np.ndarray,
                  only: list[str] | None) -> dict[int, pa.Array]:
    """The scalar Cn / Sn fields of a record type gathered in one kernel call, one string array
    per field over the shared data (MIR has 33 strings: one call instead of 33)."""
    idx = _scalar_kinds(fields)[2]
    if only is not None:
        idx = [i for i in idx if fields[i].name in only]
    n = int(val.shape[0])
    if len(idx) < 2 or n == 0:
        return {}
    lens = np.ascontiguousarray(aux[:, idx].T).astype(np.int64)
    offsets, data = _gather(buf, np.ascontiguousarray(val[:, idx].T).ravel(), lens.ravel(), True)
    if offsets[-1] >= 2**31:
        return {}                       # int32 offsets would overflow: one array per field
    whole = _fields_array(pa.string(), lens >= 0, [pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data)])
    return {i: whole.slice(j * n, n) for j, i in enumerate(idx)}
