"""The PTR phase of STDF parsing alone, in-process: ``tables._ptr_results`` on real files
tiled like benchmarks/stdf_parse.py does, split into the kernel (``decode.ptr_decode``)
and the rest (override columns, Arrow columns, tests). Min of N runs, CPU seconds, and
ns per PTR; run the two versions A/B alternately, the machine is shared.

    .venv/bin/python benchmarks/stdf_ptr.py [--files sn269,LX7730] [--mb 20] [--rounds 7]

Nothing is written outside a temporary directory.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.stdf_parse import _pin, build, candidates, part_block  # noqa: E402

DEFAULT_FILES = "sn269,LX7730,11_2014,NI_STS,523X3008,WS_P9AR90,lot2,EJ04D27"


def _prepared(path: str):
    from failmap_assets.stdf import decode as D
    from failmap_assets.stdf import tables as T

    src = T._pick_source(path, None, None)
    header = T.detect(src.data, src.name)
    index = T.scan(src.data, header.big_endian)
    ctx = T._Ctx(src, header, index)
    w = D.walk(src.data, index, ctx.counts)
    return ctx, w


def measure(path: str, rounds: int) -> tuple[int, float, float]:
    """(PTRs, min CPU s of _ptr_results, min CPU s of its kernel ptr_decode)."""
    from failmap_assets.stdf import decode as D
    from failmap_assets.stdf import records as R
    from failmap_assets.stdf import tables as T

    ctx, w = _prepared(path)
    n = int(ctx.counts[R.CODE["PTR"]])
    T._ptr_results(ctx, w)      # compile / warm
    whole, kernel = [], []
    for _ in range(rounds):
        t = time.process_time()
        T._ptr_results(ctx, w)
        whole.append(time.process_time() - t)
        t = time.process_time()
        D.ptr_decode(ctx.buf, ctx.index, w.rec_part, n, ctx.be)
        kernel.append(time.process_time() - t)
    return n, min(whole), min(kernel)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", default=DEFAULT_FILES)
    ap.add_argument("--mb", type=float, default=20)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args(argv)
    import pyarrow as pa

    pa.set_cpu_count(1)
    _pin()
    print(f"{'file':<44}{'PTRs':>9}{'ptr CPU s':>11}{'kernel s':>10}{'rest s':>9}{'ns/PTR':>8}")
    with tempfile.TemporaryDirectory(prefix="stdfptr-") as tmp:
        for base in candidates(args.files.split(",")):
            if base.suffix == ".gz" or isinstance(part_block(base.read_bytes()), str):
                continue
            big = build(base, args.mb, Path(tmp) / f"big_{base.name}")
            n, whole, kernel = measure(big["path"], args.rounds)
            if n == 0:
                continue
            print(f"{base.name[:43]:<44}{n:>9}{whole:>11.4f}{kernel:>10.4f}{whole - kernel:>9.4f}"
                  f"{1e9 * whole / n:>8.0f}")
            Path(big["path"]).unlink()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
