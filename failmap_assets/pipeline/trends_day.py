"""The trends of a window of days: the summaries' commits of the window read through
their manifests, the pure computations of ``yield_view/trends.py``, and one commit
(``state/trends/date=<last day>/``, lease and compare-and-swap as every day commit)."""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import polars as pl

from failmap_assets.pipeline.day_commit import DaySession
from failmap_assets.pipeline.day_lease import LeaseOptions
from failmap_assets.storage.committed_tables import named_table_files
from failmap_assets.storage.day_manifest import DayManifest
from failmap_assets.storage.layout import TRENDS_PIPELINE, table_file
from failmap_assets.storage.object_store import ObjectStore
from failmap_assets.storage.parquet_io import write_table
from failmap_assets.yield_view.trends import (TRENDS_VERSION, bin_pareto_trend, read_summaries, trend_chart,
                                              window, yield_trend)


@dataclass
class TrendsReport:
    committed: bool = False
    generation: int = 0
    seconds: float = 0.0
    days: list[date] | None = None
    totals: dict | None = None            # the window's figures, from the trends' commit
    yield_trend: pl.DataFrame | None = None
    bin_pareto: pl.DataFrame | None = None
    chart: bytes = b""


def run_trends(*, last: date, days: int, out: ObjectStore, run_id: str, force: bool = False,
               lease: LeaseOptions | None = None, log: Callable[[str], None] = print) -> TrendsReport:
    """Bring the trends of the ``days`` days ending at ``last`` up to date with the
    summaries' commits of those days."""
    started = time.monotonic()
    span = window(last, days)
    report = TrendsReport(days=span)
    with DaySession(out, TRENDS_PIPELINE, last, run_id, lease=lease or LeaseOptions(), log=log) as session:
        wafers, generations = read_summaries(out, span)
        digest = hashlib.sha256(json.dumps({"version": TRENDS_VERSION, "summaries": generations},
                                           sort_keys=True).encode()).hexdigest()
        committed = session.unchanged_commit(digest, force)
        if committed is not None:
            log(f"trends to {last}: already describe these summaries; no commit")
            report.yield_trend = session_table(out, committed, "yield_trend")
            report.bin_pareto = session_table(out, committed, "bin_pareto_trend")
            report.totals, report.generation = committed.totals, committed.generation
        else:
            trend, pareto = yield_trend(wafers), bin_pareto_trend(wafers)
            tables = {name: [table_file(name, last, session.tag)] for name in ("yield_trend", "bin_pareto_trend")}
            write_table(out, tables["yield_trend"][0], trend)
            write_table(out, tables["bin_pareto_trend"][0], pareto)
            manifest = DayManifest(pipeline=TRENDS_PIPELINE, day=last, tables=tables, inputs=digest, totals={
                "first_day": span[0].isoformat(), "last_day": last.isoformat(), "days": days,
                "days_summarised": sum(g is not None for g in generations.values()),
                "rows": {"yield_trend": trend.height, "bin_pareto_trend": pareto.height},
                "trends_version": TRENDS_VERSION,
            })
            session.commit(manifest)
            log(f"trends to {last}: committed generation {manifest.generation} over {days} day(s)")
            report.committed, report.generation, report.totals = True, manifest.generation, manifest.totals
            report.yield_trend, report.bin_pareto = trend, pareto
    report.chart = trend_chart(report.yield_trend, span)
    report.seconds = time.monotonic() - started
    return report


def session_table(store: ObjectStore, manifest: DayManifest, table: str) -> pl.DataFrame:
    """A committed trends table, read through its manifest."""
    keys = named_table_files(manifest).get(table, [])
    return pl.concat([pl.read_parquet(io.BytesIO(store.get(k))) for k in keys]) if keys else pl.DataFrame()
