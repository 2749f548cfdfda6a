"""Asset checks invoked directly on outputs in a local folder."""

from __future__ import annotations

import io
from datetime import date

import pyarrow as pa
import pyarrow.parquet as pq

from failmap_assets.defs.failmap.checks import json_png_check, unique_die_check
from failmap_assets.storage.local_store import LocalObjectStore

DAY = date(2026, 1, 11)


def put_part(store, name, tokens, xs, ys):
    buf = io.BytesIO()
    pq.write_table(pa.table({"wafer_token": tokens, "x": pa.array(xs, pa.int32()), "y": pa.array(ys, pa.int32()), "bin": [1] * len(xs)}), buf)
    store.put(f"parquet/failmap_dies/date={DAY}/{name}.parquet", buf.getvalue())


def test_unique_die_passes_on_distinct_dies_and_finds_duplicates_across_parts(tmp_path):
    store = LocalObjectStore(tmp_path)
    put_part(store, "p1", ["w1", "w1", "w2"], [0, -1, 0], [0, 0, 0])
    put_part(store, "p2", ["w3", "w3"], [-300, 300], [-5, 7])
    ok = unique_die_check(store, DAY)
    assert ok.passed and ok.metadata["dies"].value == 5

    put_part(store, "p3", ["w2", "w3"], [0, -300], [0, -5])
    bad = unique_die_check(store, DAY)
    assert not bad.passed and bad.metadata["duplicated_dies"].value == 2
    assert "('w3', -300, -5)" in bad.metadata["examples"].value


def test_json_has_png_both_ways(tmp_path):
    store = LocalObjectStore(tmp_path)
    store.put(f"png/{DAY}/w1.png", b"x")
    store.put(f"json/{DAY}/w1.json", b"{}")
    assert json_png_check(store, DAY).passed
    store.put(f"json/{DAY}/w2.json", b"{}")
    store.put(f"png/{DAY}/w3.png", b"x")
    res = json_png_check(store, DAY)
    assert not res.passed
    assert "w2" in res.metadata["json_without_png"].value and "w3" in res.metadata["png_without_json"].value
