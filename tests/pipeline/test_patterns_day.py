"""A day's wafer signatures and pattern matches on local folders, from a generated day
run through the real pipelines: one signature per committed test event (fail maps,
industry formats, STDF) with its dies, flat and die aspect; a rerun changes nothing; a
failed write leaves the previous commit; similar wafers come from earlier wafers only."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from failmap_assets.patterns.signature import EMBEDDING_DIM, PATTERN_CLASSES, TOO_SMALL
from failmap_assets.patterns.tables import ANOMALY_COLUMNS, SIGNATURE_COLUMNS, SIMILAR_COLUMNS, schema_of
from failmap_assets.pipeline import pattern_index as pix
from failmap_assets.pipeline.failmap_day import PairingRules, RunnerOptions, run_day
from failmap_assets.pipeline.patterns_day import run_matches_day, run_signatures_day, wafer_grid
from failmap_assets.pipeline.stdf_day import run_stdf_day
from failmap_assets.pipeline.summary_day import read_inputs
from failmap_assets.pipeline.unit import ProcessingOptions
from failmap_assets.storage.day_manifest import read_manifest
from failmap_assets.storage.layout import MATCHES_PIPELINE, PATTERNS_PIPELINE
from failmap_assets.storage.local_store import LocalObjectStore
from failmap_synth.day import generate_day
from failmap_synth.industry_maps import e142, g85
from failmap_synth.stdf_writer import build_wafer_sort
from tests.support.days import committed
from tests.support.faulty_store import FaultyStore, InjectedFault

DAY = date(2026, 1, 11)


def quiet(_line: str) -> None:
    pass


@pytest.fixture(scope="module")
def landed(tmp_path_factory):
    root = tmp_path_factory.mktemp("patterns_day")
    stores = {}
    for name in ("a", "b", "stdf", "out"):
        (root / name).mkdir()
        stores[name] = LocalObjectStore(root / name)
    for day, seed in ((DAY, 3), (DAY + timedelta(days=1), 4)):
        for o in generate_day(day, 8, seed, broken=False, dies_range=(150, 400), typical_dies=250):
            stores[o.bucket].put(o.key, o.data)
        when = datetime(day.year, day.month, day.day, 9)
        if day == DAY:   # industry-format maps: keys outside the grammar, read by content
            stores["a"].put(f"{day:%Y%m%d}/LOTX-01.xml", g85())
            stores["a"].put(f"{day:%Y%m%d}/LOTX-02.e142.xml", e142())
        stores["stdf"].put(f"{day:%Y%m%d}/S1_03_{when:%Y%m%d_%H%M%S}.stdf",
                           build_wafer_sort(seed, dies=200, tests_per_die=3, lot_id="S1", wafer_id="03",
                                            start_time=int(when.replace(tzinfo=UTC).timestamp())).data)
        run_stdf_day(day=day, source=stores["stdf"], out=stores["out"], retest_rule="last", pixels_per_die=1,
                     run_id=f"s{seed}", log=quiet)
        run_day(day=day, a_store=stores["a"], b_store=stores["b"], out_store=stores["out"],
                now=datetime(2026, 1, 14), pairing=PairingRules(), processing=ProcessingOptions(pixels_per_die=1),
                run_id=f"f{seed}", log=quiet, options=RunnerOptions(max_workers=2, max_in_flight=2))
    stores["root"] = root
    return stores


def test_signatures_of_every_committed_test_event(landed):
    out = landed["out"]
    report = run_signatures_day(day=DAY, out=out, run_id="sig1", log=quiet)
    assert report.committed
    sigs = committed(out, PATTERNS_PIPELINE, DAY, "wafer_signatures")
    assert sigs.schema == pl.Schema(schema_of(SIGNATURE_COLUMNS))
    inputs = read_inputs(out, DAY, quiet)
    assert sorted(sigs.select("source", "wafer_token", "object_key").rows()) == sorted(
        inputs.events.select("source", "wafer_token", "object_key").rows())
    assert set(sigs["source"]) == {"failmap", "stdf"}
    industry = sigs.filter(pl.col("object_key").str.contains("LOTX"))
    assert industry.height == 2 and (industry["dies"] > 0).all()
    # dies and fail dies are the committed dies of each event
    per_event = inputs.dies.group_by("source", "wafer_token", "object_key").agg(
        pl.len().alias("n"), (~pl.col("pass")).sum().alias("fails"))
    joined = sigs.join(per_event, on=["source", "wafer_token", "object_key"])
    assert joined.height == sigs.height
    assert (joined["dies"] == joined["n"]).all() and (joined["fail_dies"] == joined["fails"]).all()
    assert set(sigs["label"]) <= {*PATTERN_CLASSES, TOO_SMALL}
    assert ((sigs["confidence"] >= 0) & (sigs["confidence"] <= 1)).all()
    classified = sigs.filter(pl.col("label") != TOO_SMALL)
    norms = np.linalg.norm(np.asarray(classified["embedding"].to_numpy()).reshape(-1, EMBEDDING_DIM), axis=1)
    assert np.allclose(norms, 1.0, atol=1e-4)
    assert set(sigs["flat"]) <= {"U", "D", "L", "R"} and (sigs["die_aspect"] > 0).all()
    assert sigs["die_aspect_known"].any()     # the fail maps' DIE_SIZE / the STDF WCR die size
    totals = report.totals
    assert totals["test_events"] == sigs.height and sum(totals["labels"].values()) == sigs.height
    assert totals["too_small"] == sigs.filter(pl.col("label") == TOO_SMALL).height

    again = run_signatures_day(day=DAY, out=out, run_id="sig2", log=quiet)
    assert not again.committed and again.generation == report.generation


def test_a_failed_write_leaves_the_previous_signatures(landed, tmp_path):
    import shutil
    shutil.copytree(landed["root"] / "out", tmp_path / "o")
    out = LocalObjectStore(tmp_path / "o")
    run_signatures_day(day=DAY, out=out, run_id="first", log=quiet)
    before, _ = read_manifest(out, PATTERNS_PIPELINE, DAY)
    rows = committed(out, PATTERNS_PIPELINE, DAY, "wafer_signatures")
    for n in (1, 2, 3):   # the lease, the table, the manifest
        with pytest.raises((InjectedFault, Exception)):
            run_signatures_day(day=DAY, out=FaultyStore(out, fail_put=n), run_id=f"x{n}", force=True, log=quiet)
        now, _ = read_manifest(out, PATTERNS_PIPELINE, DAY)
        assert now.generation == before.generation
        assert committed(out, PATTERNS_PIPELINE, DAY, "wafer_signatures").equals(rows)
    assert run_signatures_day(day=DAY, out=out, run_id="again", force=True, log=quiet).committed
    assert committed(out, PATTERNS_PIPELINE, DAY, "wafer_signatures").equals(rows)


def test_matches_come_from_earlier_wafers(landed):
    out = landed["out"]
    day2 = DAY + timedelta(days=1)
    for d in (DAY, day2):
        run_signatures_day(day=d, out=out, run_id="sig", log=quiet)
    rebuild = pix.rebuild_indexes(out, run_id="ix", log=quiet)
    assert not rebuild.failed and rebuild.products
    report = run_matches_day(day=day2, out=out, run_id="m1", k=5, log=quiet)
    assert report.committed
    similar = committed(out, MATCHES_PIPELINE, day2, "similar_wafers")
    scores = committed(out, MATCHES_PIPELINE, day2, "wafer_anomaly")
    assert similar.schema == pl.Schema(schema_of(SIMILAR_COLUMNS))
    assert scores.schema == pl.Schema(schema_of(ANOMALY_COLUMNS))
    sigs = committed(out, PATTERNS_PIPELINE, day2, "wafer_signatures")
    assert scores.height == sigs.height
    assert similar.height > 0 and (similar["rank"] >= 1).all() and (similar["rank"] <= 5).all()
    # earlier: an earlier day, or the same day tested before; never the same wafer; same product
    times = dict(zip(sigs["object_key"], sigs["file_time"]))
    for r in similar.iter_rows(named=True):
        assert r["similar_day"] < day2 or r["similar_file_time"] < times[r["object_key"]]
        assert r["similar_wafer_token"] != r["wafer_token"] and r["similar_product"] == r["product"]
        assert -1.0001 <= r["similarity"] <= 1.0001 and abs(r["distance"] - (1 - r["similarity"])) < 1e-9
    ranked = similar.group_by("object_key").agg(pl.col("similarity").sort_by("rank"))
    assert all(list(s) == sorted(s, reverse=True) for s in ranked["similarity"])
    assert set(scores["reason"].drop_nulls()) <= {TOO_SMALL, "no_index", "no_earlier_normal_wafers"}
    assert (scores.filter(pl.col("reason").is_null())["anomaly_score"] >= 0).all()
    again = run_matches_day(day=day2, out=out, run_id="m2", k=5, log=quiet)
    assert not again.committed


def test_wafer_grid():
    grid = wafer_grid(np.array([2, 3, 2]), np.array([5, 5, 6]), np.array([True, False, True]))
    assert grid.tolist() == [[0, 1], [0, -1]]
    assert wafer_grid(np.array([0, 10_000]), np.array([0, 10_000]), np.array([True, True])) is None
