"""STDF parsing speed: failmap's parse_to_parquet vs stdf-convert (+ pyarrow Parquet) vs pystdf.

Builds 40-100 MB files in a temp dir by repeating the part records (first PIR .. last
PRR, with whatever is interleaved) of lot2.stdf and N09D212_1_12_P_ETS060702_04222019.std
between their original header and trailer, then measures, each tool in its own
subprocess pinned to one CPU:

* failmap:      parse_to_parquet(file, out_dir)                  (Parquet written)
* stdf-convert: stdf_convert.tables(file) + pyarrow.parquet.write_table per table
* pystdf:       pystdf's Parser over a smaller slice (records only, no output), extrapolated

and reports MB/s, records/s, peak RSS (of that subprocess) and the fixed cost per small
file after warm-up (median over many small real files, Parquet written).

    .venv/bin/python benchmarks/stdf_parse.py [--mb 80] [--pystdf-mb 4] [--repeat 3]

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
BASES = ["lot2.stdf", "N09D212_1_12_P_ETS060702_04222019.std"]
SMALL = ["stdf4j_test.stdf", "main_Lot_1_Wafer_1_Oct_13_09h33m41s_STDF.stdf", "makechip_x.stdf",
         "spreadsheet14.stdf"]


# ---------------------------------------------------------------- building the files


def _records(data: bytes):
    be = data[:2] == b"\x00\x02"
    fmt = ">HBB" if be else "<HBB"
    pos = 0
    while pos + 4 <= len(data):
        ln, typ, sub = struct.unpack_from(fmt, data, pos)
        yield pos, 4 + ln, typ, sub
        pos += 4 + ln


def split_parts(data: bytes) -> tuple[bytes, bytes, bytes, int, int]:
    """(header, parts block from the first PIR to the end of the last PRR, trailer, records in block, total)."""
    recs = list(_records(data))
    first = next(i for i, r in enumerate(recs) if r[2:] == (5, 10))
    last = max(i for i, r in enumerate(recs) if r[2:] == (5, 20))
    a = recs[first][0]
    b = recs[last][0] + recs[last][1]
    return data[:a], data[a:b], data[b:], last - first + 1, len(recs)


def build(base: Path, target_mb: float, out: Path) -> dict:
    data = base.read_bytes()
    head, block, tail, n_block, n_total = split_parts(data)
    k = max(1, round((target_mb * 1e6 - len(head) - len(tail)) / len(block)))
    with open(out, "wb") as f:
        f.write(head)
        for _ in range(k):
            f.write(block)
        f.write(tail)
    return {"path": str(out), "bytes": out.stat().st_size, "records": n_total + (k - 1) * n_block, "copies": k,
            "head": len(head), "block": len(block), "tail": len(tail), "block_records": n_block}


def build_slice(base: Path, target_mb: float, out: Path) -> dict:
    """A smaller file (same construction) for pystdf."""
    return build(base, target_mb, out)


# ---------------------------------------------------------------- workers (run in subprocesses)


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


def _fixed(fn, small: list[str], rounds: int = 10) -> tuple[float, float]:
    """Median wall and CPU milliseconds per small file (after warm-up)."""
    wall, cpu = [], []
    for _ in range(rounds):
        for s in small:
            t, c = time.perf_counter(), time.process_time()
            fn(s)
            wall.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
    return statistics.median(wall) * 1e3, statistics.median(cpu) * 1e3


def worker_failmap(path: str, small: list[str], repeat: int) -> dict:
    import pyarrow as pa

    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    t0 = time.perf_counter()
    sys.path.insert(0, str(REPO))
    from failmap_assets.stdf import parse_to_parquet

    tmp = tempfile.mkdtemp(prefix="stdfbench-")
    first = time.perf_counter()
    parse_to_parquet(small[0], tmp)           # warm-up: imports, Numba cache load
    cold = time.perf_counter() - t0
    base_rss = _peak_rss_mb()
    first = time.perf_counter() - first
    times, cpu = [], []
    stats = None
    for i in range(repeat):
        out = os.path.join(tmp, f"big{i}")
        t, c = time.perf_counter(), time.process_time()
        stats = parse_to_parquet(path, out)
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
        shutil.rmtree(out)
    fixed, fixed_cpu = _fixed(lambda s: parse_to_parquet(s, os.path.join(tmp, "small")), small)
    shutil.rmtree(tmp, ignore_errors=True)
    return {"seconds": min(times), "cpu": min(cpu), "all": times, "rss_mb": _peak_rss_mb(), "base_rss_mb": base_rss,
            "fixed_ms": fixed, "fixed_cpu_ms": fixed_cpu, "cold_start_s": cold, "first_small_s": first,
            "parts": stats.parts, "results": stats.results, "records": stats.records}


def worker_stdf_convert(path: str, small: list[str], repeat: int) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    import stdf_convert

    tmp = tempfile.mkdtemp(prefix="stdfbench-")

    def run(p, out):
        os.makedirs(out, exist_ok=True)
        tables = stdf_convert.tables(p)
        for name, t in tables.items():
            pq.write_table(t, os.path.join(out, f"{name}.parquet"))
        return sum(t.num_rows for t in tables.values())

    run(small[0], os.path.join(tmp, "warm"))
    base_rss = _peak_rss_mb()
    times, cpu = [], []
    n = 0
    for i in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        n = run(path, os.path.join(tmp, f"big{i}"))
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
        shutil.rmtree(os.path.join(tmp, f"big{i}"))
    fixed, fixed_cpu = _fixed(lambda s: run(s, os.path.join(tmp, "small")), small)
    shutil.rmtree(tmp, ignore_errors=True)
    return {"seconds": min(times), "cpu": min(cpu), "all": times, "rss_mb": _peak_rss_mb(), "base_rss_mb": base_rss,
            "fixed_ms": fixed, "fixed_cpu_ms": fixed_cpu, "records": n}


def worker_pystdf(path: str, small: list[str], repeat: int) -> dict:
    from pystdf.IO import Parser

    base_rss = _peak_rss_mb()

    class Count:
        n = 0

        def after_send(self, ds, data):
            Count.n += 1

    times, cpu = [], []
    for _ in range(max(1, min(repeat, 2))):
        Count.n = 0
        t, c = time.perf_counter(), time.process_time()
        with open(path, "rb") as f:
            p = Parser(inp=f)
            p.addSink(Count())
            p.parse()
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return {"seconds": min(times), "cpu": min(cpu), "all": times, "rss_mb": _peak_rss_mb(), "base_rss_mb": base_rss,
            "records": Count.n}


WORKERS = {"failmap": worker_failmap, "stdf-convert": worker_stdf_convert, "pystdf": worker_pystdf}


def _run_worker(tool: str, path: str, small: list[str], repeat: int) -> dict:
    code = ("import json, sys; sys.path.insert(0, {repo!r}); "
            "import benchmarks.stdf_parse as b; b._pin(); "
            "print('RESULT' + json.dumps(b.WORKERS[{tool!r}]({path!r}, {small!r}, {repeat})))").format(
        repo=str(REPO), tool=tool, path=path, small=small, repeat=repeat)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(REPO))
    for line in p.stdout.splitlines():
        if line.startswith("RESULT"):
            return json.loads(line[6:])
    raise RuntimeError(f"{tool} failed:\n{p.stdout[-2000:]}\n{p.stderr[-4000:]}")


# ---------------------------------------------------------------- main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=80.0, help="size of the big files (40-100)")
    ap.add_argument("--pystdf-mb", type=float, default=4.0, help="size of the slice pystdf reads")
    ap.add_argument("--repeat", type=int, default=5, help="timed runs per tool (best is reported)")
    ap.add_argument("--skip-pystdf", action="store_true")
    ap.add_argument("--only", choices=["failmap", "stdf-convert", "pystdf"], action="append")
    args = ap.parse_args(argv)
    if not STDF_DIR.is_dir():
        print(f"real test data not found at {STDF_DIR}", file=sys.stderr)
        return 2
    small = [str(STDF_DIR / s) for s in SMALL]
    tools = args.only or (["failmap", "stdf-convert"] + ([] if args.skip_pystdf else ["pystdf"]))
    try:
        load = os.getloadavg()
    except OSError:
        load = (float("nan"),) * 3
    print(f"# STDF parse benchmark  python {sys.version.split()[0]}  cpus {os.cpu_count()}  "
          f"load avg {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}  (each tool in its own process, pinned to 1 CPU)")
    rows = []
    with tempfile.TemporaryDirectory(prefix="stdfbench-") as tmp:
        for base in BASES:
            big = build(STDF_DIR / base, args.mb, Path(tmp) / f"big_{base}")
            sl = build_slice(STDF_DIR / base, args.pystdf_mb, Path(tmp) / f"slice_{base}")
            print(f"\n## {base}: {big['copies']} copies of the part block ({big['block'] / 1e6:.2f} MB, "
                  f"{big['block_records']} records) -> {big['bytes'] / 1e6:.1f} MB, {big['records']:,} records")
            res = {}
            for tool in tools:
                f = sl if tool == "pystdf" else big
                r = _run_worker(tool, f["path"], small, args.repeat)
                r["mb_s"] = f["bytes"] / 1e6 / r["seconds"]
                r["mb_s_cpu"] = f["bytes"] / 1e6 / r["cpu"]
                r["rec_s_cpu"] = f["records"] / r["cpu"]
                r["file_mb"] = f["bytes"] / 1e6
                res[tool] = r
            ref = res.get("stdf-convert")
            hdr = (f"{'tool':<14}{'file MB':>8}{'wall s':>8}{'cpu s':>8}{'MB/s wall':>11}{'MB/s cpu':>10}"
                   f"{'records/s cpu':>15}{'RSS MB peak (base)':>20}{'fixed ms wall/cpu':>19}{'vs stdf-convert wall/cpu':>26}")
            print(hdr)
            for tool, r in res.items():
                ratio = (f"{r['mb_s'] / ref['mb_s']:.2f}x / {r['mb_s_cpu'] / ref['mb_s_cpu']:.2f}x" if ref else "-")
                fixed = f"{r['fixed_ms']:.1f} / {r['fixed_cpu_ms']:.1f}" if "fixed_ms" in r else "-"
                note = "  (slice, extrapolated)" if tool == "pystdf" else ""
                rss = f"{r['rss_mb']:.0f} ({r['base_rss_mb']:.0f})"
                print(f"{tool:<14}{r['file_mb']:>8.1f}{r['seconds']:>8.2f}{r['cpu']:>8.2f}{r['mb_s']:>11.1f}"
                      f"{r['mb_s_cpu']:>10.1f}{r['rec_s_cpu']:>15,.0f}{rss:>20}"
                      f"{fixed:>19}{ratio:>26}{note}")
            if "failmap" in res:
                fm = res["failmap"]
                print(f"failmap: cold process start + first small file {fm['cold_start_s']:.2f} s "
                      f"(imports + Numba cache load, no compiling); all big-file runs (wall) "
                      f"{', '.join(f'{x:.2f}' for x in fm['all'])} s")
            rows.append((base, res))
    print("\n## summary: MB/s on one core, wall (best run) and CPU time (user+sys, best run)")
    print(f"{'file':<40}{'failmap':>16}{'stdf-convert':>16}{'pystdf':>14}{'failmap / stdf-convert':>26}")
    for base, res in rows:
        def pair(tool):
            r = res.get(tool)
            return f"{r['mb_s']:.1f} / {r['mb_s_cpu']:.1f}" if r else "-"
        fm, sc = res.get("failmap"), res.get("stdf-convert")
        ratio = f"{fm['mb_s'] / sc['mb_s']:.2f}x / {fm['mb_s_cpu'] / sc['mb_s_cpu']:.2f}x" if fm and sc else "-"
        print(f"{base:<40}{pair('failmap'):>16}{pair('stdf-convert'):>16}{pair('pystdf'):>14}{ratio:>26}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
