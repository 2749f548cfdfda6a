"""The one-pass JSON of flat records (flatjson) against the column-by-column path (jsontext)."""

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
    val, aux, _ = D.interpret(buf, offs, lens, be, rec)
    got = flatjson.flat_objects(buf, rec, val, aux)
    ref = T._record_json(D.columns(buf, be, rec, val, aux), len(offs))
    assert got.type == ref.type and got.equals(ref), (rec.name, got.to_pylist()[:3], ref.to_pylist()[:3])


def test_flat_records_are_the_expected_ones():
    assert {r.name for r in FLAT} >= {"PMR", "PCR", "ATR", "DTR", "BPS", "EPS", "FAR", "MIR", "MRR"}
    assert not flatjson.is_flat(R.BY_NAME["WCR"]) and not flatjson.is_flat(R.BY_NAME["VUR"])


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


@pytest.mark.parametrize("big_endian", [False, True])
def test_flat_json_fuzz(big_endian):
    """Random bodies of every length (odd bytes: quotes, backslashes, control characters,
    Latin-1, broken and valid UTF-8; string lengths that fit, overrun or end at REC_LEN)."""
    rng = np.random.default_rng(7 + big_endian)
    alphabet = np.frombuffer(b'aZ0 "\\\x00\x01\x08\t\n\x0b\x0c\r\x1f\x7f\x80\xb0\xc3\xa9\xe2\x82\xac\xff', np.uint8)
    for rec in FLAT:
        chunks, offs, lens, at = [], [], [], 0
        for ln in list(range(0, 48)) * 12:
            body = alphabet[rng.integers(0, alphabet.size, ln)] if rng.random() < 0.5 else \
                rng.integers(0, 256, ln, dtype=np.uint8)
            for p in range(ln):                   # plausible string lengths
                if rng.random() < 0.15:
                    body[p] = min(255, int(rng.integers(0, max(1, ln - p + 2))))
            chunks.append(np.concatenate([np.array([ln & 0xFF, ln >> 8, rec.typ, rec.sub], np.uint8), body]))
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
        flatjson.flat_objects(buf, rec, val, aux)
    with pytest.raises(ValueError):
        flatjson.flat_objects(buf, rec, val[:, :3], aux[:, :3])
