"""The PostgreSQL sink's tests: one server for the session (tests/support/postgres_server.py),
a fresh database per test, synthetic summary days, and the rows read back."""

from __future__ import annotations

import contextlib
import random
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, datetime, timedelta

import polars as pl
import pytest

from failmap_assets.sinks.postgres.connection import PostgresTarget
from failmap_assets.sinks.postgres.load import DayTable
from failmap_assets.sinks.postgres.tables import LOT_SUMMARY, WAFER_SUMMARY, TableSpec
from failmap_assets.yield_view.summaries import lot_summary
from tests.support.postgres_server import PgServer, start_postgres, stop_postgres


@pytest.fixture(scope="session")
def postgres_session() -> Iterator[PgServer]:
    """One PostgreSQL server for every sink test of the session (stopped by its PID)."""
    proc, server, root = start_postgres()
    try:
        yield server
    finally:
        stop_postgres(proc, root)


@pytest.fixture
def sink_db(postgres_session: PgServer) -> Iterator[PgServer]:
    """A database of its own for one test, dropped afterwards."""
    name = f"sink_{uuid.uuid4().hex[:12]}"
    admin = postgres_session.connect()
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield replace(postgres_session, db=name)
    finally:
        with admin.cursor() as cur, contextlib.suppress(Exception):
            cur.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.close()


def target(server: PgServer) -> PostgresTarget:
    return PostgresTarget(dsn=server.dsn(), connect_timeout_s=5)


def wafer_rows(day: date, wafers: int, seed: int = 1, lots: int = 0) -> pl.DataFrame:
    """A wafer_summary of ``wafers`` test events (a few retests, a lot and a step
    without a name, an empty product, names with quotes, commas, line breaks and
    non-ASCII), in the table's schema."""
    rng = random.Random(seed)
    lots = lots or max(1, wafers // 25)
    rows = []
    for i in range(wafers):
        lot = None if i % 97 == 5 else f"L{i % lots:03d}"
        token = f"{lot or 'NOLOT'}_{i // lots:02d}"
        retest = i % 10 == 3
        for event in ("P", "R") if retest else ("P",):
            dies = rng.randint(300, 6000)
            passed = rng.randint(0, dies)
            ring = [dies // 4, dies // 3, dies - dies // 4 - dies // 3]
            ring_pass = [min(r, passed * r // dies) for r in ring]
            bins = [{"bin": 1, "name": "PASS", "pass": True, "dies": passed},
                    {"bin": 7, "name": 'open "A", ±5%' if i % 3 else None, "pass": False, "dies": dies - passed}]
            hour = 8 if event == "P" else 13
            rows.append({
                "source": "stdf" if i % 11 == 0 else "failmap", "lot": lot, "wafer": f"{i // lots:02d}",
                "wafer_token": token, "insertion": event,
                "product": "" if i % 17 == 1 else "PRD-1" if i % 2 else "PRD-2",   # "" is not null
                "step": None if i % 89 == 7 else "CP1", "tester": "T9,\r\n\"x\"" if i % 13 == 2 else f"T{i % 4}",
                "file_time": datetime(day.year, day.month, day.day, hour, i % 60, i % 60, 123456),
                "dies": dies, "pass_dies": passed, "yield_pct": 100.0 * passed / dies,
                **{f"{z}_{c}": v for z, d, p in zip(("centre", "middle", "edge"), ring, ring_pass)
                   for c, v in (("dies", d), ("pass_dies", p), ("yield_pct", 100.0 * p / d if d else None))},
                "bins": bins, "latest": event == "R" or not retest,
                "object_key": f"{day:%Y%m%d}/{token}_{event}_{hour:02d}0000.txt",
                "partner_key": None if i % 5 == 0 else f"{day:%Y%m%d}/{token}_{event}.b",
                "source_format": "failmap",
            })
    return pl.DataFrame(rows, schema=WAFER_SUMMARY.columns, orient="row") if rows else \
        pl.DataFrame(schema=WAFER_SUMMARY.columns)


def day_tables(wafers: pl.DataFrame, generation: int = 1) -> list[DayTable]:
    """wafer_summary and its lot_summary (the project's own function) as one day's load."""
    return [DayTable(WAFER_SUMMARY, wafers, generation), DayTable(LOT_SUMMARY, lot_summary(wafers), generation)]


def changed_day(wafers: pl.DataFrame) -> pl.DataFrame:
    """The same day after the testers changed it: one object deleted, one wafer's
    object replaced by another key, one re-uploaded with other figures."""
    keys = wafers["object_key"].to_list()
    gone, replaced, reuploaded = keys[1], keys[2], keys[4]
    return (wafers.filter(pl.col("object_key") != gone)
            .with_columns(
                pl.when(pl.col("object_key") == replaced).then(pl.lit(replaced + ".v2"))
                .otherwise(pl.col("object_key")).alias("object_key"),
                pl.when(pl.col("object_key") == reuploaded).then(pl.col("pass_dies") // 2)
                .otherwise(pl.col("pass_dies")).alias("pass_dies")))


def rows_of(server: PgServer, spec: TableSpec, day: date | None = None) -> pl.DataFrame:
    """The table's rows (of ``day``), source columns only, as the source's schema, in key order."""
    cols = ", ".join(f'"{c}"' for c in spec.columns)
    where = "WHERE day = %s" if day else ""
    conn = server.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(f'SELECT {cols} FROM "{spec.name}" {where}', (day,) if day else None)
            data = cur.fetchall()
    finally:
        conn.close()
    return sort(pl.DataFrame(data, schema=spec.columns, orient="row"), spec)


def all_rows(server: PgServer, table: str) -> list[tuple]:
    """Every row of every column (the sink's own too), in a fixed order, as text."""
    conn = server.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(f'SELECT t::text FROM "{table}" AS t ORDER BY 1')
            return [r[0] for r in cur.fetchall()]
    finally:
        conn.close()


def sort(frame: pl.DataFrame, spec: TableSpec) -> pl.DataFrame:
    return frame.sort(list(spec.keys), nulls_last=True)


def next_day(day: date) -> date:
    return day + timedelta(days=1)



def pattern_tables(day: date, wafers: pl.DataFrame, k: int = 10, seed: int = 1) -> dict[str, pl.DataFrame]:
    """The pattern tables of ``wafers``' test events, in their pipelines' schemas:
    ``wafer_signatures`` (a unit embedding and a raster each), ``wafer_anomaly`` (a
    score, a few without one and the reason) and ``similar_wafers`` (``k`` earlier
    wafers each, from the previous day). Synthetic values: what the sink moves, not
    what the classifier says."""
    import numpy as np

    from failmap_assets.patterns.signature import PATTERN_CLASSES
    from failmap_assets.patterns.tables import ANOMALY_COLUMNS, SIGNATURE_COLUMNS, SIMILAR_COLUMNS, schema_of

    rng = np.random.default_rng(seed)
    n = wafers.height
    ident = wafers.select("source", "wafer_token", "object_key", "lot", "wafer", "product", "step")
    labels = [PATTERN_CLASSES[i % len(PATTERN_CLASSES)] for i in range(n)]
    embedding = rng.normal(size=(n, 48)).astype(np.float32)
    embedding /= np.linalg.norm(embedding, axis=1, keepdims=True)
    sig_schema = schema_of(SIGNATURE_COLUMNS)
    signatures = wafers.select("source", "wafer_token", "object_key", "lot", "wafer", "insertion", "product",
                               "step", "file_time", "latest", "dies").with_columns(
        pl.lit("D").alias("flat"), pl.lit(1.0).alias("die_aspect"), pl.lit(False).alias("die_aspect_known"),
        pl.Series("label", labels), pl.Series("confidence", rng.uniform(0.3, 1.0, n)),
        pl.lit("centre zone fail density 0.41 vs edge 0.05").alias("evidence"),
        (pl.col("dies") - wafers["pass_dies"]).alias("fail_dies"),
        pl.Series("embedding", embedding, sig_schema["embedding"]),
        pl.Series("raster", rng.uniform(0, 1, (n, 1024)).astype(np.float32), sig_schema["raster"]),
    ).select(list(sig_schema)).cast(sig_schema)
    score = rng.uniform(0.01, 0.4, n)
    scored = np.arange(n) % 29 != 3
    anomaly = ident.with_columns(
        pl.lit(day).alias("day"), pl.Series("label", labels), signatures["confidence"],
        pl.Series("anomaly_score", np.where(scored, score, np.nan)).fill_nan(None),
        pl.Series("threshold", np.where(scored, 0.3, np.nan)).fill_nan(None),
        pl.Series("anomalous", [bool(v) if s else None for v, s in zip(score > 0.3, scored)], pl.Boolean),
        pl.Series("bank_size", np.where(scored, 250, 0)), pl.lit("v0007").alias("index_version"),
        pl.Series("reason", [None if s else "no_earlier_normal_wafers" for s in scored]),
    ).select(list(schema_of(ANOMALY_COLUMNS))).cast(schema_of(ANOMALY_COLUMNS))
    earlier = ident.with_columns(pl.Series("label", labels)).rename(lambda c: f"similar_{c}")
    similar = (ident.with_columns(pl.lit(day).alias("day"), pl.Series("label", labels),
                                  pl.Series("_i", np.arange(n)))
               .join(pl.DataFrame({"rank": np.arange(1, k + 1, dtype=np.int32)}), how="cross")
               .with_columns(((pl.col("_i") * 7 + pl.col("rank")) % n).alias("_j")))
    similar = (similar.join(earlier.with_columns(pl.Series("_j", np.arange(n))), on="_j")
               .with_columns(pl.lit(day - timedelta(days=1)).alias("similar_day"),
                             pl.lit(datetime(day.year, day.month, day.day) - timedelta(hours=20))
                             .alias("similar_file_time"),
                             (1.0 - pl.col("rank") / (k + 1.0)).alias("similarity"),
                             (pl.col("rank") / (k + 1.0)).alias("distance"), pl.lit("v0007").alias("index_version"))
               .sort("_i", "rank").select(list(schema_of(SIMILAR_COLUMNS))).cast(schema_of(SIMILAR_COLUMNS)))
    return {"wafer_signatures": signatures, "wafer_anomaly": anomaly, "similar_wafers": similar}
