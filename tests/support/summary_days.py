"""A commit of a synthetic day (the summaries, or any tables), through the real commit protocol (lease,
files under the run's tag, manifest written last): what the sink reads, without
running the pipelines."""

from __future__ import annotations

import uuid
from datetime import date

import polars as pl

from failmap_assets.pipeline.day_commit import DaySession
from failmap_assets.pipeline.day_lease import LeaseOptions
from failmap_assets.storage.day_manifest import DayManifest
from failmap_assets.storage.layout import SUMMARY_PIPELINE, table_file
from failmap_assets.storage.object_store import ObjectStore
from failmap_assets.storage.parquet_io import write_table
from failmap_assets.yield_view.summaries import lot_summary


def commit_tables(out: ObjectStore, pipeline: str, day: date, tables: dict[str, pl.DataFrame]) -> int:
    """A new commit of ``pipeline``'s ``day`` holding exactly ``tables``; its generation."""
    with DaySession(out, pipeline, day, f"test-{uuid.uuid4().hex[:8]}", lease=LeaseOptions(),
                    log=lambda m: None) as session:
        files = {name: [table_file(name, day, session.tag)] for name in tables}
        for name, frame in tables.items():
            write_table(out, files[name][0], frame)
        manifest = DayManifest(pipeline=pipeline, day=day, tables=files)
        session.commit(manifest)
        return manifest.generation


def commit_summaries(out: ObjectStore, day: date, wafers: pl.DataFrame) -> int:
    """Commit ``wafers`` as the day's wafer_summary (and its lot_summary); the commit's generation."""
    return commit_tables(out, SUMMARY_PIPELINE, day, {"wafer_summary": wafers, "lot_summary": lot_summary(wafers)})
