"""Fuzzing with the real files: bit flips, truncations, length-field edits, inserted and
deleted bytes, with a fixed seed. Every mutant must give a clear rejection or a salvage:
no other exception, no hang, tables with the published schemas, issues inside the file."""

from __future__ import annotations

import random
import struct
import time

import pytest

from failmap_assets.wafer.rejects import Rejected
from failmap_assets.stdf import SCHEMAS, parse_stdf
from tests.support.testdata import requires_shared

pytestmark = requires_shared

SEEDS = [
    ("makechip_x.stdf", None), ("spreadsheet14.stdf", None), ("main_Lot_1_Wafer_1_Oct_13_09h33m41s_STDF.stdf", None),
    ("stdf4j_test.stdf", None), ("d10_1.std", None), ("sort_4die_20times.stdf", 40_000),
    ("TEST_FT_GX36_A2_FT_E_02032013_0230.stdf", 60_000), ("a595.stdf", 60_000), ("bcdm_S11189_c_01.stdf", 60_000),
    ("rabbi.stdf", 30_000), ("N09D212_1_12_P_ETS060702_04222019.std", 30_000),
    ("WS_P9AR90_25C_SmartScale1_20191226_23h16m02s.stdf", 40_000),    # DTR text with control characters
]
MUTANTS_PER_FILE = 30


def _headers(data: bytes) -> list[int]:
    be = data[:2] == b"\x00\x02"
    out, pos = [], 0
    while pos + 4 <= len(data):
        out.append(pos)
        pos += 4 + int.from_bytes(data[pos:pos + 2], "big" if be else "little")
    return out


def _mutate(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    kind = rng.choice(["flip", "flip", "truncate", "length", "length", "insert", "delete", "zero"])
    b = bytearray(data)
    heads = _headers(data)
    if kind == "flip":
        for _ in range(rng.randint(1, 12)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
    elif kind == "truncate":
        del b[rng.randrange(len(b)):]
    elif kind == "length":
        h = rng.choice(heads)
        be = data[:2] == b"\x00\x02"
        old = int.from_bytes(b[h:h + 2], "big" if be else "little")
        new = rng.choice([0, 1, 2, 3, max(old - 1, 0), old + 1, old * 2, 0xFFFF, rng.randrange(0x10000)])
        b[h:h + 2] = new.to_bytes(2, "big" if be else "little")
    elif kind == "insert":
        i = rng.randrange(len(b))
        b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 9)))
    elif kind == "delete":
        i = rng.randrange(len(b))
        del b[i:i + rng.randint(1, 9)]
    else:
        i = rng.randrange(len(b))
        b[i:i + rng.randint(4, 64)] = bytes(min(64, len(b) - i))
    return kind, bytes(b)


def _check(d, n: int):
    for name, t in d.tables.items():
        assert t.schema.equals(SCHEMAS[name]), name
    assert d.tables["files"].num_rows == 1
    for i in d.issues:
        assert 0 <= i.offset <= n and i.reason and i.detail


@pytest.mark.parametrize("name,prefix", SEEDS)
def test_fuzz_real_files(name, prefix, stdf_path):
    data = stdf_path(name).read_bytes()
    if prefix:
        # cut at a record boundary so the seed itself is clean
        heads = [h for h in _headers(data) if h <= prefix]
        data = data[:heads[-1]]
    rng = random.Random(f"stdf-fuzz-{name}")
    outcomes = {"rejected": 0, "complete": 0, "salvaged": 0}
    parse_stdf(data, name=name)          # warm-up: a cold Numba cache compiles here, untimed
    for _ in range(MUTANTS_PER_FILE):
        kind, m = _mutate(data, rng)
        t0 = time.perf_counter()
        try:
            d = parse_stdf(m, name=name)
        except Rejected as e:
            assert e.reason and e.detail
            outcomes["rejected"] += 1
        else:
            _check(d, len(m))
            outcomes["complete" if d.complete else "salvaged"] += 1
        assert time.perf_counter() - t0 < 10, (name, kind)
    assert sum(outcomes.values()) == MUTANTS_PER_FILE


@pytest.mark.parametrize("name", ["sort_4die_20times.stdf", "a595.stdf"])
def test_truncation_salvages_every_complete_record(name, stdf_path, parsed):
    """Cut anywhere: every record that ends before the cut is kept, the error points at the next one."""
    data = stdf_path(name).read_bytes()
    full = parsed(name)
    heads = _headers(data)
    rng = random.Random(7)
    for cut in sorted(rng.sample(range(8, len(data)), 12)):
        d = parse_stdf(data[:cut], name=name)
        complete = sum(1 for h in heads if h + 4 + int.from_bytes(data[h:h + 2], "big" if full.byte_order ==
                                                                        "big" else "little") <= cut)
        assert sum(d.record_counts.values()) == complete
        if cut in heads:
            assert d.complete
        else:
            err = d.errors[0]
            assert err.reason in ("record_past_end", "truncated_header")
            assert err.offset == max(h for h in heads if h < cut) and err.record == complete
        # results already read are identical to the full parse
        n = d.tables["ptr_results"].num_rows
        assert d.tables["ptr_results"]["result"].to_pylist() == full.tables["ptr_results"]["result"][:n].to_pylist()


def test_length_field_edits_never_read_past_the_buffer(stdf_path):
    """Every REC_LEN of a small file set to every interesting value, one at a time."""
    data = stdf_path("makechip_x.stdf").read_bytes()
    for h in _headers(data)[1:]:
        for new in (0, 1, 3, 7, 0xFFFF):
            b = bytearray(data)
            b[h:h + 2] = struct.pack("<H", new)
            try:
                d = parse_stdf(bytes(b))
            except Rejected:
                continue
            _check(d, len(b))


def _random_gdr(rng: random.Random) -> bytes:
    """A GDR body: a field count and typed items, some valid, some with random bytes."""
    items = b""
    n = rng.randint(0, 12)
    for _ in range(n):
        code = rng.choice([0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13] * 3 + [rng.randrange(256)])
        if code in (10, 11):
            ln = rng.randint(0, 40)
            items += bytes([code, ln]) + bytes(rng.randrange(256) for _ in range(ln))
        elif code == 12:
            bits = rng.randint(0, 70)
            items += bytes([code]) + struct.pack("<H", bits) + bytes(rng.randrange(256) for _ in range((bits + 7) // 8))
        else:
            size = {0: 0, 1: 1, 4: 1, 13: 1, 2: 2, 5: 2, 3: 4, 6: 4, 7: 4, 8: 8}.get(code, 3)
            if rng.random() < 0.1:
                size = rng.choice([0, 1, 2, 4, 8])
            items += bytes([code]) + bytes(rng.randrange(256) for _ in range(size))
    if rng.random() < 0.3:
        items = items[:rng.randrange(len(items) + 1)]
    return struct.pack("<H", n if rng.random() < 0.8 else rng.randrange(0x10000)) + items


def test_fuzz_gdr_and_text_kernels():
    """Random GDR bodies (the GEN_DATA text kernel) and DTR text of random bytes (the JSON
    string kernel): no exception, every ``fields`` value is JSON, GDRs that decode keep
    their item count."""
    import json

    from failmap_synth.stdf_any import record, stdf

    rng = random.Random("stdf-fuzz-gdr")
    recs = []
    for _ in range(300):
        recs.append(record("GDR", raw=_random_gdr(rng)))
        txt = bytes(rng.randrange(256) for _ in range(rng.randint(0, 60)))
        recs.append(record("DTR", raw=bytes([len(txt)]) + txt))
    d = parse_stdf(stdf(recs))
    _check(d, 0x7FFFFFFF)
    rows = [r for r in d.tables["generic"].to_pylist() if r["rec_name"] in ("GDR", "DTR")]
    assert len(rows) == 600
    decoded = 0
    for r in rows:
        obj = json.loads(r["fields"])
        if r["rec_name"] == "GDR" and obj.get("GEN_DATA") is not None:
            assert len(obj["GEN_DATA"]) == obj["FLD_CNT"]
            decoded += 1
        elif r["rec_name"] == "DTR":
            assert isinstance(obj["TEXT_DAT"], str)
    assert decoded > 100
