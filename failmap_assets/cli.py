"""The `failmap` command: synth, demo, run-day, render, stdf2parquet, sql, warm, doctor, patterns."""

from __future__ import annotations

import argparse
import os
import sys
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from datetime import date, datetime, timedelta
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="failmap", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="write realistic synthetic fail maps and STDF files into the configured sources")
    p.add_argument("--days", type=int, default=1, help="how many consecutive fab days to write (default: 1)")
    p.add_argument("--wafers", type=int, default=200, help="wafers (A files) per day")
    p.add_argument("--stdf-files", type=int, default=2, help="STDF files per day")
    p.add_argument("--start", type=date.fromisoformat, default=None,
                   help="first day, YYYY-MM-DD (default: the days end yesterday, the last complete day, "
                        "so no file carries a time in the future)")
    p.add_argument("--seed", type=int, default=1, help="random seed: the same seed and days give the same files")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("demo", help="generate one day into the embedded default and materialize every asset for it")
    p.add_argument("--wafers", type=int, default=100, help="wafers (A files) to generate for yesterday")
    p.add_argument("--seed", type=int, default=1, help="random seed of the synthetic day")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("run-day", help="bring one fab day up to date outside Dagster (same lease and commit as the assets)")
    p.add_argument("day", type=date.fromisoformat, help="the fab day, YYYY-MM-DD")
    p.add_argument("--pipeline", choices=("failmap", "stdf", "both", "summaries", "all"), default="both",
                   help="which pipeline's day: failmap, stdf, both (default), summaries (wafer_summary, "
                        "lot_summary, merged retests and lot maps from the committed days), "
                        "all (both, then the summaries)")
    p.add_argument("--force", action="store_true", help="reprocess every object of the day")
    p.add_argument("--as-of", default="", help="fab time 'YYYY-MM-DD HH:MM:SS' that decides pending vs a_only (default: now)")
    p.add_argument("--run-id", default=None, help="the run id in the day's commit and its lease (default: random)")
    p.set_defaults(func=cmd_run_day)

    p = sub.add_parser("render", help="render wafer map files to PNG + JSON + Parquet")
    p.add_argument("files", nargs="+", help="map files (fail-map A, G85, E142, TSK, ASCII, KLARF; compressed or not)")
    p.add_argument("--out", required=True, help="folder for the PNG, JSON and Parquet files")
    p.add_argument("--partner", default=None, help="a bucket-B file for the (single) A file")
    p.add_argument("--pixels-per-die", type=int, default=4, help="PNG pixels per die side (default: 4)")
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("stdf2parquet", help="convert STDF files to hive-partitioned Parquet")
    p.add_argument("files", nargs="+", help="files or glob patterns")
    p.add_argument("--out", required=True, help="folder for the Parquet tables")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 2,
                   help="files converted in parallel (default: the number of CPUs; 1: in this process)")
    p.set_defaults(func=cmd_stdf2parquet)

    p = sub.add_parser("sql", help="DuckDB over the pipelines' committed tables (or a stdf2parquet folder): "
                                   "one view per table")
    p.add_argument("--out", default=None,
                   help="the pipeline output, s3://bucket/prefix or a folder (default: FAILMAP_OUTPUT), "
                        "or the --out folder of stdf2parquet")
    p.add_argument("--from", dest="first", type=date.fromisoformat, default=None,
                   help="first fab day read, YYYY-MM-DD (default: the first committed day)")
    p.add_argument("--to", dest="last", type=date.fromisoformat, default=None,
                   help="last fab day read, YYYY-MM-DD (default: the last committed day)")
    p.add_argument("query", nargs="?", default=None, help="run one query and print it (default: interactive)")
    p.set_defaults(func=cmd_sql)

    p = sub.add_parser("warm", help="compile every Numba kernel into Numba's cache (NUMBA_CACHE_DIR) on synthetic data")
    p.add_argument("--cache-dir", default=None,
                   help="Numba's cache directory; the command re-executes itself with NUMBA_CACHE_DIR set to it "
                        "(default: $NUMBA_CACHE_DIR, else Numba's default, __pycache__ beside the sources)")
    p.set_defaults(func=cmd_warm)

    p = sub.add_parser("doctor", help="check this deployment's configuration end to end; exit 1 when anything is wrong")
    p.add_argument("--expect-start", type=date.fromisoformat, default=None,
                   help="the partition start the daemon and code server use (YYYY-MM-DD): fail when it differs")
    p.add_argument("--expect-timezone", default=None,
                   help="the fab time zone the daemon and code server use: fail when it differs")
    p.set_defaults(func=cmd_doctor)

    from failmap_assets.patterns.commands import add_patterns_parser
    from failmap_assets.query.similar_wafers import add_similar_parser

    add_similar_parser(add_patterns_parser(sub))
    return parser


def _stores():
    from failmap_assets.settings import Settings
    from failmap_assets.storage.locations import open_store

    s = Settings.from_env()
    kw = dict(endpoint_url=s.s3_endpoint_url or None, region=s.aws_region or None)
    return {
        "a": open_store(s.source_a, **kw),
        "b": open_store(s.source_b, **kw),
        "stdf": open_store(s.source_stdf, **kw),
        "out": open_store(s.output, **kw),
    }


def write_synth(start: date, days: int, wafers: int, stdf_files: int, seed: int) -> dict[str, int]:
    """Generate and PUT synthetic objects; returns counts by note."""
    from collections import Counter

    from failmap_synth.day import generate_days

    stores = _stores()
    counts: Counter = Counter()
    in_flight: set = set()
    with ThreadPoolExecutor(max_workers=16) as pool:
        for obj in generate_days(start, days, wafers, seed, stdf_files_per_day=stdf_files):
            in_flight.add(pool.submit(stores[obj.bucket].put, obj.key, obj.data))
            counts[obj.note] += 1
            if len(in_flight) >= 64:  # bounded: memory must not grow with the number of wafers
                done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                for f in done:
                    f.result()
        for f in in_flight:
            f.result()
    return dict(counts)


def default_synth_start(days: int, today: date | None = None) -> date:
    """The first day when ``--start`` is not given: the days end yesterday, the last
    complete fab day (a day ending today would hold files stamped later than now)."""
    return (today or date.today()) - timedelta(days=max(days, 1))


def cmd_synth(args) -> int:
    start = args.start or default_synth_start(args.days)
    counts = write_synth(start, args.days, args.wafers, args.stdf_files, args.seed)
    stores = _stores()
    print(f"wrote {sum(counts.values())} objects for {args.days} day(s) from {start}:")
    for note, n in sorted(counts.items()):
        print(f"  {note:<28} {n}")
    print(f"  A: {stores['a'].location}\n  B: {stores['b'].location}\n  STDF: {stores['stdf'].location}")
    return 0


def cmd_demo(args) -> int:
    from dagster import DagsterInstance, materialize

    home = Path(os.environ.setdefault("DAGSTER_HOME", str(Path(".dagster").resolve())))
    home.mkdir(parents=True, exist_ok=True)
    from failmap_assets.definitions import ALL_ASSETS
    from failmap_assets.resources import build_resources

    day = date.today() - timedelta(days=1)
    print(f"generating {args.wafers} wafers for {day} (seed {args.seed}) ...")
    counts = write_synth(day, 1, args.wafers, 2, args.seed)
    print(f"  {sum(counts.values())} objects: " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))

    instance = DagsterInstance.get()
    print(f"materializing every asset for partition {day} (Dagster home {home}) ...")
    t0 = datetime.now()
    result = materialize(
        ALL_ASSETS, partition_key=day.isoformat(), instance=instance, resources=build_resources(),
        # INFO shows our progress lines; Dagster's DEBUG engine events would bury them.
        run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
    )
    seconds = (datetime.now() - t0).total_seconds()
    if not result.success:
        print("materialization failed; see the run in `make dev`", file=sys.stderr)
        return 1
    _print_summary(result, day, seconds)
    return 0


def _print_summary(result, day: date, seconds: float) -> None:
    from failmap_assets.settings import Settings

    s = Settings.from_env()
    print(f"\ndone in {seconds:.1f} s. Outputs under {s.output}:")
    for sub in (f"parquet/*/date={day}/", f"png/{day}/", f"json/{day}/"):
        print(f"  {os.path.join(s.output, sub)}")
    print()
    for mat in result.get_asset_materialization_events():
        m = mat.event_specific_data.materialization
        shown = {
            k: getattr(v, "value", v)
            for k, v in m.metadata.items()
            if not isinstance(getattr(v, "value", None), str) or len(str(getattr(v, "value", ""))) < 40
        }
        line = ", ".join(f"{k}={v}" for k, v in list(shown.items())[:9])
        print(f"  {m.asset_key.to_user_string():<26} {line}")
    print("\nOpen the Dagster UI with `make dev` to browse runs, metadata, checks and previews.")


def cmd_run_day(args) -> int:
    """One day, both pipelines or one, with the configured resources; prints one JSON
    line per pipeline (the day's totals after the run, and what the run did)."""
    import json
    import uuid

    from failmap_assets.defs.failmap.assets import run_failmap_day
    from failmap_assets.defs.stdf.assets import run_stdf
    from failmap_assets.resources import build_resources
    from failmap_assets.settings import Settings

    res = build_resources(Settings.from_env())
    run_id = args.run_id or f"cli-{uuid.uuid4()}"

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    if args.pipeline in ("failmap", "both", "all"):
        r = run_failmap_day(args.day, res["storage"], res["failmap_rules"], force=args.force, as_of=args.as_of,
                            run_id=run_id, log=log)
        print(json.dumps({"pipeline": "failmap", "day": str(args.day), "committed": r.committed,
                          "generation": r.generation, "processed": r.units_done, "failed": r.units_failed,
                          "seconds": round(r.seconds, 3), "totals": r.totals}, default=str), flush=True)
    if args.pipeline in ("stdf", "both", "all"):
        r = run_stdf(args.day, res["storage"], res["failmap_rules"], force=args.force, run_id=run_id, log=log)
        print(json.dumps({"pipeline": "stdf", "day": str(args.day), "committed": r.committed,
                          "generation": r.generation, "processed": r.files_done, "failed": r.files_failed,
                          "seconds": round(r.seconds, 3), "totals": r.totals}, default=str), flush=True)
    if args.pipeline in ("summaries", "all"):
        from failmap_assets.pipeline.summary_day import PIPELINE as SUMMARIES, run_summary_day

        rules = res["failmap_rules"]
        r = run_summary_day(day=args.day, out=res["storage"].output_store(), run_id=run_id, force=args.force,
                            merge_rule=rules.merge_rule, pixels_per_die=rules.pixels_per_die,
                            lease=rules.lease(), log=log)
        print(json.dumps({"pipeline": SUMMARIES, "day": str(args.day), "committed": r.committed,
                          "generation": r.generation, "seconds": round(r.seconds, 3), "totals": r.totals},
                         default=str), flush=True)
    return 0


def cmd_render(args) -> int:
    from failmap_assets.storage.parquet_io import write_table
    from failmap_assets.storage.local_store import LocalObjectStore
    from failmap_assets.pipeline.unit import ProcessingOptions, Unit, process_unit

    if args.partner and len(args.files) != 1:
        print("--partner goes with exactly one A file", file=sys.stderr)
        return 2
    out = LocalObjectStore(args.out)
    failed = 0
    used: set[str] = set()         # stems of PNG / JSON written by this command
    used_tables: set[str] = set()  # stems of its .dies.parquet files (one per input file)
    for path in args.files:
        data = Path(path).read_bytes()
        b_data = Path(args.partner).read_bytes() if args.partner else None
        name = Path(path).name
        unit = Unit(a_key=name, a_etag="", wafer_token=_token_of(name), b_key=Path(args.partner).name if args.partner else None)
        result = process_unit(unit, data, b_data, ProcessingOptions(pixels_per_die=args.pixels_per_die))
        for r in result.rejects:
            print(f"{path}: {r.severity} {r.reason}: {r.detail}" + (f" (line {r.line})" if r.line else ""), file=sys.stderr)
        failed += any(r.severity == "error" and r.bucket == "a" for r in result.rejects) and not result.wafers
        for w in result.wafers:
            stem = unique_stem(w.wafer_token, used)
            png, js = f"{stem}.png", f"{stem}.json"
            if w.png is not None:  # None: empty or too large (warned above: empty_wafer, png_too_large)
                out.put(png, w.png)
            out.put(js, w.json)
            print(f"{path}: {w.wafer_token}: {w.die_count} dies, yield {w.pass_count / max(w.die_count, 1):.1%} -> {args.out}/{png if w.png is not None else js}")
        if result.dies is not None:
            write_table(out, f"{unique_stem(_token_of(name), used_tables)}.dies.parquet", result.dies)
    return 1 if failed else 0


def _token_of(name: str) -> str:
    """The wafer token when the file name follows the key grammar, else the file name
    without its format / compression extensions (``.xml``, ``.gz``). Numeric suffixes
    stay: ``G345875.021`` and ``G345875.022`` are wafers 21 and 22 of one lot."""
    from failmap_assets.discovery.keys import parse_file_name

    parsed = parse_file_name(name)
    if parsed:
        return parsed.wafer_token
    stem = name
    while "." in stem.strip("."):
        base, ext = stem.rsplit(".", 1)
        if not ext.isalpha():
            break
        stem = base
    return stem


def unique_stem(token: str, used: set[str]) -> str:
    """A safe file stem for ``token`` that no earlier output of this command used
    (two inputs of one wafer, e.g. a prime and a retest, must not overwrite each other)."""
    from failmap_assets.storage.layout import safe_name

    stem = base = safe_name(token)
    n = 2
    while stem in used:
        stem = safe_name(f"{base}-{n}")
        n += 1
    used.add(stem)
    return stem


def cmd_warm(args) -> int:
    from failmap_assets.settings import numba_cache_dir

    if args.cache_dir is not None:
        wanted = os.path.abspath(args.cache_dir)
        if numba_cache_dir() != wanted:
            # Numba reads NUMBA_CACHE_DIR once, when it is imported: run again in a new
            # process that has it from the start.
            sys.stdout.flush()
            env = {**os.environ, "NUMBA_CACHE_DIR": wanted}
            os.execve(sys.executable, [sys.executable, "-m", "failmap_assets.cli", "warm", "--cache-dir", wanted], env)
    from failmap_assets.admin.kernels import cache_dir_problem
    from failmap_assets.admin.warm import warm

    where = numba_cache_dir()
    if where:
        problem = cache_dir_problem(where)
        if problem:
            print(problem, file=sys.stderr)
            return 1
    print(f"compiling every Numba kernel into {where or 'the default cache (__pycache__ beside the sources)'} ...",
          flush=True)
    report = warm(log=lambda line: print(f"  {line}", flush=True))
    print(f"{report.kernels - len(report.not_compiled)} of {report.kernels} kernels compiled "
          f"({report.signatures} signatures, {report.cache_files} cache files) in {report.seconds:.1f} s")
    if report.not_compiled:
        print("not compiled by the representative work (a new kernel? give warm a file that reaches it):\n  "
              + "\n  ".join(report.not_compiled), file=sys.stderr)
        return 1
    return 0


def cmd_doctor(args) -> int:
    from failmap_assets.admin.doctor import main as doctor

    return doctor(args.expect_start, args.expect_timezone)


def cmd_stdf2parquet(args) -> int:
    import glob

    from failmap_assets.stdf.batch import convert_many

    paths = sorted({p for pattern in args.files for p in (glob.glob(pattern) or [pattern])})
    return convert_many(paths, args.out, workers=args.workers, progress=True)


def cmd_sql(args) -> int:
    """Views over a pipeline output's committed days; a folder without day manifests
    that holds STDF tables is taken as a ``stdf2parquet`` folder."""
    from failmap_assets.query.output_views import is_pipeline_output, open_output_views
    from failmap_assets.settings import Settings
    from failmap_assets.stdf.sql import run_shell, sql_shell
    from failmap_assets.stdf.tables import TABLES
    from failmap_assets.storage.locations import open_store, parse_s3_url

    s = Settings.from_env()
    location = args.out or s.output
    store = open_store(location, endpoint_url=s.s3_endpoint_url or None, region=s.aws_region or None)
    if parse_s3_url(location) is None and not is_pipeline_output(store) and \
            any(Path(location, t).is_dir() for t in TABLES):
        return int(sql_shell(location, args.query) or 0)
    with open_output_views(store, args.first, args.last) as views:
        return int(run_shell(views.con, views.views, args.query) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
