"""The fail-map assets end to end: materialize on a real Dagster instance, read outputs back.

Runs against local folders and against the real S3 server (SeaweedFS on 127.0.0.1).
"""

from __future__ import annotations

import gzip
import io
import json
from dataclasses import replace
from datetime import date

import polars as pl
import pyarrow.parquet as pq
import pytest
from dagster import DagsterInstance, instance_for_test, materialize
from PIL import Image

from failmap_assets.defs.failmap.assets import FAILMAP_ASSETS
from failmap_assets.wafer.model import DIE_TABLE_SCHEMA, PER_WAFER_COLUMNS
from failmap_assets.resources import build_resources
from failmap_assets.storage.locations import open_store
from failmap_assets.settings import Settings
from tests.support.contract_examples import A_EXAMPLE, B_EXAMPLE

DAY = date(2026, 1, 11)
PARTITION = DAY.isoformat()
AS_OF = {"ops": {"failmap_day": {"config": {"as_of": "2026-01-13 00:00:00"}}}}

A_TEXT = A_EXAMPLE.decode()
B_TEXT = B_EXAMPLE.decode()

A_KEY = "20260111/N4A123.1_07P_20260111_143025.Z"
B_KEY = "20260111/N4A123.1_07P_20260111_143030.gz"


def lzw(text: str) -> bytes:
    import ncompress

    return ncompress.compress(text.encode())


def a_file(wafer: str, stime: str, dies: list[tuple[int, int, int]]) -> str:
    rows = "\n".join(f"{x} {y} {b}" for x, y, b in dies)
    return f"FAILMAP 1\nLOT L1\nWAFER {wafer}\nSTIME {stime}\nDIES {len(dies)}\n{rows}\nEND\n"


@pytest.fixture(params=["local", "s3"])
def env(request, tmp_path, monkeypatch):
    """Settings + stores for one backend, with the Dagster instance in a temp dir."""
    if request.param == "local":
        base = str(tmp_path / "buckets")
        for sub in ("a", "b", "stdf", "out"):
            (tmp_path / "buckets" / sub).mkdir(parents=True)
        settings = replace(
            Settings.from_env(),
            source_a=f"{base}/a", source_b=f"{base}/b", source_stdf=f"{base}/stdf", output=f"{base}/out",
        )
    else:
        bucket = request.getfixturevalue("s3_env")
        settings = replace(
            Settings.from_env(),
            source_a=f"{bucket}/a", source_b=f"{bucket}/b", source_stdf=f"{bucket}/stdf", output=f"{bucket}/out",
        )
    kw = dict(endpoint_url=settings.s3_endpoint_url or None, region=settings.aws_region or None)
    stores = {k: open_store(getattr(settings, f), **kw) for k, f in
              [("a", "source_a"), ("b", "source_b"), ("out", "output")]}
    with instance_for_test() as instance:
        yield settings, stores, instance


def run(settings: Settings, instance: DagsterInstance, config: dict | None = None):
    extra = (config or {}).get("ops", {}).get("failmap_day", {}).get("config", {})
    cfg = {"ops": {"failmap_day": {"config": {**AS_OF["ops"]["failmap_day"]["config"], **extra}}}}
    result = materialize(
        FAILMAP_ASSETS, partition_key=PARTITION, instance=instance,
        resources=build_resources(settings), run_config=cfg,
    )
    assert result.success
    return result


def metadata(result, asset: str) -> dict:
    for mat in result.get_asset_materialization_events():
        m = mat.event_specific_data.materialization
        if m.asset_key.to_user_string() == asset:
            return {k: getattr(v, "value", v) for k, v in m.metadata.items()}
    raise AssertionError(f"{asset} not materialized")


def table(stores, name: str) -> pl.DataFrame:
    """A table's folder read as a plain glob would: after a successful run it holds
    exactly the day's rows."""
    files = [o.key for o in stores["out"].list(f"parquet/{name}/date={PARTITION}/")]
    assert files, f"no {name} files"
    return pl.concat([pl.read_parquet(io.BytesIO(stores["out"].get(k))) for k in files], how="vertical")


def dies_table(stores) -> pl.DataFrame:
    return table(stores, "failmap_dies")


def test_contract_example_end_to_end(env):
    settings, stores, instance = env
    stores["a"].put(A_KEY, lzw(A_TEXT))
    stores["b"].put(B_KEY, gzip.compress(B_TEXT.encode()))
    result = run(settings, instance)

    pairs_md = metadata(result, "failmap_pairs")
    assert pairs_md["pairs_matched"] == 1 and pairs_md["pairs_orphan_b"] == 0
    dies_md = metadata(result, "failmap_dies")
    assert dies_md["wafers"] == 1 and dies_md["dies"] == 4 and dies_md["rejects"] == 0

    # Parquet read back with polars and with pyarrow.
    dies = dies_table(stores).sort("y", "x")
    assert dies.height == 4
    assert dies.select("x", "y", "bin").rows() == [(-1, 0, 1), (0, 0, 1), (1, 0, 285), (0, 1, 1)]
    assert dies["pass"].to_list() == [True, True, False, True]
    first = dies.row(0, named=True)
    assert (first["lot"], first["wafer"], first["product"], first["wafer_token"]) == ("N4A123.1", "07", "SCT101A", "N4A123.1_07P")
    assert first["b_values"] == [0.812, 1.25, 1350.0] and first["b_values_text"] == "0.812,1.25,1350"
    assert dies.row(1, named=True)["b_values"] == [0.807, None, 1342.0]
    assert dies.row(3, named=True)["b_bin"] is None  # (0, 1) has no B die
    part = next(o.key for o in stores["out"].list(f"parquet/failmap_dies/date={PARTITION}/"))
    arrow = pq.read_table(io.BytesIO(stores["out"].get(part)))
    assert arrow.num_rows == 4 and arrow.schema.field("b_values").type.value_type.bit_width == 64
    # Per-wafer strings travel dictionary-encoded in memory; on disk every reader sees plain strings.
    assert [(f.name, f.type) for f in arrow.schema] == [(f.name, f.type) for f in DIE_TABLE_SCHEMA]
    assert all(dies.schema[name] == pl.String for name in PER_WAFER_COLUMNS)

    # JSON in the users' schema.
    doc = json.loads(stores["out"].get(f"json/{PARTITION}/N4A123.1_07P.json"))
    assert doc["wafer_token"] == "N4A123.1_07P" and doc["stime"] == "20260111_143025"
    assert doc["source"]["a_key"] == A_KEY and doc["source"]["b_key"] == B_KEY
    chips = doc["chips"]
    assert [(c["x_abs"], c["y_abs"], c["b"]) for c in chips] == [(-1, 0, "1"), (0, 0, "1"), (1, 0, "285"), (0, 1, "1")]
    assert chips[0]["bucket_b"] == {
        "transformed_values": "0.812,1.25,1350", "b": "1", "stime": "20260111_143030",
        "partid": "N4A123-07", "tester": "T5503-07",
    }
    assert chips[1]["bucket_b"]["transformed_values"] == "0.807,NA,1342"
    assert "bucket_b" not in chips[3]

    # PNG: palette image; each die's pixel box has a colour, pass dies green-dominant.
    img = Image.open(io.BytesIO(stores["out"].get(f"png/{PARTITION}/N4A123.1_07P.png")))
    assert img.mode == "P"
    grid = doc["grid"]
    ppd = grid["pixels_per_die"]
    assert img.size == ((grid["x_max"] - grid["x_min"] + 1) * ppd, (grid["y_max"] - grid["y_min"] + 1) * ppd)
    rgba = img.convert("RGBA")
    for c in chips:
        px = rgba.getpixel(((c["x_abs"] - grid["x_min"]) * ppd + ppd // 2, (c["y_abs"] - grid["y_min"]) * ppd + ppd // 2))
        assert px[3] == 255
        r, g, b, _ = px
        assert (g > r and g > b) == (c["b"] == "1")
    # (1, 1) has no die: transparent.
    assert rgba.getpixel(((1 - grid["x_min"]) * ppd + 1, (1 - grid["y_min"]) * ppd + 1))[3] == 0
    # the run's preview: the wafer drawn small, labelled with its token and yield
    assert "**N4A123.1_07P 75.00%**" in metadata(result, "wafer_maps_png")["preview"]


def test_incremental_reupload_late_partner_and_force(env):
    settings, stores, instance = env
    k1 = "20260111/L1_01P_20260111_080000.gz"
    k2 = "20260111/L1_02P_20260111_090000.txt"
    stores["a"].put(k1, gzip.compress(a_file("01", "20260111_080000", [(0, 0, 1), (1, 0, 2)]).encode()))
    stores["a"].put(k2, a_file("02", "20260111_090000", [(0, 0, 1)]).encode())
    first = metadata(run(settings, instance), "failmap_dies")
    assert first["run_processed"] == 2 and first["dies"] == 3

    again = metadata(run(settings, instance), "failmap_dies")
    assert again["run_processed"] == 0 and again["run_already_done"] == 2

    # Re-upload with new content (new etag): only that wafer is redone, rows replaced.
    stores["a"].put(k2, a_file("02", "20260111_090000", [(0, 0, 7), (0, 1, 1), (1, 1, 1)]).encode())
    # A late B partner for wafer 01: that wafer is redone with it.
    b_text = "FAILMAP-B 1\nSTIME 20260111_080004\nVALUES 1 V\nDIES 1\n0 0 1 0.5\nEND\n"
    stores["b"].put("20260111/L1_01P_20260111_080004.txt", b_text.encode())
    redo = metadata(run(settings, instance), "failmap_dies")
    assert redo["run_processed"] == 2
    dies = dies_table(stores)
    assert dies.height == 5
    assert dies.filter(pl.col("wafer_token") == "L1_02P").sort("y", "x")["bin"].to_list() == [7, 1, 1]
    w1 = dies.filter(pl.col("wafer_token") == "L1_01P").sort("x")
    assert w1["b_values"].to_list() == [[0.5], None]

    forced = metadata(run(settings, instance, {"ops": {"failmap_day": {"config": {"force": True}}}}), "failmap_dies")
    assert forced["run_processed"] == 2
    assert dies_table(stores).height == 5  # replaced, not duplicated


def test_bad_objects_are_rejected_and_the_rest_succeeds(env):
    settings, stores, instance = env
    good = a_file("03", "20260111_100000", [(0, 0, 1)])
    stores["a"].put("20260111/L2_03P_20260111_100000.txt", good.encode())
    truncated = a_file("04", "20260111_100100", [(0, 0, 1), (1, 0, 1)]).replace("1 0 1\nEND\n", "")
    stores["a"].put("20260111/L2_04P_20260111_100100.txt", truncated.encode())
    bad_row = a_file("05", "20260111_100200", [(0, 0, 1)]).replace("0 0 1", "0 zero 1")
    stores["a"].put("20260111/L2_05P_20260111_100200.txt", bad_row.encode())
    stores["a"].put("20260111/L2_06P_20260111_100300.zip", b"PK\x03\x04 this is not really a zip")
    stores["a"].put("20260111/README.txt", b"not a fail map key")
    result = run(settings, instance)
    assert metadata(result, "failmap_dies")["wafers"] == 1
    assert metadata(result, "failmap_rejects")["rejects"] == 3
    # the UI's rejects by reason: a row per severity and reason with its objects
    by_reason = metadata(result, "failmap_rejects")["by_reason"].splitlines()
    assert by_reason[0] == "| severity | reason | objects |"
    assert set(by_reason[2:]) == {"| error | truncated | 1 |", "| error | bad_row | 1 |",
                                  "| error | corrupt_archive | 1 |", "| warning | not_a_failmap_key | 1 |"}

    rejects = table(stores, "failmap_rejects")
    by_key = {r["key"]: r for r in rejects.iter_rows(named=True)}
    assert by_key["20260111/L2_04P_20260111_100100.txt"]["reason"] == "truncated"
    assert by_key["20260111/L2_05P_20260111_100200.txt"]["reason"] == "bad_row"
    assert by_key["20260111/L2_05P_20260111_100200.txt"]["line"] == 6
    assert by_key["20260111/L2_06P_20260111_100300.zip"]["reason"] == "corrupt_archive"
    assert by_key["20260111/README.txt"]["reason"] == "not_a_failmap_key"
    assert all(r["first_seen"] is not None for r in by_key.values())

    # Rejected objects are not retried on the next run (same etag), and stay reported.
    again = run(settings, instance)
    assert metadata(again, "failmap_dies")["run_processed"] == 0
    assert metadata(again, "failmap_rejects")["rejects"] == 3


def test_industry_map_files_in_bucket_a_are_processed_like_a_files_without_b(env):
    from tests.support.testdata import shared_file

    settings, stores, instance = env
    stores["a"].put("20260111/BQ16652-01.xml", shared_file("maps", "g85", "nuvoton_BQ16652-01.xml").read_bytes())
    stores["a"].put("20260111/QR2352.tsk", gzip.compress(shared_file("maps", "tsk", "larvata_001.QR2352-D5U278-CP-1").read_bytes()))
    stores["a"].put("20260111/notes.txt", b"operator notes, not a map")
    result = run(settings, instance)
    assert metadata(result, "failmap_pairs")["pairs_other_map"] == 3
    dies_md = metadata(result, "failmap_dies")
    assert dies_md["wafers"] == 2 and dies_md["dies"] == 2040 + 49631
    doc = json.loads(stores["out"].get(f"json/{PARTITION}/BQ16652-01.json"))
    assert len(doc["chips"]) == 2040 and doc["source"]["b_key"] is None
    assert stores["out"].head(f"png/{PARTITION}/QR2352.png") is not None
    rejects_md = metadata(result, "failmap_rejects")
    assert rejects_md["rejects"] == 0 and rejects_md["warnings"] == 1


@pytest.mark.parametrize("env", ["local"], indirect=True)  # backend independent: one is enough
def test_a_reader_bug_on_one_object_is_a_reject_not_a_failed_day(env, monkeypatch):
    import failmap_assets.pipeline.unit as wp

    settings, stores, instance = env
    stores["a"].put("20260111/L3_01P_20260111_100000.txt", a_file("01", "20260111_100000", [(0, 0, 1)]).encode())
    stores["a"].put("20260111/L3_02P_20260111_100100.txt", a_file("02", "20260111_100100", [(0, 0, 1)]).encode())
    real = wp.read_wafer_maps

    def flaky(data, name=None, pass_bins=None):
        if b"WAFER 02" in data:
            raise RuntimeError("simulated reader bug")
        return real(data, name, pass_bins=pass_bins)

    monkeypatch.setattr(wp, "read_wafer_maps", flaky)
    result = run(settings, instance)
    assert metadata(result, "failmap_dies")["wafers"] == 1
    rejects = table(stores, "failmap_rejects")
    bug = rejects.filter(pl.col("key") == "20260111/L3_02P_20260111_100100.txt").row(0, named=True)
    assert bug["reason"] == "internal_error" and "simulated reader bug" in bug["detail"]


@pytest.mark.parametrize("env", ["local"], indirect=True)
def test_the_ui_shows_the_day_not_the_run(env):
    """After runs that each saw part of the day (a retest, a late B, a run with nothing
    new), the last materialization's figures equal the day's totals computed from the
    committed outputs themselves; a day without dies shows no yield at all."""
    settings, stores, instance = env
    empty = metadata(run(settings, instance), "failmap_dies")
    assert "yield_pct" not in empty and empty["wafers"] == 0

    stores["a"].put("20260111/L1_01P_20260111_080000.txt", a_file("01", "20260111_080000", [(0, 0, 1), (1, 0, 2)]).encode())
    stores["a"].put("20260111/L1_02P_20260111_090000.txt", a_file("02", "20260111_090000", [(0, 0, 1)]).encode())
    run(settings, instance)
    # a retest of wafer 01 hours later, and a B partner for wafer 02
    stores["a"].put("20260111/L1_01P_20260111_150000.txt", a_file("01", "20260111_150000", [(0, 0, 1), (1, 0, 1), (2, 0, 3)]).encode())
    stores["b"].put("20260111/L1_02P_20260111_090004.txt",
                    b"FAILMAP-B 1\nSTIME 20260111_090004\nVALUES 1 V\nDIES 1\n0 0 1 0.5\nEND\n")
    run(settings, instance)
    last = metadata(run(settings, instance), "failmap_dies")  # nothing new: still the whole day
    assert last["run_processed"] == 0 and last["run_committed"] is False

    dies = table(stores, "failmap_dies")
    latest_a = dies.filter(pl.col("latest") & pl.col("in_a"))
    assert last["wafers"] == dies["wafer_token"].n_unique() == 2
    assert last["test_events"] == dies.select("wafer_token", "a_key").unique().height == 3
    assert last["die_rows"] == dies.height
    assert last["dies"] == latest_a.height == 4
    assert last["yield_pct"] == pytest.approx(round(100 * latest_a["pass"].sum() / latest_a.height, 2))
    pareto = last["bin_pareto"]
    for b, passed, n in latest_a.group_by("bin", "pass").len().iter_rows():   # these maps name no bin
        assert f"| {b} |  | {'pass' if passed else 'loss'} | {n} |" in pareto
    assert pareto.index("| loss |") < pareto.index("| pass |")
