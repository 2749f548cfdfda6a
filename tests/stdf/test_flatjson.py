"""The one-pass JSON of flat records and their arrays (flatjson) against the column-by-column\npath (jsontext)."""

from __future__ import annotations

import numpy as np
import pytest

from failmap_assets.stdf import decode as D
from failmap_assets.stdf import flatjson
from failmap_assets.stdf import records as R
from failmap_assets.stdf import tables as T
from failmap_assets.stdf.scan import detect, scan
from failmap_assets.stdf.source import open_sources
from tests.stdf.conftest import ALL_V4_FILES
from tests.support.testdata import STDF_DIR, requires_shared

FLAT = [r for r in R.RECORDS if flatjson.is_flat(r)]


def _same(buf, be, rec, offs, lens):
    """flat_objects and, for records without arrays, scalar_objects (text and bytes used)
    equal to the column-by-column path over the interpreter's matrices."""
    val, aux, used = D.interpret(buf, offs, lens, be, rec)
    got = flatjson.flat_objects(buf, rec, val, aux, be)
    ref = T._record_json(D.columns(buf, be, rec, val, aux), len(offs))
    assert got.type == ref.type and got.equals(ref), (rec.name, got.to_pylist()[:3], ref.to_pylist()[:3])
    if flatjson.is_scalar(rec):
        direct, direct_used = flatjson.scalar_objects(buf, rec, offs, lens, be)
        assert direct.type == ref.type and direct.equals(ref), (rec.name, direct.to_pylist()[:3], ref.to_pylist()[:3])
        assert np.array_equal(direct_used, used), rec.name


def test_flat_records_are_the_expected_ones():
    assert {r.name for r in FLAT} >= {"PMR", "PCR", "ATR", "DTR", "BPS", "EPS", "FAR", "MIR", "MRR", "PLR", "PGR", "RDR", "SDR"}
    assert not flatjson.is_flat(R.BY_NAME["WCR"]) and not flatjson.is_flat(R.BY_NAME["VUR"])
    scalar = {r.name for r in FLAT if flatjson.is_scalar(r)}
    assert {"PMR", "PCR", "ATR", "DTR", "CNR", "BPS", "EPS", "MIR", "MRR"} <= scalar
    assert not scalar & {"SDR", "PLR", "PGR", "RDR", "PSR", "NMR", "SSR", "CDR"}      # they hold arrays


@requires_shared
@pytest.mark.parametrize("name", [n for n in ALL_V4_FILES if not n.endswith(".gz")])
def test_flat_json_equals_column_path_on_real_files(name):
    src = open_sources(STDF_DIR / name)[0]
    h = detect(src.data)
    idx = scan(src.data, h.big_endian)
    for rec in FLAT:
        pos = np.flatnonzero(idx.code == R.CODE[rec.name])
        if pos.size:
            _same(src.data, h.big_endian, rec, idx.offset[pos], idx.length[pos])


ALPHABET = np.frombuffer(b'aZ0 "\\\x00\x01\x08\t\n\x0b\x0c\r\x1f\x7f\x80\xb0\xc3\xa9\xe2\x82\xac\xff', np.uint8)


def _random_body(rec: R.RecordDef, rng, be: bool) -> bytes:
    """A well-formed body of ``rec``: small element counts, strings of odd bytes (quotes,
    backslashes, control characters, Latin-1, broken and valid UTF-8)."""
    counts = {f.count for f in rec.fields if f.count}
    vals: dict[str, int] = {}
    out = bytearray()
    order = "big" if be else "little"

    def text():
        t = bytes(ALPHABET[rng.integers(0, ALPHABET.size, int(rng.integers(0, 6)))])
        return t

    def one(typ):
        if typ in ("Cn",):
            t = text()
            return bytes([len(t)]) + t
        if typ == "Sn":
            t = text()
            return len(t).to_bytes(2, order) + t
        if typ == "C1":
            return bytes(ALPHABET[rng.integers(0, ALPHABET.size, 1)])
        return rng.integers(0, 256, R.FIXED_SIZE[typ], dtype=np.uint8).tobytes()

    for f in rec.fields:
        if f.name in counts:
            k = int(rng.integers(0, 5))
            vals[f.name] = k
            out += k.to_bytes(R.FIXED_SIZE[f.type], order)
        elif f.is_array:
            k = vals.get(f.count, 0)
            if f.type == "N1":
                out += rng.integers(0, 256, (k + 1) // 2, dtype=np.uint8).tobytes()
            else:
                for _ in range(k):
                    out += one(f.type)
        else:
            out += one(f.type)
    return bytes(out)


@pytest.mark.parametrize("big_endian", [False, True])
def test_flat_json_fuzz(big_endian):
    """Well-formed random records, then truncated at every length or with a byte mutated
    (lengths and counts that fit, overrun or end at REC_LEN), in one buffer."""
    rng = np.random.default_rng(7 + big_endian)
    for rec in FLAT:
        chunks, offs, lens, at = [], [], [], 0
        for _ in range(150):
            body = bytearray(_random_body(rec, rng, big_endian))
            for ln in sorted({len(body), int(rng.integers(0, len(body) + 1)), max(0, len(body) - 1)}):
                b = bytearray(body[:ln])
                if ln and rng.random() < 0.3:
                    b[int(rng.integers(0, ln))] = int(rng.integers(0, 256))
                hdr = ln.to_bytes(2, "big" if big_endian else "little") + bytes([rec.typ, rec.sub])
                chunks.append(np.frombuffer(hdr + bytes(b), np.uint8))
                offs.append(at)
                lens.append(ln)
                at += 4 + ln
        _same(np.concatenate(chunks), big_endian, rec, np.array(offs, np.int64), np.array(lens, np.int32))


def test_flat_json_rejects_matrices_that_do_not_fit():
    rec = R.BY_NAME["PMR"]
    buf = np.zeros(8, np.uint8)
    val = np.zeros((1, len(rec.fields)), np.int64)
    aux = np.zeros((1, len(rec.fields)), np.int32)
    val[0, 2], aux[0, 2] = 4, 10           # a string span past the end of the buffer
    with pytest.raises(ValueError):
        flatjson.flat_objects(buf, rec, val, aux, False)
    with pytest.raises(ValueError):
        flatjson.flat_objects(buf, rec, val[:, :3], aux[:, :3], False)
    plr = R.BY_NAME["PLR"]                  # arrays past the end: fixed-width and strings
    for field, count in (("GRP_MODE", 9), ("PGM_CHAR", 3)):
        val = np.zeros((1, len(plr.fields)), np.int64)
        aux = np.full((1, len(plr.fields)), -1, np.int32)
        val[0, plr.index(field)], aux[0, plr.index(field)] = 2, count
        buf = np.full(8, 5, np.uint8)
        with pytest.raises(ValueError):
            flatjson.flat_objects(buf, plr, val, aux, False)


def test_scalar_json_rejects_records_outside_the_buffer_and_records_with_arrays():
    pmr = R.BY_NAME["PMR"]
    buf = np.zeros(16, np.uint8)
    for offs, lens in (([0], [13]), ([-1], [2]), ([0], [-1]), ([0, 0], [1])):
        with pytest.raises(ValueError):
            flatjson.scalar_objects(buf, pmr, np.array(offs, np.int64), np.array(lens, np.int64), False)
    with pytest.raises(ValueError):
        flatjson.scalar_objects(buf, R.BY_NAME["PLR"], np.zeros(1, np.int64), np.zeros(1, np.int64), False)
    lay = flatjson._layout(pmr)             # layouts the kernel cannot read are refused, not read
    args = (np.array([0], np.int64), np.array([12], np.int64), False)
    for kinds, width, key_off in ((lay.kinds, np.where(lay.width == 1, 3, lay.width), lay.key_off),
                                  (np.where(lay.kinds == flatjson.K_TEXT, flatjson.K_U8, lay.kinds), lay.width,
                                   lay.key_off),
                                  (lay.kinds, lay.width, lay.key_off[::-1].copy())):
        *_, ok = flatjson._scalar_json(buf, *args[:2], False, kinds, width, lay.signed, lay.keys, key_off,
                                       flatjson.HEX_DIGITS, flatjson.SHORT_ESCAPES)
        assert not ok
    got, used = flatjson.scalar_objects(buf, pmr, np.array([0], np.int64), np.array([12], np.int64), False)
    assert got.to_pylist() == ['{"PMR_INDX": 0, "CHAN_TYP": 0, "CHAN_NAM": "", "PHY_NAM": "", "LOG_NAM": "", '
                               '"HEAD_NUM": 0, "SITE_NUM": 0}'] and used.tolist() == [9]
