"""STDF assets end to end on a real instance: real tester files and synthetic ones."""

from __future__ import annotations

import io
import json
from datetime import date

import polars as pl
import pytest
from dagster import instance_for_test, materialize
from PIL import Image

from failmap_assets.defs.stdf.assets import STDF_ASSETS
from failmap_assets.resources import build_resources
from failmap_assets.storage.local_store import LocalObjectStore
from failmap_synth.stdf_writer import build_wafer_sort
from tests.support.local_day import local_fab
from tests.support.testdata import shared_file

DAY = date(2026, 1, 11)


@pytest.fixture
def env(tmp_path):
    settings = local_fab(tmp_path)
    with instance_for_test() as instance:
        yield settings, LocalObjectStore(tmp_path / "stdf"), LocalObjectStore(tmp_path / "out"), instance


def run(settings, instance, config=None):
    result = materialize(
        STDF_ASSETS, partition_key=DAY.isoformat(), instance=instance, resources=build_resources(settings),
        run_config=config,
    )
    assert result.success
    meta = {}
    for mat in result.get_asset_materialization_events():
        m = mat.event_specific_data.materialization
        meta[m.asset_key.to_user_string()] = {k: getattr(v, "value", v) for k, v in m.metadata.items()}
    return meta


def table(out: LocalObjectStore, name: str) -> pl.DataFrame:
    keys = [o.key for o in out.list(f"parquet/stdf/{name}/date={DAY.isoformat()}/")]
    return pl.concat([pl.read_parquet(io.BytesIO(out.get(k))) for k in keys], how="diagonal_relaxed")


def test_real_and_synthetic_files_incremental_with_rejects(env):
    settings, stdf, out, instance = env
    stdf.put("20260111/lot2.stdf.gz", shared_file("stdf", "lot2.stdf.gz").read_bytes())
    stdf.put("20260111/in_v3.std", shared_file("stdf", "in_v3.std").read_bytes())
    corrupt = "STS_001SRAM_8435_-30c_Nov_10_23h05m08s.stdf"
    stdf.put(f"20260111/{corrupt}", shared_file("stdf", corrupt).read_bytes())
    synth = build_wafer_sort(3, endian=">", dies=300, tests_per_die=25, lot_id="SYN1", wafer_id="04")
    stdf.put("20260111/SYN1_04_20260111_101010.stdf", synth.data)

    meta = run(settings, instance)
    assert meta["stdf_objects"]["objects"] == 4
    tables = meta["stdf_tables"]
    assert tables["run_processed"] == 4
    assert tables["parts"] == 1569 + synth.counts["PRR"]  # lot2's PRRs + the synthetic wafer's
    assert tables["rejects"] >= 1  # the V3 file, at least

    parts = table(out, "parts")
    assert parts.filter(pl.col("source_key") == "20260111/lot2.stdf.gz").height == 1569
    assert parts.filter(pl.col("source_key") == "20260111/SYN1_04_20260111_101010.stdf").height == synth.counts["PRR"]

    assert meta["stdf_rejects"]["rejects"] >= 1
    rejects = pl.concat([pl.read_parquet(io.BytesIO(out.get(o.key)))
                         for o in out.list(f"parquet/stdf_rejects/date={DAY.isoformat()}/")])
    v3 = rejects.filter(pl.col("key") == "20260111/in_v3.std")
    assert v3.height == 1 and "V3" in v3["detail"][0].upper() + v3["reason"][0].upper()
    salvage = rejects.filter(pl.col("key") == f"20260111/{corrupt}")
    assert salvage.height >= 1 and salvage["detail"].str.contains("byte").any()

    # Wafer maps through the shared renderer: lot2 is one wafer of 1569 dies with x/y.
    assert meta["stdf_wafer_maps"]["wafers"] >= 2
    pngs = [o.key for o in out.list(f"png/{DAY.isoformat()}/")]
    syn_png = next(k for k in pngs if k.split("/")[-1].startswith("SYN1_W04"))
    doc = json.loads(out.get(syn_png.replace("png/", "json/", 1)[:-4] + ".json"))
    assert len(doc["chips"]) == 300 and doc["source"]["a_key"].endswith(".stdf")
    img = Image.open(io.BytesIO(out.get(syn_png)))
    assert img.mode == "P" and img.size[0] > 0

    again = run(settings, instance)
    assert again["stdf_tables"]["run_processed"] == 0 and again["stdf_tables"]["run_already_done"] == 4

    # A re-upload is parsed again and replaces its own rows (no duplicates).
    smaller = build_wafer_sort(4, dies=120, tests_per_die=20, lot_id="SYN1", wafer_id="04")
    stdf.put("20260111/SYN1_04_20260111_101010.stdf", smaller.data)
    redo = run(settings, instance)
    assert redo["stdf_tables"]["run_processed"] == 1
    assert table(out, "parts").filter(pl.col("source_key") == "20260111/SYN1_04_20260111_101010.stdf").height == smaller.counts["PRR"]
