"""STDF parsing speed on every real file: failmap's parse_to_parquet vs stdf-convert (+ pyarrow Parquet).

For every file in ``../shared/testdata/stdf`` it builds a ~40-90 MB file in a temp dir by
repeating the file's part block (first PIR to last PRR, with whatever is interleaved:
DTRs, GDRs, TSRs...; a file without PIRs repeats from its first result record or PRR to
its last PRR) between the original header and trailer, then times

* failmap:      parse_to_parquet(file, out_dir)                  (Parquet written)
* stdf-convert: stdf_convert.tables(file) + pyarrow.parquet.write_table per table, with
                the same writer settings as ours (lz4, data pages V2, dictionaries for text
                only, no statistics, 65,536 values per encoder batch; its columns are REQUIRED
                already, as ours are when they hold no null): the comparison is the parsing,
                not two Parquet configurations.
                ``--both`` also times the peer writing with pyarrow's DEFAULT settings (snappy,
                dictionaries and statistics on every column), as the issue's own figures were
                measured, in the same run: a second ratio column and headline

Output goes into a folder that each tool keeps between runs (its files are removed, its
folders stay), as in a converting worker after its first file of a product: ours writes a hive
tree (``<table>/product=<P>/test_type=<T>/``, ~30 folders), the peer one flat folder. Creating
the folders of a fresh tree is a one-off cost per tree, reported on its own line with the
fixed cost (a fresh tree for every small file; on this VM's ext4 a folder costs ~80-160 us).

Each tool lives in its own long-running subprocess pinned to one CPU; after ``--warmup``
untimed runs of each tool on the file (a converting worker's steady state: the first run of a
new file size grows the heap and pays its page faults, 1.5-4x the CPU of the next ones), the
runs alternate between the two (failmap, stdf-convert, stdf-convert, failmap, ...) and the
MEDIAN of each tool's runs is reported. Files stdf-convert cannot read, and files without a repeatable
part block, are listed as excluded with the reason. The fixed cost per small file (after
warm-up, Parquet written, median over the small real files) closes the report. The
headline is the WORST ratio over all files.

    .venv/bin/python benchmarks/stdf_parse.py [--mb 60] [--rounds 3] [--files lot2,a595] [--both] [--pystdf]
    .venv/bin/python benchmarks/stdf_parse.py --profile a595.stdf [--mb 60]

``--profile FILE`` attributes our time on one tiled file to record kinds / phases (scan,
walk, PIR/PRR, PTR, MPR, FTR, TSR, DTR/GDR and other generic records, tests and bins
tables, Parquet write per table) and lists the top functions (cProfile).

Nothing is written outside a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STDF_DIR = REPO.parent / "shared" / "testdata" / "stdf"
SMALL = ["stdf4j_test.stdf", "main_Lot_1_Wafer_1_Oct_13_09h33m41s_STDF.stdf", "makechip_x.stdf",
         "spreadsheet14.stdf", "in_v3.std"]
WARM = ["makechip_x.stdf", "spreadsheet14.stdf", "d10_1.std", "stdf4j_test.stdf"]
RESULT_RECORDS = {(15, 10), (15, 15), (15, 20), (5, 20)}   # PTR MPR FTR PRR

NAMES = {(0, 10): "FAR", (0, 20): "ATR", (0, 30): "VUR", (1, 10): "MIR", (1, 20): "MRR", (1, 30): "PCR",
         (1, 40): "HBR", (1, 50): "SBR", (1, 60): "PMR", (1, 62): "PGR", (1, 63): "PLR", (1, 70): "RDR",
         (1, 80): "SDR", (1, 90): "PSR", (1, 91): "NMR", (1, 92): "CNR", (1, 93): "SSR", (1, 94): "CDR",
         (2, 10): "WIR", (2, 20): "WRR", (2, 30): "WCR", (5, 10): "PIR", (5, 20): "PRR", (10, 30): "TSR",
         (15, 10): "PTR", (15, 15): "MPR", (15, 20): "FTR", (15, 30): "STR", (20, 10): "BPS", (20, 20): "EPS",
         (50, 10): "GDR", (50, 30): "DTR"}


# ---------------------------------------------------------------- building the files


def _records(data: bytes):
    be = data[:2] == b"\x00\x02"
    fmt = ">HBB" if be else "<HBB"
    pos = 0
    while pos + 4 <= len(data):
        ln, typ, sub = struct.unpack_from(fmt, data, pos)
        if pos + 4 + ln > len(data):
            break
        yield pos, 4 + ln, typ, sub
        pos += 4 + ln


def record_mix(data: bytes, top: int = 4, block: tuple[int, int, int] | None = None) -> str:
    """Share of the bytes per record kind (the ``top`` largest), e.g. ``PTR 91 PRR 7 PIR 2``;
    ``block`` = (start, end, copies): the mix of the tiled file (that span counted ``copies`` times)."""
    size: dict[str, int] = {}
    for pos, ln, t, s in _records(data):
        k = NAMES.get((t, s), f"{t}/{s}")
        w = block[2] if block and block[0] <= pos < block[1] else 1
        size[k] = size.get(k, 0) + ln * w
    total = sum(size.values()) or 1
    best = sorted(size.items(), key=lambda kv: -kv[1])[:top]
    return " ".join(f"{k} {100 * v / total:.0f}" for k, v in best if 100 * v / total >= 0.5)


def part_block(data: bytes) -> tuple[int, int, int] | str:
    """(start, end, records) of the repeatable part block, or why there is none."""
    recs = list(_records(data))
    kinds = [(r[2], r[3]) for r in recs]
    if (5, 20) not in kinds:
        return "no PRR: no part records to repeat"
    last = max(i for i, k in enumerate(kinds) if k == (5, 20))
    if (5, 10) in kinds:
        first = kinds.index((5, 10))
    else:
        first = next(i for i, k in enumerate(kinds) if k in RESULT_RECORDS)
    return recs[first][0], recs[last][0] + recs[last][1], last - first + 1


def build(base: Path, target_mb: float, out: Path) -> dict:
    data = base.read_bytes()
    a, b, n_block = part_block(data)
    head, block, tail = data[:a], data[a:b], data[b:]
    k = max(1, round((target_mb * 1e6 - len(head) - len(tail)) / len(block)))
    with open(out, "wb") as f:
        f.write(head)
        for _ in range(k):
            f.write(block)
        f.write(tail)
    return {"path": str(out), "bytes": out.stat().st_size, "copies": k, "block": len(block),
            "block_records": n_block, "mix": record_mix(data, block=(a, b, k))}


# ---------------------------------------------------------------- workers (long-running subprocesses)


def _pin():
    try:
        cpu = sorted(os.sched_getaffinity(0))[-1]
        os.sched_setaffinity(0, {cpu})
    except (AttributeError, OSError):
        pass
    for v in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "ARROW_NUM_THREADS"):
        os.environ.setdefault(v, "1")


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def peer_write_options(table) -> dict:
    """The Parquet writer settings of the peer: the same as ours (parquet_file.file_layout); its
    columns are REQUIRED already (stdf-convert declares every field not nullable)."""
    import pyarrow as pa

    text = [f.name for f in table.schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
    return dict(compression="lz4", use_dictionary=text, write_statistics=False, store_schema=False,
                data_page_version="2.0", write_batch_size=65536)


class _Failmap:
    def __init__(self):
        sys.path.insert(0, str(REPO))
        from failmap_assets.stdf import parse_to_parquet

        self.parse = parse_to_parquet

    def run(self, path: str, out: str) -> int:
        return self.parse(path, out).records


class _StdfConvert:
    #: ``--peer-defaults``: pyarrow's default writer settings (snappy, dictionaries and
    #: statistics on every column), as this benchmark ran before issue 16
    defaults = False

    def __init__(self):
        import pyarrow.parquet as pq
        import stdf_convert

        self.pq, self.sc = pq, stdf_convert

    def probe(self, path: str) -> str:
        try:
            self.sc.tables(path)
        except Exception as e:  # noqa: BLE001 - the reason is the report
            return f"{type(e).__name__}: {str(e).splitlines()[0][:90]}"
        return ""

    def run(self, path: str, out: str) -> int:
        os.makedirs(out, exist_ok=True)
        tables = self.sc.tables(path)
        for name, t in tables.items():
            self.pq.write_table(t, os.path.join(out, f"{name}.parquet"),
                                **({} if self.defaults else peer_write_options(t)))
        return sum(t.num_rows for t in tables.values())


class _Pystdf:
    def run(self, path: str, out: str) -> int:
        from pystdf.IO import Parser

        class Count:
            n = 0

            def after_send(self, ds, data):
                Count.n += 1

        with open(path, "rb") as f:
            p = Parser(inp=f)
            p.addSink(Count())
            p.parse()
        return Count.n


#: the peer writing with pyarrow's default Parquet settings (``--both``)
DEFAULTS_PEER = "stdf-convert/defaults"

TOOLS = {"failmap": _Failmap, "stdf-convert": _StdfConvert, "pystdf": _Pystdf}


def _remove_files(folder: str) -> None:
    """The files a run wrote, removed; its folders kept (see the module docstring)."""
    for root, _dirs, files in os.walk(folder):
        for f in files:
            os.unlink(os.path.join(root, f))


def serve(tool: str, peer_defaults: bool = False) -> None:
    """Worker loop: one JSON command per stdin line, one ``RESULT{json}`` line per answer."""
    import pyarrow as pa

    _StdfConvert.defaults = peer_defaults

    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    t0 = time.perf_counter()
    impl = TOOLS[tool]()
    tmp = tempfile.mkdtemp(prefix="stdfbench-")
    try:
        if tool != "pystdf":        # warm-up: first call of each code path (Numba cache load)
            for name in WARM:
                impl.run(str(STDF_DIR / name), os.path.join(tmp, "warm"))
                shutil.rmtree(os.path.join(tmp, "warm"), ignore_errors=True)
        print("RESULT" + json.dumps({"start_s": time.perf_counter() - t0}), flush=True)
        for line in sys.stdin:
            cmd = json.loads(line)
            op = cmd["op"]
            if op == "probe":
                res = {"error": impl.probe(cmd["path"]) if hasattr(impl, "probe") else ""}
            elif op == "run":
                out = os.path.join(tmp, "big")
                t, c = time.perf_counter(), time.process_time()
                try:
                    n = impl.run(cmd["path"], out)
                except Exception as e:  # noqa: BLE001 - reported; fatal for our tool and the peer
                    res = {"error": f"{type(e).__name__}: {str(e)[:200]}"}
                else:
                    res = {"seconds": time.perf_counter() - t, "cpu": time.process_time() - c, "records": n,
                           "rss_mb": _peak_rss_mb()}
                _remove_files(out)
            elif op == "fixed":
                wall, cpu, fresh = [], [], []
                errors = []
                for _ in range(cmd["rounds"]):
                    for s in cmd["small"]:
                        for tree in ("kept", "fresh"):
                            out = os.path.join(tmp, f"small_{tree}")
                            t, c = time.perf_counter(), time.process_time()
                            try:
                                impl.run(s, out)
                            except Exception as e:  # noqa: BLE001 - a rejected file still costs its time
                                errors.append(type(e).__name__)
                            if tree == "kept":
                                wall.append(time.perf_counter() - t)
                                cpu.append(time.process_time() - c)
                                _remove_files(out)
                            else:
                                fresh.append(time.process_time() - c)
                                shutil.rmtree(out, ignore_errors=True)
                res = {"wall_ms": statistics.median(wall) * 1e3, "cpu_ms": statistics.median(cpu) * 1e3,
                       "fresh_cpu_ms": statistics.median(fresh) * 1e3, "errors": sorted(set(errors))}
            else:
                break
            print("RESULT" + json.dumps(res), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class Worker:
    def __init__(self, tool: str, peer_defaults: bool = False):
        code = (f"import sys; sys.path.insert(0, {str(REPO)!r}); import benchmarks.stdf_parse as b; "
                f"b._pin(); b.serve({tool!r}, {peer_defaults!r})")
        self.tool = tool
        self.p = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True, cwd=str(REPO))
        self.start = self._read()

    def _read(self) -> dict:
        for line in self.p.stdout:
            if line.startswith("RESULT"):
                return json.loads(line[6:])
        raise RuntimeError(f"{self.tool} worker died (exit {self.p.wait()})")

    def ask(self, **cmd) -> dict:
        self.p.stdin.write(json.dumps(cmd) + "\n")
        self.p.stdin.flush()
        return self._read()

    def close(self) -> None:
        try:
            self.p.stdin.write(json.dumps({"op": "quit"}) + "\n")
            self.p.stdin.close()
        except OSError:
            pass
        self.p.wait(timeout=60)


# ---------------------------------------------------------------- profile mode


def profile_worker(path: str, top: int) -> None:
    """Our time on one file by phase (tables.parse_source's timings, Parquet per table), and cProfile."""
    import cProfile
    import pstats

    import pyarrow as pa

    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    sys.path.insert(0, str(REPO))
    from failmap_assets.stdf import parse_to_parquet
    from failmap_assets.stdf import tables

    tables.STAGE_CLOCK = time.process_time      # CPU seconds: the machine's other work does not count
    tmp = tempfile.mkdtemp(prefix="stdfbench-")
    try:
        for name in WARM:
            parse_to_parquet(str(STDF_DIR / name), os.path.join(tmp, "warm"))
        runs = []
        out = os.path.join(tmp, "p")
        for i in range(4):      # the first run makes the output folders (kept, as in the timed runs)
            t = time.process_time()
            s = parse_to_parquet(path, out)
            runs.append((time.process_time() - t, s.timings))
            _remove_files(out)
        runs = runs[1:]
        total, timings = sorted(runs, key=lambda r: r[0])[1]
        mb = os.path.getsize(path) / 1e6
        print(f"{'phase':<28}{'CPU s':>9}{'%':>7}   (median of 3 runs: {total:.3f} CPU s, {mb / total:.1f} MB/s)")
        for k, v in sorted(timings.items(), key=lambda kv: -kv[1]):
            print(f"{k:<28}{v:>9.3f}{100 * v / total:>7.1f}")
        rest = total - sum(timings.values())
        print(f"{'(unattributed)':<28}{rest:>9.3f}{100 * rest / total:>7.1f}")
        pr = cProfile.Profile(time.process_time)
        pr.enable()
        parse_to_parquet(path, out)
        pr.disable()
        print(f"\ncProfile (CPU time), top {top} by own time (a Numba kernel shows under its own name):")
        pstats.Stats(pr).sort_stats("tottime").print_stats(top)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_profile(name: str, mb: float, top: int) -> int:
    found = candidates([name])
    if not found:
        print(f"no file matching {name!r} in {STDF_DIR}", file=sys.stderr)
        return 2
    base = found[0]
    name = base.name
    with tempfile.TemporaryDirectory(prefix="stdfbench-") as tmp:
        big = build(base, mb, Path(tmp) / f"big_{name}")
        print(f"# profile of failmap on {name} x{big['copies']} = {big['bytes'] / 1e6:.1f} MB  "
              f"(record mix, % of bytes: {big['mix']})")
        code = (f"import sys; sys.path.insert(0, {str(REPO)!r}); import benchmarks.stdf_parse as b; "
                f"b._pin(); b.profile_worker({big['path']!r}, {top})")
        return subprocess.run([sys.executable, "-c", code], cwd=str(REPO)).returncode


# ---------------------------------------------------------------- main


def candidates(selected: list[str] | None) -> list[Path]:
    files = sorted(p for p in STDF_DIR.iterdir() if p.is_file() and p.suffix.lower() not in (".md",))
    if selected:
        files = [p for p in files if any(s in p.name for s in selected)]
    return files


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=60.0, help="size of the tiled files (40-90)")
    ap.add_argument("--rounds", type=int, default=3, help="timed runs per tool and file (median reported)")
    ap.add_argument("--warmup", type=int, default=1,
                    help="untimed runs per tool and file before the timed ones (a worker's steady state: its heap "
                         "grown to the file's size, the output folders made)")
    ap.add_argument("--files", default="", help="comma-separated substrings of file names (default: all)")
    ap.add_argument("--fixed-rounds", type=int, default=10, help="rounds over the small files (fixed cost)")
    ap.add_argument("--pystdf", action="store_true", help="also time pystdf (records only, slow: 4 MB slices)")
    ap.add_argument("--peer-defaults", action="store_true",
                    help="stdf-convert's tables written with pyarrow's default Parquet settings instead of ours")
    ap.add_argument("--both", action="store_true",
                    help="time the peer both ways in the same run (our writer settings, and pyarrow's defaults: "
                         "how the issue's own figures were measured); a ratio column and a headline for each")
    ap.add_argument("--profile", metavar="FILE", help="profile failmap on one tiled real file and exit")
    ap.add_argument("--top", type=int, default=25, help="functions listed by --profile")
    args = ap.parse_args(argv)
    if not STDF_DIR.is_dir():
        print(f"real test data not found at {STDF_DIR}", file=sys.stderr)
        return 2
    if args.profile:
        return run_profile(args.profile, args.mb, args.top)
    try:
        load = os.getloadavg()
    except OSError:
        load = (float("nan"),) * 3
    print(f"# STDF parse benchmark  python {sys.version.split()[0]}  cpus {os.cpu_count()}  load avg "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}  (each tool in its own process pinned to 1 CPU, runs "
          f"alternating, median of {args.rounds} after {args.warmup} untimed; the machine's other work shows in wall times; peer Parquet "
          f"settings: {'both ways' if args.both else 'pyarrow defaults' if args.peer_defaults else 'the same as ours'})")
    workers = {"failmap": Worker("failmap"), "stdf-convert": Worker("stdf-convert", args.peer_defaults and not args.both)}
    if args.both:
        workers[DEFAULTS_PEER] = Worker("stdf-convert", True)
    if args.pystdf:
        workers["pystdf"] = Worker("pystdf")
    rows, excluded = [], []
    try:
        with tempfile.TemporaryDirectory(prefix="stdfbench-") as tmp:
            for base in candidates([s for s in args.files.split(",") if s]):
                if base.suffix == ".gz":
                    excluded.append((base.name, "gzip stream: tiling needs the raw records (its content is "
                                                "lot2.stdf, which is measured)"))
                    continue
                err = workers["stdf-convert"].ask(op="probe", path=str(base))["error"]
                if err:
                    excluded.append((base.name, f"stdf-convert cannot read it: {err}"))
                    continue
                blk = part_block(base.read_bytes())
                if isinstance(blk, str):
                    excluded.append((base.name, blk))
                    continue
                big = build(base, args.mb, Path(tmp) / f"big_{base.name}")
                times: dict[str, list[float]] = {t: [] for t in workers}
                cpu: dict[str, list[float]] = {t: [] for t in workers}
                order = [t for t in workers if t != "pystdf"]
                for _ in range(args.warmup):
                    for tool in order:
                        workers[tool].ask(op="run", path=big["path"])
                for r in range(args.rounds):
                    for tool in (order if r % 2 == 0 else order[::-1]):
                        res = workers[tool].ask(op="run", path=big["path"])
                        if "error" in res:
                            raise RuntimeError(f"{tool} failed on {base.name}: {res['error']}")
                        times[tool].append(res["seconds"])
                        cpu[tool].append(res["cpu"])
                mb = big["bytes"] / 1e6
                row = {"file": base.name, "mb": mb, "copies": big["copies"], "mix": big["mix"],
                       **{t: mb / statistics.median(v) for t, v in cpu.items() if v},
                       **{f"{t} wall": mb / statistics.median(v) for t, v in times.items() if v}}
                if "pystdf" in workers:
                    sl = build(base, min(4.0, args.mb), Path(tmp) / f"slice_{base.name}")
                    res = workers["pystdf"].ask(op="run", path=sl["path"])
                    row["pystdf"] = sl["bytes"] / 1e6 / res["seconds"] if "seconds" in res else float("nan")
                    os.unlink(sl["path"])
                row["ratio"] = row["failmap"] / row["stdf-convert"]
                row["wall ratio"] = row["failmap wall"] / row["stdf-convert wall"]
                if args.both:
                    row["ratio d"] = row["failmap"] / row[DEFAULTS_PEER]
                os.unlink(big["path"])
                rows.append(row)
                print(f"  {base.name}: {row['failmap']:.1f} vs {row['stdf-convert']:.1f} MB/s (CPU) "
                      f"= {row['ratio']:.2f}x (wall {row['wall ratio']:.2f}x)"
                      + (f"; peer on pyarrow defaults {row[DEFAULTS_PEER]:.1f} MB/s = {row['ratio d']:.2f}x"
                         if args.both else ""), file=sys.stderr, flush=True)
        small = [str(STDF_DIR / s) for s in SMALL if (STDF_DIR / s).is_file()]
        fixed = {t: workers[t].ask(op="fixed", small=small, rounds=args.fixed_rounds)
                 for t in ("failmap", "stdf-convert")}
    finally:
        for w in workers.values():
            w.close()

    print("\nMB/s per CPU second of the tool's process (user + sys: robust when other work shares the CPU);"
          " ratio = ours / stdf-convert; the wall-clock ratio beside it")
    both = " stdf-convert, pyarrow defaults, MB/s | ratio to it |" if args.both else ""
    print("\n| file | MB (copies) | record mix of the tiled file, % of bytes | ours MB/s | stdf-convert MB/s | ratio "
          "| wall ratio |" + both
          + (" pystdf MB/s |" if args.pystdf else ""))
    print("|---|---:|---|---:|---:|---:|---:|" + ("---:|---:|" if args.both else "") + ("---:|" if args.pystdf else ""))
    for r in rows:
        print(f"| {r['file']} | {r['mb']:.1f} (x{r['copies']}) | {r['mix']} | {r['failmap']:.1f} | "
              f"{r['stdf-convert']:.1f} | {r['ratio']:.2f}x | {r['wall ratio']:.2f}x |"
              + (f" {r[DEFAULTS_PEER]:.1f} | {r['ratio d']:.2f}x |" if args.both else "")
              + (f" {r['pystdf']:.2f} |" if args.pystdf else ""))
    for name, why in excluded:
        print(f"| {name} | excluded: {why} | | | | | |")
    if rows:
        worst = min(rows, key=lambda r: r["ratio"])
        ratios = sorted(r["ratio"] for r in rows)
        print(f"\nWORST ratio ours / stdf-convert: {worst['ratio']:.2f}x ({worst['file']}; {worst['mix']})  "
              f"median {statistics.median(ratios):.2f}x over {len(rows)} files  (goal >= 3x on every file; "
              f"worst wall-clock ratio {min(r['wall ratio'] for r in rows):.2f}x)")
        if args.both:
            worst = min(rows, key=lambda r: r["ratio d"])
            d = sorted(r["ratio d"] for r in rows)
            print(f"WORST ratio with the peer on pyarrow's default writer settings: {worst['ratio d']:.2f}x "
                  f"({worst['file']})  median {statistics.median(d):.2f}x; files at 3x or more: "
                  f"{sum(x >= 3 for x in d)} of {len(d)} (our settings for the peer: "
                  f"{sum(r['ratio'] >= 3 for r in rows)} of {len(rows)})")
    names = ", ".join(Path(s).name for s in small)
    print(f"fixed cost per small file after warm-up (median, Parquet written; {names}): ours "
          f"{fixed['failmap']['wall_ms']:.1f} ms wall / {fixed['failmap']['cpu_ms']:.1f} ms CPU, stdf-convert "
          f"{fixed['stdf-convert']['wall_ms']:.1f} / {fixed['stdf-convert']['cpu_ms']:.1f} ms  (goal <= 10 ms); "
          f"into a fresh output tree (its folders made too), CPU: ours {fixed['failmap']['fresh_cpu_ms']:.1f} ms, "
          f"stdf-convert {fixed['stdf-convert']['fresh_cpu_ms']:.1f} ms")
    print(f"worker start (imports; ours includes loading the Numba cache): ours "
          f"{workers['failmap'].start['start_s']:.2f} s, "
          f"stdf-convert {workers['stdf-convert'].start['start_s']:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
