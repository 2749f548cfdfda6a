"""A wafer whose dies are too far apart for any PNG: the pipeline keeps its die rows and
JSON, writes no PNG, and reports ``png_too_large`` as a warning (not a lost wafer)."""

from __future__ import annotations

import io
import json
from datetime import date, datetime
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from failmap_assets.defs.failmap.checks import wafer_file_check
from failmap_assets.maps import render
from failmap_assets.pipeline import stdf_day
from failmap_assets.pipeline.failmap_day import PIPELINE, PairingRules, RunnerOptions, run_day
from failmap_assets.pipeline.unit import ProcessingOptions, Unit, process_unit
from failmap_assets.storage.layout import json_key, png_key, table_dir
from failmap_assets.storage.local_store import LocalObjectStore
from failmap_synth.stdf_writer import build_wafer_sort
from tests.support.days import committed

DAY = date(2026, 1, 11)
A_KEY = "20260111/N4A123.1_07P_20260111_143025.txt"
B_KEY = "20260111/N4A123.1_07P_20260111_143030.txt"
TOKEN = "N4A123.1_07P"

# Dies at (0, 0) and (100000, 100000): 100001 x 100002 cells even at 1 px/die.
FAR_APART = b"""FAILMAP 1
LOT N4A123.1
WAFER 07
STIME 20260111_143025
BINDEF 1 P PASS
BINDEF 285 F IDDQ_FAIL
DIES 3
0 0 1
100000 100000 285
1 0 1
END
"""
PARTNER = b"""FAILMAP-B 1
PARTID N4A123-07
STIME 20260111_143030
VALUES 2 VDD_MIN IDDQ_UA
DIES 2
0 0 1 0.812 1.25
100000 100000 285 0.901 NA
END
"""


def test_process_unit_keeps_die_rows_and_json_and_warns_png_too_large():
    unit = Unit(A_KEY, "ea", TOKEN, B_KEY, "eb")
    result = process_unit(unit, FAR_APART, PARTNER, ProcessingOptions(thumbnail=True))
    assert result.dies is not None and result.dies.num_rows == 3
    assert sorted(zip(result.dies["x"].to_pylist(), result.dies["y"].to_pylist())) == [(0, 0), (1, 0), (100000, 100000)]
    [wafer] = result.wafers
    assert wafer.png is None and wafer.die_count == 3 and wafer.thumbnail is not None
    doc = json.loads(wafer.json)
    assert [(c["x_abs"], c["y_abs"], c["b"]) for c in doc["chips"]] == [(0, 0, "1"), (1, 0, "1"), (100000, 100000, "285")]
    assert doc["chips"][2]["bucket_b"]["transformed_values"] == "0.901,NA"
    assert doc["png"]["written"] is False and doc["png"]["pixels_per_die"] is None
    [reject] = result.rejects
    assert (reject.reason, reject.severity, reject.bucket, reject.key) == ("png_too_large", "warning", "a", A_KEY)
    assert TOKEN in reject.detail and "100001 x 100002 pixels" in reject.detail
    assert f"limit {render.MAX_IMAGE_PIXELS}" in reject.detail


def test_process_unit_normal_wafer_has_png_and_no_warning():
    near = FAR_APART.replace(b"100000 100000 285", b"2 1 285")
    result = process_unit(Unit(A_KEY, "ea", TOKEN), near, None, ProcessingOptions())
    [wafer] = result.wafers
    assert wafer.png is not None and result.rejects == []
    assert json.loads(wafer.json)["png"] == {"written": True, "pixels_per_die": 4, "reason": None}


def test_day_runner_writes_json_without_png_and_the_check_accepts_it(tmp_path: Path):
    for name in ("a", "b", "out"):
        (tmp_path / name).mkdir()
    stores = {name: LocalObjectStore(tmp_path / name) for name in ("a", "b", "out")}
    near_key = "20260111/N4A123.1_08P_20260111_143025.txt"
    stores["a"].put(A_KEY, FAR_APART)
    stores["a"].put(near_key, FAR_APART.replace(b"100000 100000", b"2 1"))
    out = stores["out"]
    report = run_day(day=DAY, a_store=stores["a"], b_store=stores["b"], out_store=out, now=datetime(2026, 1, 13),
                     pairing=PairingRules(), processing=ProcessingOptions(), run_id="r1", log=lambda _: None,
                     options=RunnerOptions(max_workers=2, max_in_flight=2))
    assert report.totals["wafers"] == 2 and report.totals["dies"] == 6
    rejects = committed(out, PIPELINE, DAY, "failmap_rejects")
    assert rejects.select("reason", "severity").rows() == [("png_too_large", "warning")]
    assert out.head(png_key(DAY, TOKEN)) is None and out.head(json_key(DAY, TOKEN)) is not None
    assert out.head(png_key(DAY, "N4A123.1_08P")) is not None
    assert json_key(DAY, TOKEN) in report.manifest.wafer_files and png_key(DAY, TOKEN) not in report.manifest.wafer_files
    events = committed(out, PIPELINE, DAY, "events")
    assert events.filter(pl.col("unit_key") == A_KEY)["png_written"].to_list() == [False]
    dies = pl.concat([pl.from_arrow(pq.read_table(io.BytesIO(out.get(o.key))))
                      for o in out.list(table_dir("failmap_dies", DAY))])
    assert dies.filter(pl.col("a_key") == A_KEY).height == 3
    check = wafer_file_check(out, report.manifest, report.events)
    assert check.passed and check.metadata["png"].value == 1 and check.metadata["json"].value == 2
    # a wafer whose PNG should be there but is not fails the check
    out.delete(png_key(DAY, "N4A123.1_08P"))
    assert not wafer_file_check(out, report.manifest, report.events).passed


def test_stdf_day_skips_the_png_put_and_warns(tmp_path: Path, monkeypatch):
    (tmp_path / "stdf").mkdir()
    (tmp_path / "out").mkdir()
    source, out = LocalObjectStore(tmp_path / "stdf"), LocalObjectStore(tmp_path / "out")
    key = "20260111/SYN1_04_20260111_101010.stdf"
    source.put(key, build_wafer_sort(4, dies=300, tests_per_die=5).data)
    # STDF coordinates are int16: real files cannot reach 64 Mpx at 1 px/die easily, so
    # lower the limit (read at call time) instead.
    monkeypatch.setattr(render, "MAX_IMAGE_PIXELS", 50)
    report = stdf_day.run_stdf_day(day=DAY, source=source, out=out, retest_rule="last", pixels_per_die=4,
                                   run_id="r1", log=lambda _: None)
    wafers = report.totals["wafers"]
    assert report.files_done == 1 and wafers >= 1
    rejects = committed(out, stdf_day.PIPELINE, DAY, "stdf_rejects")
    assert rejects.select("reason", "severity").rows() == [("png_too_large", "warning")] * wafers
    assert list(out.list(f"png/{DAY}/")) == []
    jsons = [o.key for o in out.list(f"json/{DAY}/")]
    assert len(jsons) == wafers
    doc = json.loads(out.get(jsons[0]))
    assert doc["png"]["written"] is False and len(doc["chips"]) > 0
    assert not any(k.startswith("png/") for k in report.manifest.wafer_files)
