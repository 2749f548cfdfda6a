"""The day runner on local folders: die rows split over several Parquet parts written
on the part thread, the ledger naming each unit's part, and a failing part upload
failing the run without a ledger (so the rerun redoes everything)."""

from __future__ import annotations

import io
from datetime import date
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from failmap_assets.pipeline import processed_ledger
from failmap_assets.pipeline.failmap_day import DIES_TABLE, PIPELINE, RunnerOptions, run_day
from failmap_assets.wafer.model import DIE_TABLE_SCHEMA
from failmap_assets.storage.layout import table_dir
from failmap_assets.storage.local_store import LocalObjectStore
from failmap_synth.day import generate_day
from failmap_assets.pipeline.unit import ProcessingOptions

DAY = date(2026, 1, 11)


def _day(tmp_path: Path, wafers: int = 12) -> tuple[dict[str, LocalObjectStore], pl.DataFrame]:
    for name in ("a", "b", "out"):
        (tmp_path / name).mkdir()
    stores = {name: LocalObjectStore(tmp_path / name) for name in ("a", "b", "out")}
    objects = [o for o in generate_day(DAY, wafers, 7, broken=False, dies_range=(300, 3000), typical_dies=1500)
               if o.bucket in ("a", "b")]
    etags = {(o.bucket, o.key): stores[o.bucket].put(o.key, o.data).etag for o in objects}
    rows = []
    for o in objects:
        if o.bucket != "a" or o.maps != 1:
            continue
        token = o.key.rsplit("/", 1)[-1].rsplit("_", 2)[0]
        rows.append({"a_key": o.key, "a_etag": etags["a", o.key], "wafer_token": token,
                     "b_key": o.partner, "b_etag": etags["b", o.partner] if o.partner else None})
    return stores, pl.DataFrame(rows, schema={"a_key": pl.String, "a_etag": pl.String, "wafer_token": pl.String,
                                              "b_key": pl.String, "b_etag": pl.String})


def _run(stores, units, *, part_rows: int, run_id: str = "run1"):
    return run_day(units, day=DAY, a_store=stores["a"], b_store=stores["b"], out_store=stores["out"],
                   processing=ProcessingOptions(), run_id=run_id, log=lambda _: None,
                   options=RunnerOptions(max_workers=4, max_in_flight=4, part_rows=part_rows))


def test_rows_spread_over_parts_each_unit_in_exactly_one(tmp_path: Path) -> None:
    stores, units = _day(tmp_path)
    report = _run(stores, units, part_rows=4000)
    assert report.units_done == units.height and report.download_errors == []
    assert len(report.part_files) >= 3  # small parts: the writer thread really took turns
    listed = sorted(o.key for o in stores["out"].list(table_dir(DIES_TABLE, DAY)))
    assert listed == sorted(report.part_files)

    ledger = processed_ledger.load(stores["out"], PIPELINE, DAY)
    assert ledger.height == units.height and ledger["part_file"].null_count() == 0
    rows_per_key = {}
    for part in report.part_files:
        table = pq.read_table(io.BytesIO(stores["out"].get(part)))
        assert [(f.name, f.type) for f in table.schema] == [(f.name, f.type) for f in DIE_TABLE_SCHEMA]
        frame = pl.from_arrow(table)
        assert frame.height < 4000 + 3100  # a part closes at the unit that reaches part_rows
        for a_key, n in frame.group_by("a_key").len().iter_rows():
            assert a_key not in rows_per_key, f"{a_key} in two parts"
            rows_per_key[a_key] = (part, n)
            # The ledger names the part that really holds the unit's rows.
            assert ledger.filter(pl.col("a_key") == a_key)["part_file"].item() == part
        # Dictionary-encoded per-wafer strings came back as the right value on every row.
        tokens = frame.select("a_key", "wafer_token").unique()
        assert tokens.height == frame["a_key"].n_unique()
        assert all(a.rsplit("/", 1)[-1].startswith(t) for a, t in tokens.iter_rows())
    assert set(rows_per_key) == set(units["a_key"])
    assert sum(n for _, n in rows_per_key.values()) == report.dies + report.b_only_dies


class _PartUploadFails(LocalObjectStore):
    def put(self, key, data, content_type=None):
        if "/failmap_dies/" in key:
            raise OSError("injected: disk full while writing a part")
        return super().put(key, data, content_type)


def test_a_failed_part_upload_fails_the_run_and_writes_no_ledger(tmp_path: Path) -> None:
    stores, units = _day(tmp_path, wafers=6)
    stores["out"] = _PartUploadFails(tmp_path / "out")
    with pytest.raises(OSError, match="disk full"):
        _run(stores, units, part_rows=2000)
    assert processed_ledger.load(stores["out"], PIPELINE, DAY).height == 0
    # The rerun on a healthy store completes everything.
    stores["out"] = LocalObjectStore(tmp_path / "out")
    report = _run(stores, units, part_rows=2000, run_id="run2")
    assert report.units_done == units.height and report.units_skipped_done == 0
    assert processed_ledger.load(stores["out"], PIPELINE, DAY)["part_file"].null_count() == 0
