"""The PostgreSQL sink's day load next to the usual ways of upserting the same rows.

    .venv/bin/python benchmarks/postgres_sink.py [--wafers 1000] [--repeat 5]

PostgreSQL 16 (the `pgserver` wheel, as in the tests) on 127.0.0.1. A synthetic day of
``--wafers`` wafers (a tenth retested: that many more test events) committed as
wafer_summary + lot_summary (the project's lot_summary) into a local output folder,
then loaded into a migrated database, each way on a day of its own (so every first
load inserts), median of ``--repeat``:

(a)  ours: ``run_sink_day`` as the asset runs it: connect, check the schema, read the
     committed Parquet, one transaction: COPY into staging, one INSERT ... ON CONFLICT,
     the day's stale rows deleted; also the same day loaded again (nothing changed) and
     a new commit of it (every row updated)
     and a first load with the pattern tables too (wafer_signatures with 48-float
     embeddings, wafer_anomaly, similar_wafers with k = 10: synthetic values in the
     pipelines' schemas, committed as the patterns and pattern_matches pipelines do)
(a') ours, ``load_day`` alone on an open connection (what the peers do)
(b)  psycopg2 ``executemany`` of INSERT ... ON CONFLICT DO UPDATE, row by row, one
     transaction (no stale-row delete: less work than ours)
(c)  psycopg2.extras ``execute_values``: multi-row INSERT ... ON CONFLICT pages of 1,000
     rows, one transaction (no stale-row delete either)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wafers", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    from psycopg2.extras import execute_values

    from failmap_assets.sinks.postgres.connection import PostgresTarget, connect
    from failmap_assets.sinks.postgres.load import load_day
    from failmap_assets.sinks.postgres.schema import ident, migrate
    from failmap_assets.sinks.postgres.sink_day import run_sink_day
    from failmap_assets.storage.local_store import LocalObjectStore
    from tests.support.postgres_server import start_postgres, stop_postgres
    from failmap_assets.storage.layout import MATCHES_PIPELINE, PATTERNS_PIPELINE
    from tests.support.postgres_sink import changed_day, day_tables, pattern_tables, wafer_rows
    from tests.support.summary_days import commit_summaries, commit_tables

    first = date(2026, 2, 1)
    days = iter(first + timedelta(days=i) for i in range(1000))
    proc, server, root = start_postgres()
    work = Path(tempfile.mkdtemp(prefix="pg-sink-bench-"))
    try:
        target = PostgresTarget(dsn=server.dsn())
        out = LocalObjectStore(work)
        conn = connect(target)
        migrate(conn)
        probe = day_tables(wafer_rows(first, args.wafers))
        rows = {t.spec.name: t.frame.height for t in probe}
        pattern_rows = {name: f.height for name, f in pattern_tables(first, probe[0].frame).items()}
        print(f"a day of {args.wafers} wafers: wafer_summary {rows['wafer_summary']} rows (test events), "
              f"lot_summary {rows['lot_summary']} rows; with the pattern tables also "
              + ", ".join(f"{n} {r}" for n, r in pattern_rows.items())
              + f"; PostgreSQL {conn.server_version // 10000} on 127.0.0.1; median of {args.repeat}\n")

        def ours_whole(kind: str) -> float:
            day = next(days)
            wafers = wafer_rows(day, args.wafers)
            commit_summaries(out, day, wafers)
            if kind == "patterns":
                tables = pattern_tables(day, wafers)
                commit_tables(out, PATTERNS_PIPELINE, day, {"wafer_signatures": tables["wafer_signatures"]})
                commit_tables(out, MATCHES_PIPELINE, day, {n: tables[n] for n in ("wafer_anomaly", "similar_wafers")})
            if kind not in ("first", "patterns"):
                run_sink_day(day=day, out=out, target=target, log=lambda m: None)
            if kind == "new commit":
                commit_summaries(out, day, changed_day(wafers))
            started = time.perf_counter()
            run_sink_day(day=day, out=out, target=target, log=lambda m: None)
            return time.perf_counter() - started

        def ours_load() -> float:
            day = next(days)
            tables = day_tables(wafer_rows(day, args.wafers))
            started = time.perf_counter()
            load_day(conn, day, tables)
            return time.perf_counter() - started

        def peer(many: bool) -> float:
            day = next(days)
            tables = day_tables(wafer_rows(day, args.wafers))
            started = time.perf_counter()
            with conn, conn.cursor() as cur:
                for t in tables:
                    spec = t.spec
                    cols = ["day", "commit_generation", *spec.columns]
                    json_cols = set(spec.json_columns())
                    values = [(day, t.generation, *[json.dumps(v) if c in json_cols and v is not None else v
                                                    for c, v in zip(spec.columns, r)])
                              for r in t.frame.iter_rows()]
                    keys = ", ".join(ident(k) for k in spec.key_columns)
                    update = ", ".join(f"{ident(c)} = EXCLUDED.{ident(c)}" for c in cols if c not in spec.key_columns)
                    head = f"INSERT INTO {ident(spec.name)} ({', '.join(ident(c) for c in cols)}) VALUES "
                    tail = f" ON CONFLICT ({keys}) DO UPDATE SET {update}"
                    if many:
                        cur.executemany(head + "(" + ", ".join(["%s"] * len(cols)) + ")" + tail, values)
                    else:
                        execute_values(cur, head + "%s" + tail, values, page_size=1000)
            return time.perf_counter() - started

        ways = [
            ("(a) ours, run_sink_day: first load of the day", lambda: ours_whole("first")),
            ("(a) ours, run_sink_day: the same day again (nothing changed)", lambda: ours_whole("again")),
            ("(a) ours, run_sink_day: a new commit of the day (every row updated, 2 deleted, 1 new)",
             lambda: ours_whole("new commit")),
            ("(a) ours, run_sink_day: first load with the pattern tables", lambda: ours_whole("patterns")),
            ("(a') ours, load_day alone: first load", ours_load),
            ("(b) executemany INSERT ... ON CONFLICT, row by row (psycopg2)", lambda: peer(True)),
            ("(c) execute_values INSERT ... ON CONFLICT, pages of 1,000 (psycopg2)", lambda: peer(False)),
        ]
        results = {}
        for name, fn in ways:
            results[name] = statistics.median(fn() for _ in range(args.repeat))
        conn.close()

        total = sum(rows.values())
        with_patterns = total + sum(pattern_rows.values())
        print("| way | seconds | rows | rows/s |\n|---|---:|---:|---:|")
        for name, s in results.items():
            n = with_patterns if "pattern" in name else total
            print(f"| {name} | {s:.3f} | {n:,} | {n / s:,.0f} |")
        a, a1 = results[ways[0][0]], results[ways[4][0]]
        b, c = results[ways[5][0]], results[ways[6][0]]
        ap = results[ways[3][0]]
        print("\n| ratio | measured | goal |\n|---|---:|---:|")
        print(f"| (a) first load, seconds | {a:.3f} | < 2 s ({'met' if a < 2 else 'not met'}) |")
        print(f"| (a) first load with the pattern tables, seconds | {ap:.3f} | < 2 s ({'met' if ap < 2 else 'not met'}) |")
        print(f"| a' / b (load alone vs executemany) | {a1 / b:.3f} | |")
        print(f"| a' / c (load alone vs execute_values) | {a1 / c:.3f} | |")
        print(f"| a / b (whole day run vs executemany load) | {a / b:.3f} | |")
    finally:
        stop_postgres(proc, root)
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
