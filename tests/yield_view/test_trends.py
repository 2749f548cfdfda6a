"""yield_trends on days made by the real pipelines: equal to polars straight over the
committed wafer_summary files, committed through its own manifest, charted as a PNG."""

from __future__ import annotations

import io
from datetime import date

import polars as pl
import pyarrow.parquet as pq
import pytest
from PIL import Image

from failmap_assets.cli import main
from failmap_assets.defs import metadata as md
from failmap_assets.storage.day_manifest import committed_files, read_manifest
from failmap_assets.storage.layout import TRENDS_PIPELINE
from failmap_assets.storage.local_store import LocalObjectStore
from failmap_assets.wafer.model import DIE_TABLE_SCHEMA
from failmap_assets.pipeline.trends_day import run_trends
from failmap_assets.yield_view.trends import window

DAYS = (date(2026, 1, 10), date(2026, 1, 11), date(2026, 1, 12))


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    root = tmp_path_factory.mktemp("trends")
    with pytest.MonkeyPatch.context() as mp:
        for k, v in {"FAILMAP_SOURCE_A": root / "a", "FAILMAP_SOURCE_B": root / "b",
                     "FAILMAP_SOURCE_STDF": root / "stdf", "FAILMAP_OUTPUT": root / "out"}.items():
            mp.setenv(k, str(v))
        assert main(["synth", "--days", "3", "--start", "2026-01-10", "--wafers", "3", "--stdf-files", "1",
                     "--seed", "5"]) == 0
        for day in DAYS[:2]:   # the third day is never run: a window may hold days without summaries
            assert main(["run-day", day.isoformat(), "--as-of", "2026-01-14 00:00:00", "--pipeline", "all"]) == 0
    return LocalObjectStore(root / "out")


def _oracle(store) -> pl.DataFrame:
    """Latest events of the committed wafer_summary files, read with polars directly."""
    return pl.concat([pl.read_parquet(io.BytesIO(store.get(k))).with_columns(pl.lit(d).alias("date"))
                      for d in DAYS for k in committed_files(store, "summaries", d, "wafer_summary")]
                     ).filter(pl.col("latest"))


def bins_named(wafers: pl.DataFrame) -> pl.DataFrame:
    """Each bin the days' files name (fail maps and STDF alike), with its names."""
    return (wafers.select("bins").explode("bins").unnest("bins").drop_nulls("name")
            .group_by("bin").agg(pl.col("name").unique()).select("bin", "name"))


def test_trends_equal_polars_over_the_committed_summaries_and_commit_once(out):
    report = run_trends(last=DAYS[-1], days=4, out=out, run_id="run-trends-1", log=lambda m: None)
    assert report.committed and report.days == window(DAYS[-1], 4)
    wafers = _oracle(out)
    assert wafers.height > 0

    for dim in ("product", "step", "tester"):
        expected = {(d, v or "(none)", n, dies, round(100 * p / dies, 2) if dies else None)
                    for d, v, n, dies, p in wafers.group_by("date", dim).agg(
                        pl.len(), pl.col("dies").sum(), pl.col("pass_dies").sum()).iter_rows()}
        got = report.yield_trend.filter(pl.col("by") == dim).select(
            "date", "value", "wafers", "dies", "yield_pct").iter_rows()
        assert set(got) == expected, dim
    assert set(report.yield_trend["date"]) == set(DAYS[:2])   # the day without summaries has no rows

    bins = wafers.select("date", "bins").explode("bins").unnest("bins").group_by("date", "bin", "pass").agg(
        pl.col("dies").sum())
    assert set(report.bin_pareto.select("date", "bin", "pass", "dies").iter_rows()) == set(bins.iter_rows())
    names = {b: set(n) for b, n in bins_named(wafers).iter_rows()}
    shown = [(b, n) for b, n in report.bin_pareto.select("bin", "name").iter_rows() if b in names]
    assert names and shown and all(n in names[b] for b, n in shown)
    assert "| loss |" in md.trend_pareto(report.bin_pareto)["bin_pareto"].value
    assert any(f"| {b} | {n} |" in md.trend_pareto(report.bin_pareto)["bin_pareto"].value for b, n in shown)
    for day_rows in report.bin_pareto.partition_by("date"):   # loss bins first, most dies first
        order = list(zip(day_rows["pass"], [-n for n in day_rows["dies"]]))
        assert order == sorted(order)

    manifest, _ = read_manifest(out, TRENDS_PIPELINE, DAYS[-1])
    assert manifest.generation == report.generation
    read_back = pl.read_parquet(io.BytesIO(out.get(committed_files(out, TRENDS_PIPELINE, DAYS[-1], "yield_trend")[0])))
    assert read_back.equals(report.yield_trend)

    again = run_trends(last=DAYS[-1], days=4, out=out, run_id="run-trends-2", log=lambda m: None)
    assert not again.committed and again.generation == report.generation
    assert again.yield_trend.equals(report.yield_trend)

    chart = Image.open(io.BytesIO(report.chart))
    chart.verify()
    assert chart.format == "PNG" and chart.size[0] > 300

    pooled = wafers["pass_dies"].sum() / wafers["dies"].sum()
    assert md.window_yield(report.yield_trend)["yield_pct"].value == round(100 * pooled, 2)
    assert "| loss |" in md.trend_pareto(report.bin_pareto)["bin_pareto"].value or wafers["pass_dies"].sum() == wafers["dies"].sum()


def test_the_asset_materializes_the_window_with_yield_first_and_the_chart(out):
    from dagster import materialize

    from failmap_assets.defs.yield_view.trends import yield_trends
    from failmap_assets.resources import build_resources
    from failmap_assets.settings import Settings

    settings = Settings(source_a="unused-a", source_b="unused-b", source_stdf="unused-stdf", output=out.root)
    resources = {k: v for k, v in build_resources(settings).items() if k in ("storage", "failmap_rules")}
    result = materialize([yield_trends], partition_key=DAYS[1].isoformat(), resources=resources)
    assert result.success
    (event,) = result.get_asset_materialization_events()
    meta = event.materialization.metadata
    assert next(iter(meta)) == "yield_pct"
    assert "data:image/png;base64," in meta["chart"].value and "| bin | name | kind |" in meta["bin_pareto"].value
    assert meta["days_summarised"].value == 2


def test_the_day_pareto_names_every_die_of_the_latest_events_loss_bins_first(out):
    """The pipelines' committed day totals carry each bin's verdict and name; the pareto
    accounts for all the day's dies and agrees with wafer_summary's bins and verdicts."""
    wafers = _oracle(out)
    for pipeline, source in (("failmap", "failmap"), ("stdf", "stdf")):
        manifest, _ = read_manifest(out, pipeline, DAYS[0])
        pareto = manifest.totals["bin_pareto"]
        assert sum(r[3] for r in pareto) == manifest.totals["dies"] > 0, pipeline
        passes = [r[2] for r in pareto]
        assert passes == sorted(passes), pipeline          # loss bins first
        summary = (wafers.filter((pl.col("source") == source) & (pl.col("date") == DAYS[0]))
                   .select("bins").explode("bins").unnest("bins")
                   .group_by("bin", "pass").agg(pl.col("name").drop_nulls().first(), pl.col("dies").sum()))
        assert {(b, p, d) for b, _, p, d in pareto} == set(summary.select("bin", "pass", "dies").iter_rows()), pipeline
        # names where the files name the bins: the fail maps' BINDEF names, STDF's HBR names
        assert any(r[1] for r in pareto), pipeline
        named = {b: n for b, n in summary.select("bin", "name").iter_rows() if n}
        assert named, pipeline
        assert all(r[1] == named[r[0]] for r in pareto if r[0] in named), pipeline
    text = md.bin_pareto(manifest.totals)["bin_pareto"].value
    assert text.splitlines()[0] == "| bin | name | kind | dies | share |"


def test_the_ui_column_schemas_are_the_columns_a_real_day_writes(out):
    from failmap_assets.defs.table_schemas import TABLE_SCHEMAS

    for pipeline, tables in (("failmap", ("bucket_a_objects", "bucket_b_objects", "failmap_pairs", "failmap_dies",
                                          "failmap_rejects")), ("stdf", ("stdf_objects", "stdf_rejects"))):
        for table in tables:
            (key, *_) = committed_files(out, pipeline, DAYS[0], table)
            shown = {c.name: c.type for c in TABLE_SCHEMAS[table].columns}
            if table == "failmap_dies":   # stated in Arrow types, as its writer does
                schema = pq.read_schema(io.BytesIO(out.get(key)))
                assert all(f.type.equals(DIE_TABLE_SCHEMA.field(f.name).type) for f in schema)
                written = {f.name: str(DIE_TABLE_SCHEMA.field(f.name).type) for f in schema}
            else:
                written = {k: str(v) for k, v in pl.read_parquet_schema(io.BytesIO(out.get(key))).items()}
            assert shown == written, table


def _trend_files(store: LocalObjectStore, last: date) -> set[str]:
    """Every file in the trends' table and state folders of ``last`` (the lease aside)."""
    from failmap_assets.storage.layout import day_prefixes, lease_key

    return {o.key for p in day_prefixes(TRENDS_PIPELINE, last) for o in store.list(p)} - {lease_key(TRENDS_PIPELINE,
                                                                                                     last)}


@pytest.mark.parametrize(("when", "committed_before"), [
    ("yield_trend/", False),       # the first run of the window dies after its first table
    ("bin_pareto_trend/", True),   # a forced run dies after both tables, before its manifest
    ("manifest.json", True),       # ... after its manifest, before removing what it replaced
])
def test_a_trends_run_killed_mid_commit_then_a_rerun_converges_to_one_clean_run(out, tmp_path, when,
                                                                                committed_before):
    import shutil
    import signal
    import subprocess
    import sys

    from failmap_assets.storage.layout import manifest_key
    from tests.support.testdata import REPO

    last, days = DAYS[1], 3
    clean, killed = (LocalObjectStore(shutil.copytree(out.root, tmp_path / name)) for name in ("clean", "killed"))
    reference = run_trends(last=last, days=days, out=clean, run_id="clean", log=lambda m: None)
    if committed_before:
        run_trends(last=last, days=days, out=killed, run_id="before", log=lambda m: None)
    before = read_manifest(killed, TRENDS_PIPELINE, last)[0]

    proc = subprocess.run([sys.executable, "-m", "tests.support.killed_trends", str(killed.root), last.isoformat(),
                           str(days), when, *(["force"] if committed_before else [])],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stdout, proc.stderr)
    assert "killing after" in proc.stdout and when in proc.stdout, proc.stdout
    after_kill = read_manifest(killed, TRENDS_PIPELINE, last)[0]
    if when != "manifest.json":   # killed before its commit: the window is as it was
        assert (after_kill and after_kill.generation) == (before and before.generation)
        assert _trend_files(killed, last) - (before.live_files() if before else set()) - {
            manifest_key(TRENDS_PIPELINE, last)}, "the dead run left its files"
    else:                         # committed, but the replaced files are still there
        assert after_kill.generation == before.generation + 1
        assert _trend_files(killed, last) > after_kill.live_files() | {manifest_key(TRENDS_PIPELINE, last)}

    rerun = run_trends(last=last, days=days, out=killed, run_id="rerun", log=lambda m: None)
    assert rerun.committed == (not committed_before)   # the same summaries: a commit stands as it is
    manifest = read_manifest(killed, TRENDS_PIPELINE, last)[0]
    assert _trend_files(killed, last) == manifest.live_files() | {manifest_key(TRENDS_PIPELINE, last)}
    for table in ("yield_trend", "bin_pareto_trend"):
        (key,) = committed_files(killed, TRENDS_PIPELINE, last, table)
        assert pl.read_parquet(io.BytesIO(killed.get(key))).equals(
            getattr(reference, "yield_trend" if table == "yield_trend" else "bin_pareto")), table
    assert manifest.totals == reference.totals and manifest.inputs == read_manifest(
        clean, TRENDS_PIPELINE, last)[0].inputs
