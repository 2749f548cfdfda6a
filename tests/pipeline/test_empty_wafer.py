"""An empty wafer (``DIES 0``, tolerated by the contract): the pipeline writes its JSON
(empty ``chips``, ``png.written`` false), no PNG, and a ``warning`` reject
``empty_wafer`` naming the key, through a real day run on local folders."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import polars as pl

from failmap_assets.defs.failmap.checks import wafer_file_check
from failmap_assets.pipeline.failmap_day import PIPELINE, PairingRules, RunnerOptions, run_day
from failmap_assets.pipeline.unit import ProcessingOptions, Unit, process_unit
from failmap_assets.storage.layout import json_key, png_key
from failmap_assets.storage.local_store import LocalObjectStore
from tests.support.days import committed

DAY = date(2026, 1, 11)
EMPTY_KEY = "20260111/N4A123.1_07P_20260111_143025.txt"
EMPTY_TOKEN = "N4A123.1_07P"
FULL_KEY = "20260111/N4A123.1_08P_20260111_143025.txt"
FULL_TOKEN = "N4A123.1_08P"

EMPTY = b"FAILMAP 1\nLOT N4A123.1\nWAFER 07\nSTIME 20260111_143025\nFLAT L\nDIES 0\nEND\n"
FULL = b"FAILMAP 1\nLOT N4A123.1\nWAFER 08\nSTIME 20260111_143025\nDIES 2\n0 0 1\n1 0 285\nEND\n"


def test_process_unit_warns_and_writes_json_only():
    result = process_unit(Unit(EMPTY_KEY, "e1", EMPTY_TOKEN), EMPTY, None, ProcessingOptions(thumbnail=True))
    [wafer] = result.wafers
    assert wafer.png is None and wafer.thumbnail is None and not wafer.drawable and wafer.die_count == 0
    doc = json.loads(wafer.json)
    assert doc["chips"] == [] and doc["die_count"] == 0 and doc["bins"] == []
    assert doc["png"]["written"] is False and "empty wafer" in doc["png"]["reason"]
    [reject] = result.rejects
    assert (reject.reason, reject.severity, reject.bucket, reject.key) == ("empty_wafer", "warning", "a", EMPTY_KEY)
    assert EMPTY_TOKEN in reject.detail


def test_day_run_commits_the_empty_wafer_json_without_png_and_a_warning(tmp_path: Path):
    for name in ("a", "b", "out"):
        (tmp_path / name).mkdir()
    stores = {name: LocalObjectStore(tmp_path / name) for name in ("a", "b", "out")}
    stores["a"].put(EMPTY_KEY, EMPTY)
    stores["a"].put(FULL_KEY, FULL)
    out = stores["out"]
    report = run_day(day=DAY, a_store=stores["a"], b_store=stores["b"], out_store=out, now=datetime(2026, 1, 13),
                     pairing=PairingRules(), processing=ProcessingOptions(), run_id="r1", log=lambda _: None,
                     options=RunnerOptions(max_workers=2, max_in_flight=2))
    assert report.committed and report.totals["wafers"] == 2 and report.totals["dies"] == 2
    rejects = committed(out, PIPELINE, DAY, "failmap_rejects")
    assert rejects.select("key", "bucket", "reason", "severity").rows() == [(EMPTY_KEY, "a", "empty_wafer", "warning")]
    # JSON committed with empty chips; no PNG for it; the other wafer has both.
    assert out.head(png_key(DAY, EMPTY_TOKEN)) is None
    assert png_key(DAY, EMPTY_TOKEN) not in report.manifest.wafer_files
    assert json_key(DAY, EMPTY_TOKEN) in report.manifest.wafer_files
    doc = json.loads(out.get(json_key(DAY, EMPTY_TOKEN)))
    assert doc["wafer_token"] == EMPTY_TOKEN and doc["flat"] == "L" and doc["chips"] == []
    assert doc["png"]["written"] is False
    assert out.head(png_key(DAY, FULL_TOKEN)) is not None
    events = committed(out, PIPELINE, DAY, "events")
    assert events.filter(pl.col("unit_key") == EMPTY_KEY).select("dies", "png_written").rows() == [(0, False)]
    check = wafer_file_check(out, report.manifest, report.events)
    assert check.passed and check.metadata["png"].value == 1 and check.metadata["json"].value == 2
