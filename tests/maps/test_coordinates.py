"""The per-wafer JSON: contract example, ordering, escaping, and a slow reference."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from failmap_assets.maps.coordinates import wafer_json
from failmap_assets.maps.palette import bin_rgb, rgb_hex
from failmap_assets.maps.render import grid_for
from tests.maps import contract_companion, contract_wafer, make_companion, make_wafer, round_wafer

A_KEY = "20260111/N4A123.1_07P_20260111_143025.Z"
B_KEY = "20260111/N4A123.1_07P_20260111_143030.gz"
PAIRED = {"a_key": A_KEY, "a_etag": "etag-a", "b_key": B_KEY, "b_etag": "etag-b"}
A_ONLY = {"a_key": A_KEY, "a_etag": "etag-a", "b_key": None, "b_etag": None}

B_META = {"stime": "20260111_143030", "partid": "N4A123-07", "tester": "T5503-07"}


def doc_for(wafer, companion=None, source=None, **kw) -> dict:
    raw = wafer_json(wafer, wafer_token="N4A123.1_07P", source=source or (PAIRED if companion else A_ONLY),
                     companion=companion, **kw)
    assert isinstance(raw, bytes)
    raw.decode("utf-8")  # valid UTF-8
    return json.loads(raw)


def test_contract_example_exact_chips_and_header():
    doc = doc_for(contract_wafer(), contract_companion())
    assert doc["chips"] == [
        {"x_abs": -1, "y_abs": 0, "b": "1", "pass": True,
         "bucket_b": {"transformed_values": "0.812,1.25,1350", "b": "1", **B_META}},
        {"x_abs": 0, "y_abs": 0, "b": "1", "pass": True,
         "bucket_b": {"transformed_values": "0.807,NA,1342", "b": "1", **B_META}},
        {"x_abs": 1, "y_abs": 0, "b": "285", "pass": False,
         "bucket_b": {"transformed_values": "0.901,88.1,1101", "b": "285", **B_META}},
        {"x_abs": 0, "y_abs": 1, "b": "1", "pass": True},
    ]
    contract_header = {k: doc[k] for k in
                       ("wafer_token", "lot", "wafer", "product", "step", "tester", "partid", "stime", "source", "flat")}
    assert contract_header == {
        "wafer_token": "N4A123.1_07P", "lot": "N4A123.1", "wafer": "07", "product": "SCT101A", "step": "CP1",
        "tester": "T5503-02", "partid": "N4A123-07", "stime": "20260111_143025", "source": PAIRED, "flat": "D",
    }
    # Bounding box x -1..1, y 0..1, plus the margin lane below (FLAT D) for the notch.
    assert doc["grid"] == {"x_min": -1, "x_max": 1, "y_min": 0, "y_max": 2, "pixels_per_die": 4}
    assert doc["grid"] == grid_for(contract_wafer(), 4)
    assert list(doc)[-1] == "chips"
    assert doc["die_count"] == 4 and doc["b_only_dies"] == 0 and doc["b_die_count"] == 3
    assert doc["b_value_names"] == ["VDD_MIN", "IDDQ_UA", "FMAX_MHZ"]
    assert doc["bins"] == [
        {"bin": 1, "pass": True, "name": "PASS", "rgb": rgb_hex(bin_rgb(1, True)), "count": 3},
        {"bin": 285, "pass": False, "name": "IDDQ_FAIL", "rgb": rgb_hex(bin_rgb(285, False)), "count": 1},
    ]


def test_a_only_wafer_has_no_bucket_b_and_null_b_source():
    doc = doc_for(contract_wafer())
    assert [("bucket_b" in c) for c in doc["chips"]] == [False] * 4
    assert doc["source"] == A_ONLY and doc["source"]["b_key"] is None
    assert doc["b_only_dies"] is None


def test_row_major_order_and_bins_without_leading_zeros():
    # "0285" in a file is bin 285; bins are written as plain decimal strings.
    x = [3, -2, 0, 3, -2, 1]
    y = [-1, 2, -1, 2, -1, 0]
    bins = [285, 0, 7, 65535, 10, 100]
    doc = doc_for(make_wafer(x, y, bins))
    assert [(c["y_abs"], c["x_abs"], c["b"]) for c in doc["chips"]] == [
        (-1, -2, "10"), (-1, 0, "7"), (-1, 3, "285"), (0, 1, "100"), (2, -2, "0"), (2, 3, "65535"),
    ]


def test_bucket_b_only_for_dies_in_b_and_b_only_dies_counted():
    wafer = make_wafer([0, 1, 2], [0, 0, 0], [1, 1, 5])
    # B: die (1, 0) with a different bin and NA values; (9, 9) is not on the A map.
    comp = make_companion([9, 1], [9, 0], [3, 12], ["1,2,3", "NA,NA,-1e-3"])
    doc = doc_for(wafer, comp)
    chips = {(c["x_abs"], c["y_abs"]): c for c in doc["chips"]}
    assert set(chips) == {(0, 0), (1, 0), (2, 0)}  # the B-only die is not a chip
    assert "bucket_b" not in chips[(0, 0)] and "bucket_b" not in chips[(2, 0)]
    assert chips[(1, 0)]["b"] == "1"
    assert chips[(1, 0)]["bucket_b"] == {"transformed_values": "NA,NA,-1e-3", "b": "12", **B_META}
    assert doc["b_only_dies"] == 1


def test_companion_values_text_as_arrow_array_and_empty_companion():
    comp = contract_companion()
    comp.values_text = pa.array(comp.values_text)
    assert doc_for(contract_wafer(), comp) == doc_for(contract_wafer(), contract_companion())
    empty = make_companion([], [], [], [])
    doc = doc_for(contract_wafer(), empty)
    assert all("bucket_b" not in c for c in doc["chips"]) and doc["b_only_dies"] == 0


def test_missing_b_metadata_is_null():
    comp = make_companion([0], [1], [1], ["1,2,3"], partid=None, tester=None)
    chip = doc_for(contract_wafer(), comp)["chips"][-1]
    assert chip["bucket_b"] == {"transformed_values": "1,2,3", "b": "1", "stime": "20260111_143030",
                                "partid": None, "tester": None}


HOSTILE = [
    'quote " inside',
    "back\\slash \\u0041 \\",
    "tab\tnew\nline\r\x00\x1f\x7f",
    "unicode: µ ü 日本 😀 \u2028 \u2029",
    "lone surrogate \ud800",
    "</script><!--",
    "",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_strings_escaped(text):
    wafer = make_wafer([0, 1], [0, 0], [1, 2], bin_names={2: text}, lot=text, partid=text, tester=text)
    comp = make_companion([0, 1], [0, 0], [1, 2], ["1,2,3", "1,2,3"], stime=text, partid=text, tester=text)
    comp.values_text = [text, "NA," + text]
    source = {"a_key": text, "a_etag": '"etag"', "b_key": text, "b_etag": None}
    raw = wafer_json(wafer, wafer_token=text, source=source, companion=comp)
    raw.decode("ascii")  # everything non-ASCII went through \u escapes
    doc = json.loads(raw)
    assert doc["wafer_token"] == doc["lot"] == doc["partid"] == doc["tester"] == text
    assert doc["source"] == source
    assert doc["bins"][1]["name"] == text
    assert [c["bucket_b"] for c in doc["chips"]] == [
        {"transformed_values": text, "b": "1", "stime": text, "partid": text, "tester": text},
        {"transformed_values": "NA," + text, "b": "2", "stime": text, "partid": text, "tester": text},
    ]


@pytest.mark.parametrize("kind", ["list", "sliced", "chunked", "large_string"])
def test_values_text_containers_with_escapes_and_nulls(kind):
    # Arrow arrays are scanned through their raw buffers: slice offsets and chunking
    # must not shift which value gets escaped.
    # '"first' follows an empty value: its bad byte sits exactly on a shared offset.
    values = ["1,2,3", 'q"uote', "", '"first', None, "back\\", "\u00b5,NA,3", "ctl\x01", "plain,NA,1e-3"]
    if kind == "list":
        text = values
    elif kind == "sliced":
        text = pa.array(['pad"', "pad\n", "pad"] + values)[3:]
    elif kind == "chunked":
        text = pa.chunked_array([values[:3], values[3:]])
    else:
        text = pa.array(values, pa.large_string())
    n = len(values)
    comp = make_companion(list(range(n)), [0] * n, [1] * n, ["0,0,0"] * n)
    comp.values_text = text
    doc = doc_for(make_wafer(list(range(n)), [0] * n, [1] * n), comp)
    assert [c["bucket_b"]["transformed_values"] for c in doc["chips"]] == values


def test_repeated_die_keeps_the_later_row():
    doc = doc_for(make_wafer([0, 1, 0], [0, 0, 0], [5, 1, 7]))
    assert [(c["x_abs"], c["b"]) for c in doc["chips"]] == [(0, "7"), (1, "1")]


def test_empty_wafer():
    doc = doc_for(make_wafer([], [], [], flat="U"), make_companion([2], [2], [1], ["1,2,3"]))
    assert doc["chips"] == [] and doc["die_count"] == 0 and doc["b_only_dies"] == 1
    assert doc["grid"] == {"x_min": 0, "x_max": 0, "y_min": -1, "y_max": 0, "pixels_per_die": 4}


def test_pixels_per_die_is_reported_in_grid():
    assert doc_for(contract_wafer(), pixels_per_die=9)["grid"]["pixels_per_die"] == 9


def slow_reference(wafer, companion, wafer_token, source) -> dict:
    """The obvious implementation: one dict per die, json.dumps for everything."""
    pass_of = {int(b): bool(p) for b, p in zip(wafer.bin, wafer.is_pass())}
    b_at = {}
    if companion is not None:
        for j, (x, y) in enumerate(zip(companion.x.tolist(), companion.y.tolist())):
            b_at[(x, y)] = j
    chips = []
    for x, y, b in sorted(zip(wafer.x.tolist(), wafer.y.tolist(), wafer.bin.tolist()), key=lambda t: (t[1], t[0])):
        chip = {"x_abs": x, "y_abs": y, "b": str(b), "pass": pass_of[b]}
        if (x, y) in b_at:
            j = b_at[(x, y)]
            chip["bucket_b"] = {"transformed_values": companion.values_text[j], "b": str(int(companion.bin[j])),
                                "stime": companion.stime, "partid": companion.partid, "tester": companion.tester}
        chips.append(chip)
    doc = {"wafer_token": wafer_token, "lot": wafer.lot, "wafer": wafer.wafer, "product": wafer.product,
           "step": wafer.step, "tester": wafer.tester, "partid": wafer.partid, "stime": wafer.stime,
           "source": source, "flat": wafer.flat, "grid": grid_for(wafer, 4), "chips": chips}
    return json.loads(json.dumps(doc))


def test_equals_slow_reference_on_random_wafer():
    rng = np.random.default_rng(11)
    wafer = round_wafer(57, seed=11, flat="L", n_fail_bins=200)  # ~10,200 dies, shuffled
    wafer.bin_pass = {17: True, 1: True, 44: False}
    wafer.lot, wafer.wafer, wafer.stime = "L\u00f6t\"1", "03", "20260101_000000"
    assert wafer.die_count >= 10_000
    # B covers a random ~70 % of A dies (in its own order) plus 50 dies A does not have.
    in_b = np.flatnonzero(rng.random(wafer.die_count) < 0.7)
    rng.shuffle(in_b)
    bx = np.concatenate([wafer.x[in_b], np.arange(50) + 1000])
    by = np.concatenate([wafer.y[in_b], np.zeros(50, dtype=int)])
    bb = rng.integers(0, 70000 // 2, len(bx))
    text = [",".join("NA" if rng.random() < 0.1 else f"{v:.6g}" for v in rng.normal(size=3)) for _ in range(len(bx))]
    text[5] = 'odd "value"\\,\n'
    comp = make_companion(bx, by, bb, ["0,0,0"] * len(bx), stime="20260101_000005", partid="P\u00e9", tester=None)
    comp.values_text = text
    source = {"a_key": "k/a", "a_etag": "1", "b_key": "k/b", "b_etag": "2"}
    fast = json.loads(wafer_json(wafer, wafer_token="TOK_03P", source=source, companion=comp))
    ref = slow_reference(wafer, comp, "TOK_03P", source)
    assert fast["chips"] == ref["chips"]
    assert {k: fast[k] for k in ref} == ref
    assert fast["b_only_dies"] == 50
    # A-only too.
    fast = json.loads(wafer_json(wafer, wafer_token="TOK_03P", source=A_ONLY, companion=None))
    assert fast["chips"] == slow_reference(wafer, None, "TOK_03P", A_ONLY)["chips"]
