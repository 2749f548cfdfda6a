"""The pattern tables in the sink, from a generated day run through the real pipelines
(fail maps -> summaries -> signatures -> pattern index -> similar wafers and anomaly):
a day whose pattern tables are not committed yet loads its summaries and leaves the
pattern tables alone; once committed they load with their own pipelines' generations;
a reload changes nothing; new commits replace the day's rows (stale ones deleted)."""

from __future__ import annotations

import shutil
from datetime import date, datetime, timedelta

import polars as pl
import pytest

from failmap_assets.pipeline import pattern_index as pix
from failmap_assets.pipeline.failmap_day import PairingRules, RunnerOptions, run_day
from failmap_assets.pipeline.patterns_day import run_matches_day, run_signatures_day
from failmap_assets.pipeline.summary_day import run_summary_day
from failmap_assets.pipeline.unit import ProcessingOptions
from failmap_assets.sinks.postgres.day_tables import conform
from failmap_assets.sinks.postgres.reader_role import PATTERN_QUERIES
from failmap_assets.sinks.postgres.sink_day import run_sink_day
from failmap_assets.sinks.postgres.tables import (
    SIMILAR_WAFERS,
    SINK_TABLES,
    WAFER_ANOMALY,
    WAFER_SIGNATURES,
    WAFER_SUMMARY,
    TableSpec,
)
from failmap_assets.storage.day_manifest import read_manifest
from failmap_assets.storage.layout import MATCHES_PIPELINE, PATTERNS_PIPELINE, SUMMARY_PIPELINE
from failmap_assets.storage.local_store import LocalObjectStore
from failmap_synth.day import generate_day
from tests.support.days import committed
from tests.support.postgres_sink import all_rows, rows_of, sort, target
from tests.support.summary_days import commit_tables

DAY = date(2026, 1, 11)
DAY2 = DAY + timedelta(days=1)
PATTERN_TABLES = ("wafer_signatures", "wafer_anomaly", "similar_wafers")

pytestmark = pytest.mark.slow    # the module's day: two days through five pipelines (~40 s with a cold Numba cache)


def quiet(_line: str) -> None:
    pass


@pytest.fixture(scope="module")
def landed(tmp_path_factory):
    """Two fail-map days with their summaries and signatures, the pattern index built
    over them; DAY2's matches not run yet."""
    root = tmp_path_factory.mktemp("sink_patterns")
    stores = {}
    for name in ("a", "b", "out"):
        (root / name).mkdir()
        stores[name] = LocalObjectStore(root / name)
    for day, seed in ((DAY, 3), (DAY2, 4)):
        for o in generate_day(day, 6, seed, broken=False, dies_range=(150, 400), typical_dies=250):
            stores[o.bucket].put(o.key, o.data)
        run_day(day=day, a_store=stores["a"], b_store=stores["b"], out_store=stores["out"],
                now=datetime(2026, 1, 14), pairing=PairingRules(), processing=ProcessingOptions(pixels_per_die=1),
                run_id=f"f{seed}", log=quiet, options=RunnerOptions(max_workers=2, max_in_flight=2))
        run_summary_day(day=day, out=stores["out"], run_id=f"s{seed}", pixels_per_die=1, log=quiet)
        run_signatures_day(day=day, out=stores["out"], run_id=f"sig{seed}", log=quiet)
    assert not pix.rebuild_indexes(stores["out"], run_id="ix", log=quiet).failed
    return root / "out"


def copy_of(landed, tmp_path) -> LocalObjectStore:
    shutil.copytree(landed, tmp_path / "out")
    return LocalObjectStore(tmp_path / "out")


def sink(server, out, day=DAY2):
    return run_sink_day(day=day, out=out, target=target(server), log=quiet)


def expected(out, pipeline: str, spec: TableSpec, day=DAY2) -> pl.DataFrame:
    """The committed table as the sink loads it (the spec's columns: no raster, no day)."""
    return sort(conform([committed(out, pipeline, day, spec.source_table)], spec.columns), spec)


def loaded_days(server) -> dict[str, tuple]:
    conn = server.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT table_name, commit_generation, rows FROM failmap_loaded_days WHERE day = %s", (DAY2,))
            return {t: (g, r) for t, g, r in cur.fetchall()}
    finally:
        conn.close()


def generation(out, pipeline: str) -> int:
    return read_manifest(out, pipeline, DAY2)[0].generation


def test_pattern_tables_load_once_committed_each_with_its_own_generation(landed, sink_db, tmp_path):
    out = copy_of(landed, tmp_path)
    # the summaries and signatures are committed, the matches are not: they are reported, not loaded
    first = sink(sink_db, out)
    assert [t.table for t in first.tables] == ["wafer_summary", "lot_summary", "wafer_signatures"]
    assert set(first.missing) == {"wafer_anomaly", "similar_wafers"}
    assert "no committed pattern_matches day yet" in first.missing["wafer_anomaly"]
    assert rows_of(sink_db, WAFER_ANOMALY, DAY2).height == 0 and "wafer_anomaly" not in loaded_days(sink_db)

    signatures = expected(out, PATTERNS_PIPELINE, WAFER_SIGNATURES)
    assert signatures.height > 0 and "raster" not in signatures.columns
    got = rows_of(sink_db, WAFER_SIGNATURES, DAY2)
    assert got.equals(signatures)   # the Float32 embedding exactly, through real[]
    assert got["embedding"].dtype == pl.Array(pl.Float32, 48)
    # the same test events as wafer_summary: a BI tool joins them on its key
    assert set(got.select(WAFER_SIGNATURES.keys).rows()) == set(
        rows_of(sink_db, WAFER_SUMMARY, DAY2).select(WAFER_SUMMARY.keys).rows())

    # the matches committed: the next load adds them and leaves the rest as it was
    before = {t: all_rows(sink_db, t) for t in ("wafer_summary", "lot_summary", "wafer_signatures")}
    assert run_matches_day(day=DAY2, out=out, run_id="m1", k=3, log=quiet).committed
    second = sink(sink_db, out)
    assert second.missing == {}
    by_table = {t.table: t for t in second.tables}
    assert list(by_table) == [s.name for s in SINK_TABLES]
    for name in before:
        assert by_table[name].inserted == by_table[name].updated == by_table[name].deleted == 0
        assert all_rows(sink_db, name) == before[name]
    anomaly = expected(out, MATCHES_PIPELINE, WAFER_ANOMALY)
    similar = expected(out, MATCHES_PIPELINE, SIMILAR_WAFERS)
    assert anomaly.height == signatures.height and similar.height > 0
    # every wafer has a score or, without earlier normal wafers to score against, a reason
    assert (anomaly["anomaly_score"].is_null() == anomaly["reason"].is_not_null()).all()
    assert similar["similarity"].is_not_null().all()
    assert rows_of(sink_db, WAFER_ANOMALY, DAY2).equals(anomaly)
    assert rows_of(sink_db, SIMILAR_WAFERS, DAY2).equals(similar)
    summaries, patterns, matches = (generation(out, p) for p in (SUMMARY_PIPELINE, PATTERNS_PIPELINE,
                                                                  MATCHES_PIPELINE))
    assert loaded_days(sink_db) == {
        "wafer_summary": (summaries, by_table["wafer_summary"].rows),
        "lot_summary": (summaries, by_table["lot_summary"].rows),
        "wafer_signatures": (patterns, signatures.height),
        "wafer_anomaly": (matches, anomaly.height), "similar_wafers": (matches, similar.height)}

    # the README's BI queries over the pattern tables answer from these rows
    mix, unusual = run_pattern_queries(sink_db)
    latest = signatures.filter(pl.col("latest"))
    assert sum(r["wafers"] for r in mix) == latest.height
    assert {(r["product"], r["label"]) for r in mix} == set(latest.select("product", "label").rows())
    scored = anomaly.filter(pl.col("anomaly_score").is_not_null()).sort(
        ["anomaly_score", "wafer_token"], descending=[True, False]).head(20)
    assert unusual and [r["wafer_token"] for r in unusual] == scored["wafer_token"].to_list()
    best = {r[0]: r[1] for r in similar.filter(pl.col("rank") == 1).select("wafer_token", "similar_wafer_token").rows()}
    assert all(r["similar_wafer_token"] == best.get(r["wafer_token"]) for r in unusual)
    assert all(r["yield_pct"] is not None for r in unusual)

    # a reload: the same rows, nothing inserted, updated or deleted
    everything = {s.name: all_rows(sink_db, s.name) for s in SINK_TABLES}
    third = sink(sink_db, out)
    assert all(t.inserted == t.updated == t.deleted == 0 and not t.skipped for t in third.tables)
    assert {s.name: all_rows(sink_db, s.name) for s in SINK_TABLES} == everything


def run_pattern_queries(server) -> list[list[dict]]:
    conn = server.connect()
    try:
        with conn.cursor() as cur:
            answers = []
            for query in PATTERN_QUERIES:
                cur.execute(query)
                names = [c.name for c in cur.description]
                answers.append([dict(zip(names, row)) for row in cur.fetchall()])
        return answers
    finally:
        conn.close()


def commit(out, pipeline: str, tables: dict[str, pl.DataFrame]) -> int:
    """A new commit of DAY2's ``pipeline`` holding ``tables``, through the real protocol."""
    return commit_tables(out, pipeline, DAY2, tables)


def test_new_pattern_commits_replace_the_days_rows(landed, sink_db, tmp_path):
    out = copy_of(landed, tmp_path)
    assert run_matches_day(day=DAY2, out=out, run_id="m1", k=3, log=quiet).committed
    sink(sink_db, out)
    # the wafer of one object gone from the day, another one relabelled
    sigs = committed(out, PATTERNS_PIPELINE, DAY2, "wafer_signatures").sort("object_key")
    similar = committed(out, MATCHES_PIPELINE, DAY2, "similar_wafers")
    gone, relabelled = sigs["object_key"][0], sigs["object_key"][1]
    keep = pl.col("object_key") != gone
    commit(out, PATTERNS_PIPELINE, {"wafer_signatures": sigs.filter(keep).with_columns(
        pl.when(pl.col("object_key") == relabelled).then(pl.lit("Scratch")).otherwise("label").alias("label"))})
    commit(out, MATCHES_PIPELINE, {"similar_wafers": similar.filter(keep),
                                   "wafer_anomaly": committed(out, MATCHES_PIPELINE, DAY2, "wafer_anomaly")
                                   .filter(keep)})
    report = {t.table: t for t in sink(sink_db, out).tables}
    # every kept row is updated: its commit_generation is the new commit's
    assert (report["wafer_signatures"].deleted, report["wafer_signatures"].inserted,
            report["wafer_signatures"].updated) == (1, 0, sigs.height - 1)
    assert report["wafer_anomaly"].deleted == 1
    assert report["similar_wafers"].deleted == similar.filter(~keep).height
    for pipeline, spec in ((PATTERNS_PIPELINE, WAFER_SIGNATURES), (MATCHES_PIPELINE, WAFER_ANOMALY),
                           (MATCHES_PIPELINE, SIMILAR_WAFERS)):
        assert rows_of(sink_db, spec, DAY2).equals(expected(out, pipeline, spec)), spec.name
        assert gone not in rows_of(sink_db, spec, DAY2)["object_key"].to_list()
    labels = dict(rows_of(sink_db, WAFER_SIGNATURES, DAY2).select("object_key", "label").iter_rows())
    assert labels[relabelled] == "Scratch"


def test_a_day_without_pattern_commits_leaves_the_pattern_tables_untouched(landed, sink_db, tmp_path):
    out = copy_of(landed, tmp_path)
    assert run_matches_day(day=DAY2, out=out, run_id="m1", k=3, log=quiet).committed
    sink(sink_db, out)
    before = {t: all_rows(sink_db, t) for t in PATTERN_TABLES}
    assert all(before.values())
    # DAY: summaries and signatures committed, no matches; a third day: nothing at all
    report = sink(sink_db, out, day=DAY)
    assert set(report.missing) == {"wafer_anomaly", "similar_wafers"}
    nothing = sink(sink_db, out, day=DAY2 + timedelta(days=1))
    assert nothing.tables == [] and set(nothing.missing) == {s.name for s in SINK_TABLES}
    assert "no committed patterns day yet" in nothing.missing["wafer_signatures"]
    for t in ("wafer_anomaly", "similar_wafers"):
        assert all_rows(sink_db, t) == before[t]
    assert rows_of(sink_db, WAFER_SIGNATURES, DAY).equals(expected(out, PATTERNS_PIPELINE, WAFER_SIGNATURES, DAY))
