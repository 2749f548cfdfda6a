"""wafer_json written by the Numba kernel is byte-for-byte the former Arrow implementation's."""

from __future__ import annotations

import json
import threading

import numpy as np
import pyarrow as pa
import pytest

from failmap_assets.wafer.model import CompanionMap, WaferMap, match_dies
from failmap_assets.maps import coordinates
from failmap_assets.maps.coordinates import wafer_json
from failmap_assets.maps.palette import legend
from tests.maps import contract_companion, contract_wafer, make_companion, make_wafer, round_wafer
from tests.maps import json_reference

SOURCE = {"a_key": "20260111/a.Z", "a_etag": "ea", "b_key": "20260111/b.gz", "b_etag": "eb"}
A_ONLY = {"a_key": "20260111/a.Z", "a_etag": "ea", "b_key": None, "b_etag": None}

HOSTILE = [
    'quote " inside',
    "back\\slash \\u0041 \\",
    "tab\tnew\nline\r\x00\x1f\x7f",
    "unicode: µ ü 日本 😀 \u2028 \u2029",
    "</script><!--",
    "",
    "plain,NA,1e-3",
]


def both(wafer, companion=None, *, token="TOK_01P", source=None, **kw) -> bytes:
    """The new and the former document; asserts they are the same bytes and valid JSON."""
    source = source if source is not None else (SOURCE if companion is not None else A_ONLY)
    new = wafer_json(wafer, wafer_token=token, source=source, companion=companion, **kw)
    old = json_reference.wafer_json(wafer, wafer_token=token, source=source, companion=companion, **kw)
    assert isinstance(new, bytes)
    assert new == old
    new.decode("ascii")
    json.loads(new)
    return new


def random_wafer(rng, n, *, span=60, x0=0, y0=0, dup_rate=0.0, n_bins=30, names=None) -> WaferMap:
    x = rng.integers(x0 - span, x0 + span, n)
    y = rng.integers(y0 - span, y0 + span, n)
    if dup_rate and n:
        # Repeated (x, y): the later row must win, in both implementations.
        k = rng.random(n) < dup_rate
        src = rng.integers(0, n, int(k.sum()))
        x[k], y[k] = x[src], y[src]
    bins = np.where(rng.random(n) < 0.7, 1, rng.integers(0, n_bins, n))
    bin_pass = {int(b): bool(rng.random() < 0.3) for b in np.unique(bins)[:5]}
    return make_wafer(x, y, bins, bin_pass=bin_pass, bin_names=names or {}, lot="L1", wafer="01",
                      product="P", step="CP1", tester="T", partid="PID", stime="20260101_000000",
                      flat=str(rng.choice(["U", "D", "L", "R"])))


def random_companion(rng, wafer, *, share=0.7, extra=20, texts=None, kind="list") -> CompanionMap:
    """B over a random share of A's dies (own order), plus ``extra`` dies A does not have."""
    n = wafer.die_count
    pick = np.flatnonzero(rng.random(n) < share)
    rng.shuffle(pick)
    # Keep B one row per (x, y), as readers hand it over (retests resolved).
    keys = set()
    rows = []
    for i in pick.tolist():
        key = (int(wafer.x[i]), int(wafer.y[i]))
        if key not in keys:
            keys.add(key)
            rows.append(key)
    far = 10_000
    rows += [(far + j, -far - j) for j in range(extra)]
    bx = np.array([r[0] for r in rows], dtype=np.int64)
    by = np.array([r[1] for r in rows], dtype=np.int64)
    m = len(rows)
    bb = rng.integers(0, 70000, m)
    if texts is None:
        texts = [",".join("NA" if rng.random() < 0.1 else f"{v:.6g}" for v in rng.normal(size=3)) for _ in range(m)]
    comp = make_companion(bx, by, bb, ["0,0,0"] * m, stime="20260101_000005", partid="P\u00e9", tester=None)
    comp.values_text = as_container(list(texts), kind)
    return comp


def as_container(values: list, kind: str):
    if kind == "list":
        return values
    if kind == "arrow":
        return pa.array(values, pa.string())
    if kind == "large":
        return pa.array(values, pa.large_string())
    if kind == "sliced":
        return pa.array(['pad"', "pad\n", None] + values, pa.string())[3:]
    if kind == "chunked":
        half = len(values) // 2
        return pa.chunked_array([values[:half], values[half:]], pa.string())
    if kind == "chunked1":
        return pa.chunked_array([values], pa.string())
    raise ValueError(kind)


# ---------------------------------------------------------------- equality


@pytest.mark.parametrize("seed", range(12))
def test_random_wafers_with_and_without_companion(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 3000))
    wafer = random_wafer(rng, n, span=int(rng.integers(1, 80)), x0=int(rng.integers(-500, 500)),
                         y0=int(rng.integers(-500, 500)), dup_rate=0.05 if seed % 3 == 0 else 0.0,
                         names={0: "zero", 1: "PASS", 7: 'q"uote'})
    both(wafer)
    kind = ["list", "arrow", "large", "sliced", "chunked", "chunked1"][seed % 6]
    comp = random_companion(rng, wafer, share=float(rng.random()), extra=int(rng.integers(0, 50)), kind=kind)
    both(wafer, comp)
    # With the caller's match, as the day pipeline calls it.
    both(wafer, comp, die_match=match_dies(wafer.x, wafer.y, comp.x, comp.y))
    both(wafer, comp, pixels_per_die=int(rng.integers(1, 9)))


def test_round_wafer_shuffled_with_full_companion():
    rng = np.random.default_rng(5)
    wafer = round_wafer(45, seed=5, n_fail_bins=60)          # ~6,400 dies, shuffled
    comp = random_companion(rng, wafer, share=1.0, extra=3, kind="arrow")
    doc = json.loads(both(wafer, comp))
    assert doc["die_count"] == wafer.die_count and doc["b_only_dies"] == 3
    assert all("bucket_b" in c for c in doc["chips"])


@pytest.mark.parametrize("kind", ["list", "arrow", "large", "sliced", "chunked"])
def test_hostile_strings_everywhere(kind):
    rng = np.random.default_rng(3)
    for text in HOSTILE + ["lone surrogate \ud800"]:
        wafer = make_wafer([0, 1, 2, 3], [0, 0, 1, 1], [1, 2, 3, 2], bin_names={2: text, 3: text},
                           lot=text, wafer=text, product=text, step=text, partid=text, tester=text, stime=text)
        values = [text, "NA," + text, None, text + '"']
        if kind != "list" and "\ud800" in text:
            continue  # not representable in Arrow; the list case covers the all-Python path
        comp = make_companion([0, 1, 2, 9], [0, 0, 1, 9], [1, 2, 3, 4], ["1,2,3"] * 4,
                              stime=text, partid=text, tester=text)
        comp.values_text = as_container(values, kind)
        source = {"a_key": text, "a_etag": '"etag"', "b_key": text, "b_etag": None, "extra": text}
        both(wafer, comp, token=text, source=source)
        both(wafer, token=text, source=source)
    # Every value hostile, many dies: the escape path on many rows at once.
    wafer = random_wafer(rng, 500, span=30)
    texts = [HOSTILE[i % len(HOSTILE)] + str(i) for i in range(2000)]
    both(wafer, random_companion(rng, wafer, share=0.9, texts=None, kind=kind))
    comp = random_companion(rng, wafer, share=0.9, kind=kind)
    m = comp.die_count
    comp.values_text = as_container([texts[i % len(texts)] if i % 3 else None for i in range(m)], kind)
    both(wafer, comp)


def test_lone_surrogates_in_values_list():
    wafer = make_wafer([0, 1, 2], [0, 0, 0], [1, 1, 2])
    comp = make_companion([0, 1, 2], [0, 0, 0], [1, 1, 2], ["1,2,3"] * 3)
    comp.values_text = ["a\ud800b", None, "plain"]
    doc = json.loads(both(wafer, comp))
    assert [c["bucket_b"]["transformed_values"] for c in doc["chips"]] == ["a\ud800b", None, "plain"]


def test_empty_wafer_and_empty_companion():
    empty = make_wafer([], [], [], flat="U")
    both(empty)
    both(empty, make_companion([2, 3], [2, 3], [1, 5], ["1,2,3", "NA,NA,NA"]))
    both(empty, make_companion([], [], [], []))
    both(contract_wafer(), make_companion([], [], [], []))
    comp = make_companion([], [], [], [])
    comp.values_text = pa.array([], pa.string())
    both(contract_wafer(), comp)
    both(empty, comp)


def test_negative_and_extreme_coordinates_and_bins():
    i32 = np.iinfo(np.int32)
    # Extremes: the bounding box is far too sparse for the counting pass, so this
    # also runs the sorting fallback of the row-major order.
    x = [i32.min, i32.max, -1, 0, 1, -10, -100, -99999, 123456789, i32.min, 0]
    y = [i32.min, i32.max, -1, 0, 1, -10, i32.max, -99999, -123456789, 0, i32.min]
    bins = [0, 65535, 1, 10, 99, 100, 999, 1000, 9999, 10000, 65535]
    wafer = make_wafer(x, y, bins, bin_pass={0: True, 65535: False})
    comp = make_companion(x[::-1] + [5], y[::-1] + [5], [i32.min, i32.max, -1, 0, 9, 10, 99, 100, 12345, -12345, 7, 8],
                          ["1,2,3"] * 12)
    doc = json.loads(both(wafer, comp))
    assert doc["chips"][0]["x_abs"] == i32.min and doc["chips"][0]["y_abs"] == i32.min
    assert doc["chips"][0]["bucket_b"]["b"] == "7"   # B lists A's dies in reverse: row 10
    assert {c["bucket_b"]["b"] for c in doc["chips"]} >= {str(i32.min), str(i32.max), "-12345", "-1"}
    both(wafer)
    # Dense, all negative, and every digit count.
    rng = np.random.default_rng(0)
    both(random_wafer(rng, 2000, span=20, x0=-5000, y0=-123), None)
    both(random_wafer(rng, 2000, span=20, x0=-5000, y0=-123), random_companion(rng, random_wafer(rng, 10)))


def test_b_dies_not_in_a_and_a_dies_not_in_b():
    wafer = make_wafer([0, 1, 2, 3], [0, 0, 0, 0], [1, 1, 5, 1])
    comp = make_companion([9, 3, -4, 1], [9, 0, 4, 0], [3, 12, 0, 65535], ["1,2,3", "NA,NA,-1e-3", "4,5,6", "7,8,9"])
    doc = json.loads(both(wafer, comp))
    assert doc["b_only_dies"] == 2
    assert [("bucket_b" in c) for c in doc["chips"]] == [False, True, False, True]
    # Only B-only dies: no chip has a bucket_b.
    comp = make_companion([100, 101], [0, 0], [1, 1], ["1,2,3", "4,5,6"])
    doc = json.loads(both(wafer, comp))
    assert doc["b_only_dies"] == 2 and all("bucket_b" not in c for c in doc["chips"])


def test_repeated_dies_later_row_wins():
    wafer = make_wafer([0, 1, 0, 1, 0], [0, 0, 0, 0, 0], [5, 1, 7, 3, 9])
    doc = json.loads(both(wafer, make_companion([0], [0], [1], ["1,2,3"])))
    assert [(c["x_abs"], c["b"]) for c in doc["chips"]] == [(0, "9"), (1, "3")]


def test_contract_example_unchanged():
    both(contract_wafer(), contract_companion())
    both(contract_wafer())


def test_values_text_length_must_match_companion():
    comp = make_companion([0, 1], [0, 0], [1, 1], ["1,2,3", "1,2,3"])
    comp.values_text = ["1,2,3"]
    with pytest.raises(ValueError, match="values_text"):
        wafer_json(contract_wafer(), wafer_token="T", source=SOURCE, companion=comp)


def test_die_match_of_another_wafer_is_rejected():
    comp = contract_companion()
    bad_match = (np.array([0, 1], dtype=np.int64), np.array([], dtype=np.int64))  # 2 entries, 4 dies
    with pytest.raises(ValueError, match="b_index"):
        wafer_json(contract_wafer(), wafer_token="T", source=SOURCE, companion=comp, die_match=bad_match)
    out_of_range = (np.array([0, 1, 2, 3], dtype=np.int64), np.array([], dtype=np.int64))  # B has 3 dies
    with pytest.raises(ValueError, match="b_index"):
        wafer_json(contract_wafer(), wafer_token="T", source=SOURCE, companion=comp, die_match=out_of_range)


def test_int64_and_noncontiguous_inputs():
    # Readers hand over int32; anything integer and strided must work the same.
    rng = np.random.default_rng(8)
    w = random_wafer(rng, 800, span=25)
    comp = random_companion(rng, w, kind="arrow")
    w2 = WaferMap(format=w.format, x=np.repeat(w.x.astype(np.int64), 2)[::2], y=w.y.astype(np.int16),
                  bin=w.bin.astype(np.int64), retest_count=w.retest_count, flat=w.flat, bin_pass=w.bin_pass)
    w1 = WaferMap(format=w.format, x=w.x, y=w.y, bin=w.bin, retest_count=w.retest_count, flat=w.flat,
                  bin_pass=w.bin_pass)
    assert wafer_json(w2, wafer_token="T", source=SOURCE, companion=comp) == \
        wafer_json(w1, wafer_token="T", source=SOURCE, companion=comp)
    both(w2, comp)


# ---------------------------------------------------------------- the legend


@pytest.mark.parametrize("seed", range(5))
def test_json_legend_equals_palette_legend(seed):
    rng = np.random.default_rng(seed)
    for _ in range(3):
        bins = np.unique(rng.integers(-5, 70000, int(rng.integers(0, 60))))
        passed = rng.random(len(bins)) < 0.4
        counts = rng.integers(1, 10_000, len(bins))
        names = {int(b): f"name {b} \"q\"" for b in bins[::3].tolist()}
        assert coordinates._legend(bins, passed, names, counts) == legend(bins, passed, names=names, counts=counts)
        assert coordinates._legend(bins, passed, {}, counts) == legend(bins, passed, counts=counts)


# ---------------------------------------------------------------- threads


def test_two_threads_render_the_same_bytes():
    """The kernels run without the GIL: two wafers at once must not disturb each other."""
    rng = np.random.default_rng(21)
    cases = []
    for _ in range(2):
        w = round_wafer(40, seed=int(rng.integers(1000)))
        cases.append((w, random_companion(rng, w, kind="arrow")))
    expected = [json_reference.wafer_json(w, wafer_token="T", source=SOURCE, companion=c) for w, c in cases]
    results: list = [[], []]

    def run(k):
        w, c = cases[k]
        for _ in range(5):
            results[k].append(wafer_json(w, wafer_token="T", source=SOURCE, companion=c))

    threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r == expected[k] for k in range(2) for r in results[k]) and all(len(r) == 5 for r in results)
