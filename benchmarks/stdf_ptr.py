"""One results phase of STDF parsing alone, in-process: ``tables._ptr_results`` (PTR, split
into the kernel ``decode.ptr_decode`` and the rest: override columns, Arrow columns, tests),
``tables._kernel_results`` (MPR, FTR) or ``tables._parts`` (PRR) on real files tiled like
benchmarks/stdf_parse.py does. Min of N runs, CPU seconds, and ns per record; run the two
versions A/B alternately, the machine is shared.

    .venv/bin/python benchmarks/stdf_ptr.py [--kind PTR|MPR|FTR|PRR] [--files sn269,LX7730] [--mb 20] [--rounds 7]

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


def _phase(kind: str):
    """The tables function that builds ``kind``'s table, called as f(ctx, w)."""
    from failmap_assets.stdf import tables as T

    if kind == "PRR":
        return T._parts
    return lambda ctx, w: T._kernel_results(ctx, kind, w)


def measure_kind(path: str, kind: str, rounds: int) -> tuple[int, float]:
    """(records of ``kind``, min CPU s of the phase that builds its table)."""
    from failmap_assets.stdf import records as R

    ctx, w = _prepared(path)
    n = int(ctx.counts[R.CODE[kind]])
    f = _phase(kind)
    f(ctx, w)                   # compile / warm
    runs = []
    for _ in range(rounds):
        t = time.process_time()
        f(ctx, w)
        runs.append(time.process_time() - t)
    return n, min(runs)


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
    ap.add_argument("--kind", default="PTR", choices=("PTR", "MPR", "FTR", "PRR"))
    ap.add_argument("--files", default=DEFAULT_FILES)
    ap.add_argument("--mb", type=float, default=20)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args(argv)
    import pyarrow as pa

    pa.set_cpu_count(1)
    _pin()
    kind = args.kind
    if kind == "PTR":
        print(f"{'file':<44}{'PTRs':>9}{'ptr CPU s':>11}{'kernel s':>10}{'rest s':>9}{'ns/PTR':>8}")
    else:
        print(f"{'file':<44}{kind + 's':>9}{'CPU s':>11}{'ns/' + kind:>8}")
    with tempfile.TemporaryDirectory(prefix="stdfptr-") as tmp:
        for base in candidates(args.files.split(",")):
            if base.suffix == ".gz" or isinstance(part_block(base.read_bytes()), str):
                continue
            big = build(base, args.mb, Path(tmp) / f"big_{base.name}")
            if kind != "PTR":
                n, whole = measure_kind(big["path"], kind, args.rounds)
                if n:
                    print(f"{base.name[:43]:<44}{n:>9}{whole:>11.4f}{1e9 * whole / n:>8.0f}")
                Path(big["path"]).unlink()
                continue
            n, whole, kernel = measure(big["path"], args.rounds)
            if n == 0:
                continue
            print(f"{base.name[:43]:<44}{n:>9}{whole:>11.4f}{kernel:>10.4f}{whole - kernel:>9.4f}"
                  f"{1e9 * whole / n:>8.0f}")
            Path(big["path"]).unlink()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
