"""`failmap sql` over the pipelines' own committed days, local and S3: the README's three
questions (run exactly as written there), files no commit names, hostile manifests."""

from __future__ import annotations

import io
import os
import re
import shlex
import shutil
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from failmap_assets.cli import main
from failmap_assets.query.output_views import open_output_views
from failmap_assets.storage.day_manifest import DayManifest, commit_manifest, committed_files, read_manifest
from failmap_assets.storage.layout import table_dir
from failmap_assets.storage.local_store import LocalObjectStore
from failmap_assets.storage.locations import open_store
from failmap_assets.storage.object_store import UnsafeKey
from failmap_assets.storage.parquet_io import write_table
from tests.support.testdata import REPO

README = (REPO / "README.md").read_text()
QUERIES = dict(re.findall(r"<!-- readme-query: (\w+) -->\n```sql\n(.*?)```", README, re.S))
# The demo commands the README shows just before its questions.
DEMO = re.search(r"Three questions,.*?```sh\n(.*?)```", README, re.S).group(1)
DAYS = (date(2026, 1, 10), date(2026, 1, 11))


def _env(root: Path, output: str) -> dict[str, str]:
    return {"FAILMAP_SOURCE_A": str(root / "a"), "FAILMAP_SOURCE_B": str(root / "b"),
            "FAILMAP_SOURCE_STDF": str(root / "stdf"), "FAILMAP_OUTPUT": output}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The README's demo days, made by its own commands through the real pipeline."""
    root = tmp_path_factory.mktemp("demo")
    with pytest.MonkeyPatch.context() as mp:
        for k, v in _env(root, str(root / "out")).items():
            mp.setenv(k, v)
        for line in DEMO.strip().splitlines():
            argv = shlex.split(line)
            assert argv[0] == "failmap"
            assert main(argv[1:]) == 0, line
    return root


def _dies(store) -> pl.DataFrame:
    """The oracle: the committed die parts, read with polars straight from the manifests."""
    frames = [pl.read_parquet(io.BytesIO(store.get(k))).with_columns(pl.lit(d).alias("date"))
              for d in DAYS for k in committed_files(store, "failmap", d, "failmap_dies")]
    return pl.concat(frames).filter(pl.col("latest") & pl.col("in_a"))


def _rows(views, name):
    return views.con.sql(QUERIES[name]).fetchall()


def test_the_readme_questions_on_a_committed_day(demo, monkeypatch, capsys):
    assert set(QUERIES) == {"yield_by_product", "lot_loss_bins", "worst_wafers"}
    store = LocalObjectStore(demo / "out")
    dies = _dies(store)
    with open_output_views(store) as views:
        assert views.days == {"failmap": list(DAYS), "stdf": list(DAYS), "summaries": list(DAYS), "trends": []}

        by_product = (dies.with_columns(pl.col("product").fill_null("(none)"))
                      .group_by("product").agg(wafers=pl.col("wafer_token").n_unique(), dies=pl.len(),
                                               passed=pl.col("pass").sum()))
        expected = {(r["product"], r["wafers"], r["dies"], round(100 * r["passed"] / r["dies"], 2))
                    for r in by_product.iter_rows(named=True)}
        got = _rows(views, "yield_by_product")
        assert set(got) == expected and len(got) >= 2
        assert [r[3] for r in got] == sorted(r[3] for r in got)

        lot = dies.filter(pl.col("lot") == "M4F469.2")
        losses = lot.filter(~pl.col("pass")).group_by("bin").len().sort(["len", "bin"], descending=[True, False])
        got = _rows(views, "lot_loss_bins")
        assert [(b, n) for b, n, _ in got] == list(losses.head(5).iter_rows())
        assert got[0][2] == round(100 * got[0][1] / lot.height, 2)

        day = (dies.filter(pl.col("date") == DAYS[1]).group_by("wafer_token", "lot", "wafer")
               .agg(dies=pl.len(), y=(100 * pl.col("pass").mean()).round(2)).sort(["y", "wafer_token"]))
        got = _rows(views, "worst_wafers")
        assert [(t, d, y) for t, _, _, d, y in got] == [(r[0], r[3], r[4]) for r in day.head(5).iter_rows()]

    # The same query text through the command itself.
    monkeypatch.setenv("FAILMAP_OUTPUT", str(demo / "out"))
    assert main(["sql", QUERIES["worst_wafers"]]) == 0
    assert re.search(r"wafer_token\s+lot\s+wafer\s+dies\s+yield_pct\n", capsys.readouterr().out)


def test_every_table_of_both_pipelines_has_a_view(demo):
    with open_output_views(LocalObjectStore(demo / "out")) as views:
        counts = {v: views.con.execute(f"SELECT count(*) FROM {v}").fetchone()[0] for v in views.views}
        assert {"failmap_dies", "failmap_rejects", "failmap_pairs", "bucket_a_objects", "bucket_b_objects",
                "stdf_objects", "stdf_rejects", "files", "parts", "ptr_results", "ptr_effective", "mpr_effective",
                "ftr_effective"} <= set(counts)
        for v in ("failmap_dies", "failmap_rejects", "failmap_pairs", "bucket_a_objects", "stdf_objects",
                  "files", "parts", "ptr_results", "ptr_effective", "wafer_summary", "lot_summary"):
            assert counts[v] > 0, v
        # the summaries describe the same days: one row per test event of either source
        assert views.con.execute("SELECT count(*) FROM wafer_summary WHERE source = 'failmap'").fetchone()[0] == \
            views.con.execute("SELECT count(DISTINCT (date, wafer_token, a_key)) FROM failmap_dies WHERE in_a").fetchone()[0]
        # Every STDF part joins its file through file_id, and every view knows its day.
        assert views.con.execute("SELECT count(*) FROM parts LEFT JOIN files USING (file_id, date) "
                                 "WHERE files.file_name IS NULL").fetchone()[0] == 0
        assert views.con.execute("SELECT count(DISTINCT date) FROM failmap_rejects").fetchone()[0] == 2
    with open_output_views(LocalObjectStore(demo / "out"), first=DAYS[1]) as views:
        assert views.con.sql("SELECT DISTINCT date FROM parts").fetchall() == [(DAYS[1],)]


def test_files_no_commit_names_are_never_read(demo, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(demo / "out", out)
    store = LocalObjectStore(out)
    garbage = pl.read_parquet(io.BytesIO(store.get(committed_files(store, "failmap", DAYS[1], "failmap_dies")[0])))
    garbage = garbage.with_columns(pl.lit("CRASHED.1").alias("lot"))
    # A crashed run's part beside the live ones, and a day whose first run is still writing.
    write_table(store, f"{table_dir('failmap_dies', DAYS[1])}part-g000009-crashed-0000.parquet", garbage)
    write_table(store, f"{table_dir('failmap_dies', date(2026, 1, 12))}part-g000001-running-0000.parquet", garbage)
    store.put("state/failmap/date=2026-01-12/lease.json", b"{}")
    with open_output_views(store) as views:
        assert views.con.execute("SELECT count(*) FROM failmap_dies WHERE lot = 'CRASHED.1'").fetchone()[0] == 0
        assert views.days["failmap"] == list(DAYS)


def test_a_manifest_naming_a_file_outside_its_table_is_refused(demo, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(demo / "out", out)
    store = LocalObjectStore(out)
    manifest, etag = read_manifest(store, "failmap", DAYS[1])
    for bad in ("parquet/failmap_rejects/date=2026-01-11/x.parquet", "parquet/failmap_dies/date=2026-01-11/../x.parquet",
                "../../etc/passwd"):
        manifest.tables["failmap_dies"] = [bad]
        etag = commit_manifest(store, manifest, etag)
        with pytest.raises(UnsafeKey):
            open_output_views(store)


def test_sql_on_an_s3_output(demo, s3_env, monkeypatch):
    """One demo day run by the pipeline with its output on S3 (SeaweedFS), read back."""
    for k, v in _env(demo, s3_env).items():
        monkeypatch.setenv(k, v)
    assert main(["run-day", DAYS[1].isoformat(), "--as-of", "2026-01-12 00:00:00", "--pipeline", "all"]) == 0
    store = open_store(s3_env, endpoint_url=os.environ["FAILMAP_S3_ENDPOINT_URL"])
    store.put(f"{table_dir('failmap_dies', DAYS[1])}part-g000009-crashed-0000.parquet", b"not parquet at all")
    with open_output_views(store) as views, open_output_views(LocalObjectStore(demo / "out"), first=DAYS[1],
                                                             last=DAYS[1]) as local:
        assert views.days == {"failmap": [DAYS[1]], "stdf": [DAYS[1]], "summaries": [DAYS[1]], "trends": []}
        assert _rows(views, "worst_wafers") == _rows(local, "worst_wafers")
        lots = "SELECT source, lot, step, wafers, dies, pass_dies FROM lot_summary ORDER BY ALL"
        assert views.con.execute(lots).fetchall() == local.con.execute(lots).fetchall()
        assert views.con.execute("SELECT count(*) FROM parts").fetchone() == local.con.execute(
            "SELECT count(*) FROM parts").fetchone()
        tmp = views._tmp.name
    assert not Path(tmp).exists()  # the copy goes with the views
