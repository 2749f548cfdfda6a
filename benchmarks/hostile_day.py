"""Peak memory of a day run with hostile objects mixed in, next to the same day without them.

A synthetic day (local folders) is run once as it is and once with hostile objects
added to bucket A: a 2 GiB sparse text file, a gzip of 1 GiB of zeros (inflates
1000:1, right at the ratio limit), an xz and a bz2 of 512 MiB of zeros, a zip bomb
(one member of 1 GiB of zeros) and 32 gzip bombs of 64 MiB each (arriving together,
each under the ratio limit on its own). Each run is `failmap run-day` in a fresh
process; the figure is its peak RSS (ru_maxrss of the child).

    .venv/bin/python benchmarks/hostile_day.py --wafers 200

Goal (issue "A day converges"): the hostile day's peak stays under 1 GB.
"""

from __future__ import annotations

import argparse
import bz2
import io
import json
import lzma
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
BIN = Path(sys.executable).parent
DAY = date(2026, 1, 11)
ZEROS = b"\0" * (1 << 20)


def gzip_of_zeros(mib: int) -> bytes:
    comp = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    out = [comp.compress(ZEROS) for _ in range(mib)]
    return b"".join(out) + comp.flush()


def stream_of_zeros(mib: int, comp) -> bytes:
    out = [comp.compress(ZEROS) for _ in range(mib)]
    return b"".join(out) + comp.flush()


def zip_bomb(mib: int) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z, z.open("map.txt", "w", force_zip64=True) as f:
        for _ in range(mib):
            f.write(ZEROS)
    return buf.getvalue()


# `failmap run-day` in a fresh process that reports its own peak RSS when it is done
_CHILD = (
    "import json, resource, sys\n"
    "from failmap_assets.cli import main\n"
    "rc = main(sys.argv[1:])\n"
    "print(json.dumps({'peak_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))\n"
    "sys.exit(rc)\n"
)


def run_day(env: dict) -> tuple[float, float, dict]:
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _CHILD, "run-day", DAY.isoformat(), "--pipeline", "failmap",
                           "--as-of", "2026-01-13 00:00:00"], env=env, capture_output=True, text=True, timeout=1800)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    lines = done.stdout.strip().splitlines()
    return seconds, json.loads(lines[-1])["peak_mb"], json.loads(lines[-2])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wafers", type=int, default=200)
    args = ap.parse_args()
    from failmap_synth.day import generate_day

    work = Path(tempfile.mkdtemp(prefix="failmap-hostile-"))
    try:
        results = {}
        for kind in ("plain", "hostile", "hostile, no budget"):
            root = work / kind.split(",")[0]
            if kind.endswith("no budget"):  # the same hostile day without the memory budget (the peer)
                shutil.rmtree(root / "out")
                (root / "out").mkdir()
                env["FAILMAP_MEMORY_BUDGET_MB"] = str(1 << 20)
                results[kind] = run_day(env)
                continue
            for sub in ("a", "b", "stdf", "out"):
                (root / sub / DAY.strftime("%Y%m%d")).mkdir(parents=True)
            for o in generate_day(DAY, args.wafers, 5, broken=False):
                if o.bucket in ("a", "b"):
                    (root / o.bucket / o.key).parent.mkdir(parents=True, exist_ok=True)
                    (root / o.bucket / o.key).write_bytes(o.data)
            if kind == "hostile":
                folder = root / "a" / DAY.strftime("%Y%m%d")
                with open(folder / "H1_01P_20260111_230000.txt", "wb") as f:
                    f.truncate(2 << 30)                       # 2 GiB, sparse: nothing on disk
                (folder / "H1_02P_20260111_230001.gz").write_bytes(gzip_of_zeros(1024))
                (folder / "H1_03P_20260111_230002.xz").write_bytes(stream_of_zeros(512, lzma.LZMACompressor()))
                (folder / "H1_04P_20260111_230003.bz2").write_bytes(stream_of_zeros(512, bz2.BZ2Compressor(9)))
                (folder / "H1_05P_20260111_230004.zip").write_bytes(zip_bomb(1024))
                small = gzip_of_zeros(64)
                for i in range(32):
                    (folder / f"H2_{(i % 25) + 1:02d}{'PRC'[i // 25]}_20260111_2301{i:02d}.gz").write_bytes(small)
            env = {k: v for k, v in os.environ.items() if not k.startswith("FAILMAP_")}
            env.update(FAILMAP_SOURCE_A=str(root / "a"), FAILMAP_SOURCE_B=str(root / "b"),
                       FAILMAP_SOURCE_STDF=str(root / "stdf"), FAILMAP_OUTPUT=str(root / "out"),
                       FAILMAP_START_DATE="2026-01-01", PYTHONPATH=str(REPO))
            results[kind] = run_day(env)
        print(f"\nhostile day benchmark: {args.wafers} wafers, local folders, `failmap run-day` in a fresh process, 2 cores")
        print(f"{'day':<20}{'seconds':>9}{'peak RSS MB':>13}{'wafers':>8}{'rejects':>9}  rejects by reason")
        for kind, (seconds, peak, summary) in results.items():
            t = summary["totals"]
            reasons = ", ".join(f"{r}={n}" for s, r, n in t.get("rejects_by_reason", []) if s == "error")
            print(f"{kind:<20}{seconds:>9.1f}{peak:>13.0f}{t.get('wafers', 0):>8}{t.get('rejects', 0):>9}  {reasons}")
        hostile_peak = results["hostile"][1]
        print(f"\nhostile / plain peak RSS = {hostile_peak / results['plain'][1]:.2f}; without the budget "
              f"{results['hostile, no budget'][1] / results['plain'][1]:.2f}; "
              f"goal: hostile peak <= 1024 MB: {'met' if hostile_peak <= 1024 else 'NOT met'} ({hostile_peak:.0f} MB)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
