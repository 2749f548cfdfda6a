"""The default-data columns out of the kernels' sparse override lists (``override_columns``,
one Numba pass) against the numpy implementation it replaced, kept here as the reference:
random sparse lists over PTR / MPR / FTR's default-data fields and a tuple of the other
field types, both byte orders; bad lists are rejected before anything is written. And the
kernels' null counts (``_valid_count``)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from failmap_assets.stdf import records as R
from failmap_assets.stdf import tables as T
from failmap_assets.stdf.decode.arrow import null_array
from failmap_assets.stdf.decode.columns import _numeric_from_int64, column
from failmap_assets.stdf.decode.fields import DN_MASK, DN_SHIFT
from failmap_assets.stdf.decode.overrides import override_columns
from failmap_assets.stdf.decode.strings import _valid_count, string_array
from tests.stdf.conftest import float_bits


def reference(buf, be, rec: R.RecordDef, fields, n, ov_row, ov_field, ov_val, ov_len) -> dict[str, pa.Array]:
    """The numpy implementation override_columns replaced (a boolean select per field, full
    length scatter, packbits), unchanged."""
    cols = {}
    for k, f in enumerate(fields):
        sel = ov_field == k
        if not sel.any():
            cols[f.column] = null_array(f.arrow_type(), n)
            continue
        rows, vals, lens = ov_row[sel], ov_val[sel], ov_len[sel]
        if f.type in ("Cn", "Sn", "Bn", "Dn") and not f.is_array:
            ln = np.full(n, -1, dtype=np.int64)
            st = np.zeros(n, dtype=np.int64)
            ln[rows] = lens
            st[rows] = vals & DN_MASK if f.type == "Dn" else vals
            cols[f.column] = string_array(buf, st, ln, binary=f.type in ("Bn", "Dn"))
        elif f.is_array:
            v2 = np.zeros((n, 2), dtype=np.int64)
            a2 = np.full((n, 2), -1, dtype=np.int32)
            v2[rows, 0] = np.where(lens >= 0, lens, 0)
            a2[rows, 0] = 0
            v2[rows, 1] = vals
            a2[rows, 1] = lens
            fake = (R.Field("_CNT", "U2", ""), R.Field(f.name, f.type, f.desc, "_CNT"))
            cols[f.column] = column(buf, be, rec, 1, v2, a2, fake)
        else:
            arr = np.zeros(n, dtype=R.NUMPY_DTYPE[f.type])
            arr[rows] = _numeric_from_int64(vals, f.type)
            valid = np.zeros(n, dtype=bool)
            valid[rows] = lens >= 0
            bm = np.packbits(valid, bitorder="little")
            nulls = n - int(np.count_nonzero(valid))
            cols[f.column] = pa.Array.from_buffers(f.arrow_type(), n, [pa.py_buffer(bm), pa.py_buffer(arr)],
                                                   null_count=nulls)
    return cols


# every other kind of field the columns can be: numbers of each width, Sn, Bn, lists of each width
OTHER = (R.Field("A", "U8", ""), R.Field("B", "I2", ""), R.Field("C", "R8", ""), R.Field("D", "B1", ""),
         R.Field("E", "Sn", ""), R.Field("F", "Bn", ""), R.Field("G", "I4", ""), R.Field("H", "R4", "", "N"),
         R.Field("I", "I1", "", "N"), R.Field("J", "U8", "", "N"), R.Field("K", "I2", "", "N"),
         R.Field("L", "U4", ""), R.Field("M", "Uf", ""))
FIELD_SETS = {k: T._DEFAULTS[k][1] for k in ("PTR", "MPR", "FTR")} | {"other": OTHER}


def _random_list(rng, fields, n, nbuf, density, sort=True):
    """A kernel's override list: each (row, field) at most once, rows in order (a row's fields
    in order, as the kernels write them), values inside a buffer of ``nbuf`` bytes."""
    hit = rng.random((n, len(fields))) < density
    rows, flds = np.nonzero(hit)
    m = rows.shape[0]
    lens = rng.integers(0, 12, m)
    lens[rng.random(m) < 0.2] = -1                    # overridden to null
    vals = rng.integers(-2**63, 2**63 - 1, m, dtype=np.int64, endpoint=True)
    for j in range(m):
        f = fields[flds[j]]
        if f.type in ("Cn", "Sn", "Bn", "Dn") or f.is_array:
            w = R.FIXED_SIZE.get(f.type, 1) if f.is_array else 1
            lens[j] = min(lens[j], nbuf // w)
            room = nbuf - w * max(lens[j], 0)
            vals[j] = rng.integers(0, room + 1)
            if f.type == "Dn":
                vals[j] |= int(rng.integers(0, 1 << 16)) << DN_SHIFT      # the bit count rides above
        if lens[j] < 0:
            vals[j] = 0 if rng.random() < 0.9 else vals[j]
        elif not (f.type in ("Cn", "Sn", "Bn", "Dn") or f.is_array):
            lens[j] = 0
    if not sort:
        p = rng.permutation(m)
        rows, flds, vals, lens = rows[p], flds[p], vals[p], lens[p]
    return (rows.astype(np.int64), flds.astype(np.int64), vals, lens.astype(np.int64))


@pytest.mark.parametrize("which", list(FIELD_SETS))
@pytest.mark.parametrize("big_endian", [False, True])
def test_override_columns_equal_the_numpy_reference(which, big_endian):
    rng = np.random.default_rng(16 + 2 * list(FIELD_SETS).index(which) + big_endian)
    fields = FIELD_SETS[which]
    rec = R.BY_NAME["MPR"]
    for trial in range(60):
        nbuf = int(rng.integers(1, 400))
        buf = rng.integers(0, 256, nbuf, dtype=np.uint8)
        if trial % 3 == 0:
            buf &= 0x7F                                   # ASCII: text as is; else Latin-1 transcoded
        n = int(rng.integers(0, 90)) if trial % 5 else int(rng.integers(0, 3))
        density = float(rng.choice([0.0, 0.02, 0.3, 1.0]))
        ov = _random_list(rng, fields, n, nbuf, density)
        got = override_columns(buf, big_endian, fields, n, *ov)
        want = reference(buf, big_endian, rec, fields, n, *ov)
        assert list(got) == list(want)
        for name, a in got.items():
            a.validate(full=True)
            assert a.type == want[name].type and len(a) == n, name
            assert float_bits(a).equals(float_bits(want[name])), (trial, name)


def test_override_columns_big_and_real_sized():
    """A PTR-sized column (many rows, a few overrides), text past 255 bytes' worth of rows."""
    rng = np.random.default_rng(7)
    fields = FIELD_SETS["PTR"]
    buf = rng.integers(0, 256, 5000, dtype=np.uint8)
    ov = _random_list(rng, fields, 20_000, 5000, 0.01)
    got = override_columns(buf, False, fields, 20_000, *ov)
    want = reference(buf, False, R.BY_NAME["PTR"], fields, 20_000, *ov)
    for name, a in got.items():
        assert float_bits(a).equals(float_bits(want[name])), name


@pytest.mark.parametrize("bad, reason", [
    (lambda ov, n: ov[0].__setitem__(3, n), "row outside"),
    (lambda ov, n: ov[0].__setitem__(3, -1), "row outside"),
    (lambda ov, n: ov[1].__setitem__(3, 11), "field outside"),
    (lambda ov, n: ov[1].__setitem__(3, -1), "field outside"),
    (lambda ov, n: ov[0].__setitem__(slice(None), ov[0][::-1].copy()), "not increasing"),
    (lambda ov, n: ov[2].__setitem__(np.nonzero(ov[1] == 5)[0][0], 10**6), "outside the file"),
    (lambda ov, n: ov[2].__setitem__(np.nonzero(ov[1] == 5)[0][0], -5), "outside the file"),
    (lambda ov, n: ov[3].__setitem__(np.nonzero(ov[1] == 5)[0][0], 2**62), "outside the file"),
])
def test_override_columns_reject_bad_lists(bad, reason):
    """Rows, fields and spans are checked before the pass: a clear error, nothing read out of bounds."""
    rng = np.random.default_rng(3)
    fields = FIELD_SETS["PTR"]
    buf = rng.integers(0, 256, 300, dtype=np.uint8)
    ov = [x.copy() for x in _random_list(rng, fields, 50, 300, 0.5)]
    ov[3][ov[1] == 5], ov[2][ov[1] == 5] = 4, 10              # UNITS: valid texts
    bad(ov, 50)
    with pytest.raises(ValueError, match=reason):
        override_columns(buf, False, fields, 50, *ov)


def test_override_columns_reject_unsorted_rows_and_uneven_lists():
    rng = np.random.default_rng(4)
    fields = FIELD_SETS["MPR"]
    buf = rng.integers(0, 256, 300, dtype=np.uint8)
    ov = _random_list(rng, fields, 40, 300, 0.3, sort=False)
    with pytest.raises(ValueError, match="not increasing"):
        override_columns(buf, False, fields, 40, *ov)
    ov = _random_list(rng, fields, 40, 300, 0.3)
    dup = [np.insert(x, 5, x[5]) for x in ov]             # one (row, field) twice
    with pytest.raises(ValueError, match="not increasing"):
        override_columns(buf, False, fields, 40, *dup)
    lst = [x.copy() for x in ov]                           # RTN_INDX: U2 elements, one byte past the end
    i = int(np.nonzero(lst[1] == 7)[0][0])
    lst[3][i], lst[2][i] = 10, 300 - 2 * 10 + 1
    with pytest.raises(ValueError, match="outside the file"):
        override_columns(buf, False, fields, 40, *lst)
    lst[2][i] -= 1
    override_columns(buf, False, fields, 40, *lst)
    with pytest.raises(ValueError, match="different lengths"):
        override_columns(buf, False, fields, 40, ov[0], ov[1], ov[2][:-1], ov[3])
    with pytest.raises(ValueError, match="no override column"):
        override_columns(buf, False, (R.Field("X", "C1", ""),), 40, *(x[:0] for x in ov))


def test_valid_count_equals_unpackedfloat_bits():
    """The kernels' null counts (text / list columns): set bits among the first n, bits past n
    (or past the bitmap) not counted."""
    rng = np.random.default_rng(5)
    for n in [0, 1, 7, 8, 9, 63, 64, 65, 1000, 4099]:
        bm = rng.integers(0, 256, (n + 7) // 8 + int(rng.integers(0, 2)), dtype=np.uint8)
        want = int(np.unpackbits(bm, bitorder="little", count=n).sum()) if n else 0
        assert _valid_count(bm, n) == want, n
    assert _valid_count(np.full(2, 255, np.uint8), 40) == 16
