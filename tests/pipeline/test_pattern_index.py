"""Each product's pattern index on a real local store: incremental rebuilds equal a build
from scratch, the one-step switch, rollback after a failed or killed rebuild, two
rebuilders at once, garbage collection of old versions."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from failmap_assets.pipeline import pattern_index as pix
from failmap_assets.storage.layout import pattern_index_dir, pattern_index_pointer
from failmap_assets.storage.local_store import LocalObjectStore
from tests.support.faulty_store import FaultyStore, InjectedFault
from tests.support.pattern_days import commit_signature_day, signature_rows

D1 = date(2026, 3, 1)
REPO = Path(__file__).resolve().parents[2]


def quiet(_line: str) -> None:
    pass


def rebuild(store, **kw) -> pix.RoundReport:
    report = pix.rebuild_indexes(store, run_id=kw.pop("run_id", "r"), log=quiet, **kw)
    assert not report.failed, report.failed
    return report


def content(store, product="P1") -> tuple[pl.DataFrame, bytes]:
    v = pix.load_index(store, product)
    return v.rows, v.embeddings.tobytes()


def test_incremental_rebuilds_equal_a_build_from_scratch(tmp_path):
    store = LocalObjectStore(tmp_path / "a")
    commit_signature_day(store, D1, signature_rows(D1, 30))
    first = rebuild(store).products["P1"]
    assert first.rebuilt and first.previous is None and first.changed_days == [D1.isoformat()]
    for i in (1, 2):
        d = D1 + timedelta(days=i)
        commit_signature_day(store, d, signature_rows(d, 20, seed=i))
        r = rebuild(store).products["P1"]
        assert r.rebuilt and r.changed_days == [d.isoformat()]
    # day 2 re-materialized with other wafers: its rows are replaced, the others kept
    d2 = D1 + timedelta(days=1)
    commit_signature_day(store, d2, signature_rows(d2, 8, seed=7))
    r = rebuild(store).products["P1"]
    assert r.changed_days == [d2.isoformat()]
    rows, emb = content(store)
    assert rows.filter(pl.col("day") == d2).height == 8 and rows.height == 30 + 8 + 20
    # nothing new: no rebuild, the same version
    again = rebuild(store).products["P1"]
    assert not again.rebuilt and again.version == r.version

    # the same committed days, built once from scratch elsewhere: the same content
    fresh = LocalObjectStore(tmp_path / "b")
    for d, seed, n in ((D1, 0, 30), (d2, 7, 8), (D1 + timedelta(days=2), 2, 20)):
        commit_signature_day(fresh, d, signature_rows(d, n, seed=seed))
    rebuild(fresh)
    rows_b, emb_b = content(fresh)
    assert rows_b.equals(rows) and emb_b == emb
    # and a forced rebuild of the same days (idempotence): the same content again
    forced = rebuild(store, force=True).products["P1"]
    assert forced.rebuilt and content(store)[0].equals(rows) and content(store)[1] == emb


def test_search_filters_by_step_and_day(tmp_path):
    store = LocalObjectStore(tmp_path)
    for i in range(3):
        d = D1 + timedelta(days=i)
        commit_signature_day(store, d, signature_rows(d, 24, seed=i, steps=("S1", "S2")))
    rebuild(store)
    v = pix.load_index(store, "P1")
    q = v.embeddings[0].astype(np.float32)
    mask = v.mask(step="S2", before=D1 + timedelta(days=2))
    rows, sims = v.index.search(q, 10, mask)
    got = v.rows[rows]
    assert len(rows) == 10 and set(got["step"]) == {"S2"} and got["day"].max() < D1 + timedelta(days=2)
    assert set(v.rows["label"]) >= {"none", "Center"} and v.stats["normal_bank"] == v.rows["normal"].sum() > 0
    assert v.stats["knn5_loo"] > 0.9     # wafers near the same centre share their label
    assert v.calibration.threshold is not None


def test_products_are_separate_indexes(tmp_path):
    store = LocalObjectStore(tmp_path)
    commit_signature_day(store, D1, pl.concat([signature_rows(D1, 10), signature_rows(D1, 6, product="P/2", lot="X")]))
    report = rebuild(store)
    assert set(report.products) == {"P1", "P/2"}
    assert pix.load_index(store, "P/2").rows.height == 6 and pix.load_index(store, "P1").rows.height == 10
    assert pix.indexed_products(store) == ["P/2", "P1"]


def test_failed_rebuild_leaves_the_previous_version_serving(tmp_path):
    inner = LocalObjectStore(tmp_path)
    commit_signature_day(inner, D1, signature_rows(D1, 20))
    rebuild(inner)
    before = pix.read_pointer(inner, "P1")[0]["version"]
    d2 = D1 + timedelta(days=1)
    commit_signature_day(inner, d2, signature_rows(d2, 20, seed=1))
    # count a healthy rebuild's writes on a copy, then fail each of them in turn
    import shutil
    shutil.copytree(tmp_path, tmp_path.parent / "probe")
    probe = FaultyStore(LocalObjectStore(tmp_path.parent / "probe"))
    rebuild(probe)
    writes = len(probe.puts)
    assert writes == 5   # three version files, stats, the pointer
    for n in range(1, writes + 1):
        run = tmp_path.parent / f"run{n}"
        shutil.copytree(tmp_path, run)
        store = FaultyStore(LocalObjectStore(run), fail_put=n)
        report = pix.rebuild_indexes(store, run_id=f"f{n}", log=quiet)
        assert "P1" in report.failed and "InjectedFault" in report.failed["P1"]
        pointer = pix.read_pointer(store, "P1")[0]
        assert pointer["version"] == before          # rollback: the previous version still serves
        assert pix.load_index(store, "P1").rows.height == 20
        ok = rebuild(LocalObjectStore(run)).products["P1"]   # the next rebuild succeeds
        assert ok.rebuilt and pix.load_index(LocalObjectStore(run), "P1").rows.height == 40
    with pytest.raises(InjectedFault):
        FaultyStore(inner, fail_put=1).put("x", b"")


def test_a_killed_rebuild_leaves_the_previous_version_serving(tmp_path):
    store = LocalObjectStore(tmp_path)
    commit_signature_day(store, D1, signature_rows(D1, 20))
    rebuild(store)
    before = pix.read_pointer(store, "P1")[0]["version"]
    d2 = D1 + timedelta(days=1)
    commit_signature_day(store, d2, signature_rows(d2, 20, seed=1))
    done = subprocess.run([sys.executable, "-m", "tests.support.killed_index_rebuild", str(tmp_path), "rows.parquet"],
                          cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == -signal.SIGKILL, done.stdout + done.stderr
    assert "killing after" in done.stdout
    assert pix.read_pointer(store, "P1")[0]["version"] == before
    assert pix.load_index(store, "P1").rows.height == 20
    # the dead rebuild's folder is left; the next rebuild switches and collects it once stale
    versions = {o.key.split("/")[3] for o in store.list(pattern_index_dir("P1")) if o.key.count("/") == 4}
    assert len(versions) == 2
    report = rebuild(store).products["P1"]
    assert report.rebuilt and pix.load_index(store, "P1").rows.height == 40
    dead = (versions - {before}).pop()
    assert dead not in report.collected           # young: perhaps a live rebuild's
    old = pix.STALE_VERSION_AGE
    try:
        pix.STALE_VERSION_AGE = timedelta(seconds=-1)
        assert dead in pix.collect_versions(store, "P1", log=quiet)
    finally:
        pix.STALE_VERSION_AGE = old


def test_second_switcher_is_refused(tmp_path):
    """Two rebuilds read the same pointer; the first switch wins, the second's
    compare-and-swap is refused and its version folder removed."""
    store = LocalObjectStore(tmp_path)
    commit_signature_day(store, D1, signature_rows(D1, 20))
    rebuild(store)
    d2 = D1 + timedelta(days=1)
    commit_signature_day(store, d2, signature_rows(d2, 20, seed=1))
    days = pix.committed_signature_days(store)
    read = lambda d: pix.day_signature_rows(store, days.manifests[d])   # noqa: E731

    # the second rebuilder switches right after the first one wrote its stats (before its switch)
    second: list = []

    def race(key: str) -> None:
        if key.endswith("stats.json") and not second:
            second.append(pix.rebuild_product(store, "P1", days, run_id="second", read_day=read, log=quiet))

    racing = FaultyStore(store, after_put=race)
    with pytest.raises(pix.IndexConflict):
        pix.rebuild_product(racing, "P1", days, run_id="first", read_day=read, log=quiet)
    winner = second[0].version
    assert pix.read_pointer(store, "P1")[0]["version"] == winner
    folders = {o.key.split("/")[3] for o in store.list(pattern_index_dir("P1")) if o.key.count("/") == 4}
    assert all(not f.startswith("v000002") or f == winner for f in folders)   # the loser's folder is gone
    assert pix.load_index(store, "P1").rows.height == 40


def test_old_versions_are_collected_and_roll_back(tmp_path):
    store = LocalObjectStore(tmp_path)
    versions = []
    for i in range(5):
        d = D1 + timedelta(days=i)
        commit_signature_day(store, d, signature_rows(d, 6, seed=i))
        versions.append(rebuild(store).products["P1"].version)
    folders = sorted({o.key.split("/")[3] for o in store.list(pattern_index_dir("P1")) if o.key.count("/") == 4})
    assert folders == sorted(versions[-pix.KEEP_VERSIONS:])
    pointer = json.loads(store.get(pattern_index_pointer("P1")))
    assert [h["version"] for h in pointer["history"]] == versions[::-1]
    assert pointer["history"][0]["rows"] == 30 and pointer["history"][0]["build_seconds"] >= 0
    back = pix.roll_back(store, "P1", log=quiet)
    assert back == versions[-2] and pix.load_index(store, "P1").rows.height == 24


def test_a_product_of_too_small_wafers_only_gets_no_index(tmp_path):
    store = LocalObjectStore(tmp_path)
    tiny = signature_rows(D1, 4, product="TINY", lot="T").with_columns(pl.lit("too_small").alias("label"))
    commit_signature_day(store, D1, pl.concat([signature_rows(D1, 10), tiny]))
    report = rebuild(store)
    assert report.products["TINY"].version is None and pix.load_index(store, "TINY") is None
    assert pix.load_index(store, "P1").rows.height == 10


def test_an_index_holds_one_signature_version(tmp_path, monkeypatch):
    """Embeddings of two signature versions are not comparable: days signed by other code
    are left out and named; an index built by other code is rebuilt from the days; a
    day's matches never search an index of another version."""
    from failmap_assets.pipeline.patterns_day import run_matches_day
    from failmap_assets.storage.day_manifest import read_manifest
    from failmap_assets.storage.layout import MATCHES_PIPELINE
    from failmap_assets.storage.parquet_io import read_table
    from failmap_assets.storage.committed_tables import named_table_files

    store = LocalObjectStore(tmp_path / "a")
    d2, d3 = D1 + timedelta(days=1), D1 + timedelta(days=2)
    # the index as the previous code built it: every day signed by version "old"
    monkeypatch.setattr(pix, "SIGNATURE_VERSION", "old")
    for d in (D1, d2):
        commit_signature_day(store, d, signature_rows(d, 20, seed=d.day), signature_version="old")
    old = rebuild(store).products["P1"]
    assert old.rebuilt and pix.index_signature_version(pix.load_index(store, "P1")) == "old"
    monkeypatch.undo()

    # this code signs another version: the old days are stale, the old index is not reused
    current = pix.SIGNATURE_VERSION
    commit_signature_day(store, d3, signature_rows(d3, 12, seed=3))
    report = rebuild(store)
    assert report.stale_days == {D1.isoformat(): "old", d2.isoformat(): "old"}
    r = report.products["P1"]
    assert r.rebuilt and r.stale_days == [D1.isoformat(), d2.isoformat()]
    served = pix.load_index(store, "P1")
    assert pix.index_signature_version(served) == current and served.stats["stale_days"] == r.stale_days
    assert served.rows["day"].unique().to_list() == [d3] and served.rows.height == 12

    # a stale day's matches do not search it: each test event says why it has no score
    assert run_matches_day(day=d2, out=store, run_id="m", log=quiet).committed
    manifest, _ = read_manifest(store, MATCHES_PIPELINE, d2)
    anomaly = pl.concat(read_table(store, k) for k in named_table_files(manifest)["wafer_anomaly"])
    assert anomaly.height == 20 and set(anomaly["reason"].to_list()) == {"signature_version_differs"}

    # the stale day re-signed by this code: it joins the index; from scratch elsewhere, the same
    commit_signature_day(store, D1, signature_rows(D1, 20, seed=D1.day))
    again = rebuild(store)
    assert again.stale_days == {d2.isoformat(): "old"} and again.products["P1"].changed_days == [D1.isoformat()]
    fresh = LocalObjectStore(tmp_path / "fresh")
    for d, n, seed in ((D1, 20, D1.day), (d3, 12, 3)):
        commit_signature_day(fresh, d, signature_rows(d, n, seed=seed))
    rebuild(fresh)
    assert content(fresh)[0].equals(content(store)[0]) and content(fresh)[1] == content(store)[1]
