"""``failmap warm``: compile every Numba kernel into Numba's cache, so no run compiles.

Numba compiles a kernel the first time it is called with a signature, ~20 s for all of
ours together, in every new process unless its on-disk cache (``NUMBA_CACHE_DIR``)
already holds the code. A deployment's image runs this once at build time; every code
server, sensor and run process then loads the kernels from the cache.

Warming is real work on synthetic data, through the very functions a deployment runs,
so every signature the pipeline uses gets compiled and nothing else:

* a synthetic fab day (fail-map A and B files in several containers, a multi-map
  archive, orphan and broken files, an STDF wafer-sort file of each byte order) plus
  one map of each industry format (G85, E142, TSK, KLARF, an ASCII row map) and an STDF
  file holding every record type, in both byte orders, and one with hundreds of tests
  (the decoder's growing tables), in local folders; then the fail-map and the STDF
  day, as ``failmap run-day`` runs them (parse, join, Parquet, PNG, JSON, commit);
* what a day seldom takes: ``failmap stdf2parquet``'s conversion (file ids), the JSON
  writer's escaping of B values, the PTR decoder's chunking of huge files (on a
  small file, with a small chunk size), the PRR decoder's offsets for files of
  2 GiB and more (on a small file), records of a type the record table does not
  know, the table-driven decoder the specialised record kernels are checked against,
  and a wafer's pattern signature.

Then every cached kernel of the package (``admin.kernels``) must have been compiled:
one that was not is named and the command fails, so a kernel added without a way to
warm it is caught here (and by the test that runs this), not by a slow first run.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

#: the synthetic day (any day works: the folders are private to the command)
DAY = date(2026, 1, 11)
WAFERS = 12


@dataclass
class WarmReport:
    kernels: int = 0
    signatures: int = 0
    not_compiled: list[str] = field(default_factory=list)
    cache_files: int = 0
    seconds: float = 0.0


def warm(log: Callable[[str], None] = print) -> WarmReport:
    """Run the representative work; report which kernels got compiled."""
    from failmap_assets.admin.kernels import cache_state, cached_kernels

    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="failmap-warm-") as tmp:
        root = Path(tmp)
        _write_day(root, log)
        _run_days(root, log)
        _stdf2parquet(root, log)
    _json_escapes()
    _ptr_chunks()
    _wide_prr_offsets()
    _unknown_records()
    _reference_decoder()
    _pattern_signature()
    kernels = cached_kernels()
    report = WarmReport(kernels=len(kernels), seconds=time.monotonic() - t0)
    for k in kernels:
        sigs = k.dispatcher.signatures
        report.signatures += len(sigs)
        # A helper kernel called only from other kernels gets no signature of its own
        # when its callers load from a cache that is already warm (their code holds it):
        # what counts is that the cache holds code for it that this machine loads.
        if not sigs and not cache_state(k).usable:
            report.not_compiled.append(k.name)
    report.cache_files = len({str(p) for k in kernels for p in Path(k.dispatcher._cache._cache_path).glob("*.nb*")})
    return report


def _stores(root: Path):
    from failmap_assets.storage.local_store import LocalObjectStore

    return {b: LocalObjectStore(str(root / b)) for b in ("a", "b", "stdf", "out")}


def _write_day(root: Path, log) -> None:
    from failmap_synth.day import generate_day
    from failmap_synth.industry_maps import SAMPLES
    from failmap_synth.stdf_any import every_record_type
    from failmap_synth.stdf_writer import make_wafer_sort_stdf

    stores = _stores(root)
    n = 0
    for obj in generate_day(DAY, WAFERS, seed=11, broken=True, dies_range=(300, 3000), typical_dies=800,
                            stdf_files=2, workers=1):
        stores[obj.bucket].put(obj.key, obj.data)
        n += 1
    folder = f"{DAY:%Y%m%d}"
    # Industry maps arrive in bucket A under names outside the key grammar: read by content.
    for name, (suffix, build) in SAMPLES.items():
        stores["a"].put(f"{folder}/WARM_{name.replace(':', '_')}{suffix}", build())
        n += 1
    for i, endian in enumerate("<>"):
        stores["stdf"].put(f"{folder}/WARMALL_{i:02d}_{folder}_00000{i}.stdf", every_record_type(endian))
        # Hundreds of tests: the PTR decoder grows its tables and rehashes.
        stores["stdf"].put(f"{folder}/WARMBIG_{i:02d}_{folder}_00010{i}.stdf",
                           make_wafer_sort_stdf(7 + i, endian=endian, dies=40, tests_per_die=1500, sites=1))
        n += 2
    log(f"synthetic day {DAY}: {n} objects")


def _run_days(root: Path, log) -> None:
    from failmap_assets.defs.failmap.assets import run_failmap_day
    from failmap_assets.defs.stdf.assets import run_stdf
    from failmap_assets.resources import build_resources
    from failmap_assets.settings import Settings

    s = Settings(source_a=str(root / "a"), source_b=str(root / "b"), source_stdf=str(root / "stdf"),
                 output=str(root / "out"), max_workers=2)
    res = build_resources(s)
    quiet = lambda line: None  # noqa: E731
    # As of the next noon: every A is past its pairing window and grace (processed A-only).
    r = run_failmap_day(DAY, res["storage"], res["failmap_rules"], as_of=f"{DAY + timedelta(days=1)} 12:00:00",
                        run_id="warm", log=quiet)
    log(f"fail-map day: {r.units_done} units processed, {r.units_failed} failed")
    r = run_stdf(DAY, res["storage"], res["failmap_rules"], run_id="warm", log=quiet)
    log(f"STDF day: {r.files_done} files processed, {r.files_failed} failed")


def _stdf2parquet(root: Path, log) -> None:
    from failmap_assets.stdf.batch import convert_many

    files = sorted(str(p) for p in (root / "stdf").rglob("*") if p.is_file())
    with contextlib.redirect_stdout(None), contextlib.redirect_stderr(None):  # its summary
        convert_many(files, str(root / "stdf2parquet"), workers=1, progress=False)
    log(f"stdf2parquet: {len(files)} files")


def _json_escapes() -> None:
    """B values holding bytes JSON must escape (quotes, backslashes, non-ASCII)."""
    import numpy as np

    from failmap_assets.formats.detect import read_wafer_maps
    from failmap_assets.maps.coordinates import wafer_json
    from failmap_assets.wafer.model import CompanionMap
    from failmap_synth.industry_maps import g85

    [wafer] = read_wafer_maps(g85())
    n = wafer.die_count
    companion = CompanionMap(
        x=wafer.x.astype(np.int32), y=wafer.y.astype(np.int32), bin=wafer.bin.astype(np.int32),
        values=np.zeros((n, 1)), values_na=np.zeros((n, 1), bool),
        values_text=['0.5,"q" \\ \u00b5'] * n, value_names=["V"], stime="20260111_000000")
    wafer_json(wafer, wafer_token="warm", source={}, companion=companion)


def _ptr_chunks() -> None:
    """The PTR decoder splits files over ~2 GiB of PTRs into chunks: the same code path,
    on a small file with a small chunk size."""
    from failmap_assets.stdf import decode as D
    from failmap_assets.stdf.tables import parse_stdf
    from failmap_synth.stdf_writer import make_wafer_sort_stdf

    with _patched(D, "PTR_CHUNK_BYTES", 4096):
        parse_stdf(make_wafer_sort_stdf(3, dies=60, tests_per_die=20))


def _wide_prr_offsets() -> None:
    """The PRR decoder's int64 string offsets (files of 2 GiB and more), on a small file."""
    from failmap_assets.stdf.decode import prr
    from failmap_assets.stdf.tables import parse_stdf
    from failmap_synth.stdf_writer import make_wafer_sort_stdf

    with _patched(prr, "WIDE_OFFSETS_FROM", 0):
        parse_stdf(make_wafer_sort_stdf(3, dies=20, tests_per_die=3))


def _unknown_records() -> None:
    """A record of a type the record table does not know (type 180, sub 250, kept raw in
    ``generic``): the only records whose REC_TYP / REC_SUB are read back from the file."""
    from failmap_assets.stdf.tables import parse_stdf
    from failmap_synth.stdf_any import every_record_type

    parse_stdf(every_record_type("<") + bytes([2, 0, 180, 250, 1, 2]))


def _reference_decoder() -> None:
    """The table-driven decoder (record interpreter + default-data kernels) that the
    specialised PTR, MPR and FTR kernels are checked against: off a day's path, but
    cached like the rest, so no test process (nor a debugging session) compiles it."""
    from failmap_assets.stdf import decode as D
    from failmap_assets.stdf import tables as T
    from failmap_assets.stdf.scan import detect, scan
    from failmap_assets.stdf.source import open_sources
    from failmap_synth.stdf_any import every_record_type

    for endian in ("<", ">"):
        [src] = open_sources(every_record_type(endian))
        h = detect(src.data)
        idx = scan(src.data, h.big_endian)
        for kind in ("PTR", "MPR", "FTR"):
            ctx = T._Ctx(src, h, idx)
            T._results(ctx, kind, D.walk(src.data, idx, ctx.counts), generic=True)


def _pattern_signature() -> None:
    """The wafer-pattern kernels (edge depth, fail clusters, neighbour counts)."""
    from failmap_assets.patterns.signature import wafer_signature
    from failmap_synth.patterns import pattern_wafer

    w = pattern_wafer("Center", seed=0, index=0)
    wafer_signature(w.grid, w.die_aspect)


@contextlib.contextmanager
def _patched(obj, name: str, value) -> Iterator[None]:
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)
