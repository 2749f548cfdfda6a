"""Convert many STDF files to Parquet in parallel (``failmap stdf2parquet``).

``convert_many(paths, out_dir, workers)`` expands globs and directories, converts each
file in a process pool (``workers <= 1``: in this process), shows a progress bar on
stderr, prints a summary table and the reason for every rejected file, and returns
the exit code: 0 when every STDF file converted (salvaged files count as converted and
are listed with their issues), 1 when an STDF file was rejected or nothing at all was
converted. Files that are not STDF (a README a glob picked up) are skipped, each named
with the reason, and do not fail the batch.
"""

from __future__ import annotations

import concurrent.futures as cf
import glob
import multiprocessing as mp
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from failmap_assets.wafer.rejects import Rejected


#: Reject reasons meaning "this file is not STDF at all" (skipped, not a failure).
NOT_STDF_REASONS = frozenset({"not_stdf"})


@dataclass
class Outcome:
    path: str
    status: str                  # "ok", "salvaged", "skipped", "rejected"
    reason: str = ""
    detail: str = ""
    parts: int = 0
    tests: int = 0
    results: int = 0
    records: int = 0
    bytes: int = 0
    seconds: float = 0.0
    issues: list[str] = field(default_factory=list)


def expand_paths(paths: list[str]) -> tuple[list[str], list[str]]:
    """(files, patterns that matched nothing). Directories are searched recursively."""
    files: list[str] = []
    missing: list[str] = []
    for p in paths:
        if os.path.isfile(p):
            files.append(p)
        elif os.path.isdir(p):
            found = sorted(str(x) for x in Path(p).rglob("*") if x.is_file())
            files.extend(found)
            if not found:
                missing.append(p)
        else:
            found = sorted(x for x in glob.glob(p, recursive=True) if os.path.isfile(x))
            files.extend(found)
            if not found:
                missing.append(p)
    seen = set()
    unique = [f for f in files if not (f in seen or seen.add(f))]
    return unique, missing


def convert_one(path: str, out_dir: str) -> Outcome:
    from .tables import parse_to_parquet

    t0 = time.perf_counter()
    try:
        s = parse_to_parquet(path, out_dir)
    except Rejected as e:
        # A glob such as ``data/*`` picks up READMEs and notes: content that is not STDF
        # at all is skipped; an STDF file we cannot read (V3, corrupt) stays an error.
        status = "skipped" if e.reason in NOT_STDF_REASONS else "rejected"
        return Outcome(path, status, e.reason, e.detail, seconds=time.perf_counter() - t0,
                       bytes=_size(path))
    except Exception as e:  # noqa: BLE001 - one bad file must not stop the batch
        return Outcome(path, "rejected", "internal_error", f"{type(e).__name__}: {e}",
                       seconds=time.perf_counter() - t0, bytes=_size(path))
    return Outcome(path, "ok" if s.complete else "salvaged", parts=s.parts, tests=s.tests, results=s.results,
                   records=s.records, bytes=s.bytes, seconds=s.seconds, issues=s.issues)


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


class _Progress:
    def __init__(self, total: int, total_bytes: int, enabled: bool, stream=None):
        self.total, self.total_bytes = total, total_bytes
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.done = self.bytes = self.rejected = 0
        self.t0 = time.perf_counter()
        self.last = 0.0

    def update(self, o: Outcome) -> None:
        self.done += 1
        self.bytes += _size(o.path)
        self.rejected += o.status == "rejected"
        if not self.enabled:
            return
        now = time.perf_counter()
        if not self.tty and now - self.last < 2.0 and self.done != self.total:
            return
        self.last = now
        el = max(now - self.t0, 1e-9)
        frac = self.done / self.total if self.total else 1.0
        width = 30
        bar = "=" * int(frac * width)
        bar = (bar + ">" if len(bar) < width else bar).ljust(width)
        eta = el / frac - el if frac > 0 else 0.0
        line = (f"[{bar}] {self.done}/{self.total} files  {self.bytes / 1e6:,.1f}/{self.total_bytes / 1e6:,.1f} MB"
                f"  {self.bytes / 1e6 / el:,.1f} MB/s  rejected {self.rejected}  eta {eta:,.0f}s")
        if self.tty:
            self.stream.write("\r" + line)
            if self.done == self.total:
                self.stream.write("\n")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def _summary(outcomes: list[Outcome], seconds: float, out=None) -> None:
    out = out or sys.stderr
    rows = []
    for status in ("ok", "salvaged", "skipped", "rejected"):
        sel = [o for o in outcomes if o.status == status]
        rows.append((status, len(sel), sum(o.parts for o in sel), sum(o.tests for o in sel),
                     sum(o.results for o in sel), sum(o.bytes for o in sel) / 1e6))
    total = ("total", len(outcomes), *(sum(r[i] for r in rows) for i in range(2, 6)))
    hdr = ("status", "files", "parts", "tests", "results", "MB")
    fmt = "{:<9} {:>7} {:>10} {:>9} {:>13} {:>10}"
    print(fmt.format(*hdr), file=out)
    for r in rows + [total]:
        print(fmt.format(r[0], r[1], r[2], r[3], r[4], f"{r[5]:,.1f}"), file=out)
    mb = total[5]
    print(f"{mb:,.1f} MB in {seconds:,.1f} s ({mb / seconds if seconds else 0:,.1f} MB/s)", file=out)
    skipped = [o for o in outcomes if o.status == "skipped"]
    if skipped:
        print(f"\nskipped, not STDF ({len(skipped)}):", file=out)
        for o in skipped:
            print(f"  {o.path}: {o.reason}: {o.detail}", file=out)
    rejected = [o for o in outcomes if o.status == "rejected"]
    if rejected:
        print(f"\nrejected ({len(rejected)}):", file=out)
        for o in rejected:
            print(f"  {o.path}: {o.reason}: {o.detail}", file=out)
    salvaged = [o for o in outcomes if o.status == "salvaged"]
    if salvaged:
        print(f"\nsalvaged, data after the first error is lost ({len(salvaged)}):", file=out)
        for o in salvaged:
            first = next((i for i in o.issues if "warning" not in i), o.issues[0] if o.issues else "")
            print(f"  {o.path}: {first}", file=out)


def convert_many(paths: list[str], out_dir, workers: int, progress: bool = True) -> int:
    """Convert every STDF file in ``paths`` (files, globs, directories) under ``out_dir``.

    Returns 0 when every STDF file was converted (possibly salvaged; non-STDF files are
    skipped), 1 when any STDF file was rejected, a pattern matched nothing, or no file
    at all was converted."""
    t0 = time.perf_counter()
    files, missing = expand_paths([str(p) for p in paths])
    outcomes: list[Outcome] = [Outcome(m, "rejected", "not_found", "no such file or no match") for m in missing]
    out_dir = str(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    bar = _Progress(len(files), sum(_size(f) for f in files), progress)
    if workers <= 1 or len(files) <= 1:
        for f in files:
            o = convert_one(f, out_dir)
            outcomes.append(o)
            bar.update(o)
    else:
        ctx = mp.get_context("spawn")
        with cf.ProcessPoolExecutor(max_workers=min(workers, len(files)), mp_context=ctx) as pool:
            # biggest first: the pool finishes together
            order = sorted(files, key=_size, reverse=True)
            futs = {pool.submit(convert_one, f, out_dir): f for f in order}
            for fut in cf.as_completed(futs):
                try:
                    o = fut.result()
                except Exception as e:  # noqa: BLE001 - a worker died (e.g. out of memory)
                    o = Outcome(futs[fut], "rejected", "worker_failed", f"{type(e).__name__}: {e}")
                outcomes.append(o)
                bar.update(o)
    _summary(outcomes, time.perf_counter() - t0)
    converted = any(o.status in ("ok", "salvaged") for o in outcomes)
    if not converted:
        print("no STDF file was converted", file=sys.stderr)
    return 1 if not converted or any(o.status == "rejected" for o in outcomes) else 0
