"""Run a day's units: parallel downloads and processing, bounded memory, atomic outputs.

Each unit (A object + optional B partner) is downloaded, decompressed, parsed,
rendered and its PNG / JSON written on a worker thread; the main thread gathers die
rows into Parquet part files of bounded size and keeps the ledger. At most
``max_in_flight`` units are held in memory at once, whatever the size of the day.

Crash safety: PNG and JSON are single atomic PUTs; die rows go to new part files
named after the run; the ledger (which names the part files) is written last. A run
starts by deleting part files no ledger names (left by a crashed run), so a crash
can leave neither half files nor duplicate rows, and the rerun completes the work.
"""

from __future__ import annotations

import io
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timezone

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from failmap_assets.pipeline import processed_ledger as ledger_mod
from failmap_assets.storage.layout import json_key, png_key, table_dir
from failmap_assets.storage.parquet_io import write_table
from failmap_assets.storage.object_store import ObjectStore
from failmap_assets.pipeline.unit import ProcessingOptions, Unit, UnitResult, process_unit
from failmap_assets.wafer.rejects import RejectRow

DIES_TABLE = "failmap_dies"
PIPELINE = "failmap"


@dataclass
class DayReport:
    units_total: int = 0
    units_done: int = 0
    units_skipped_done: int = 0        # already in the ledger with the same identity
    wafers: int = 0
    dies: int = 0
    pass_dies: int = 0
    b_only_dies: int = 0
    retests: int = 0
    wafers_with_b: int = 0
    bytes_in: int = 0
    seconds: float = 0.0
    part_files: list[str] = field(default_factory=list)
    rejects: list[tuple[str, RejectRow]] = field(default_factory=list)   # (reporting unit's a_key, reject)
    bins: Counter = field(default_factory=Counter)
    previews: list[tuple[str, bytes]] = field(default_factory=list)
    download_errors: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class RunnerOptions:
    max_workers: int = 16
    max_in_flight: int = 32            # units held in memory at once
    cpu_threads: int = 0               # processing threads; 0 = one per core
    part_rows: int = 250_000           # die rows per Parquet part file (bounds memory)
    previews: int = 4                  # thumbnails for the materialization preview
    progress_every_s: float = 5.0
    force: bool = False


def run_day(
    units: pl.DataFrame,
    *,
    day: date,
    a_store: ObjectStore,
    b_store: ObjectStore,
    out_store: ObjectStore,
    processing: ProcessingOptions,
    options: RunnerOptions,
    run_id: str,
    log: Callable[[str], None] = print,
) -> DayReport:
    """Process the units (rows with a_key, a_etag, wafer_token, b_key, b_etag) not yet done."""
    started = time.monotonic()
    report = DayReport(units_total=units.height)
    ledger = ledger_mod.load(out_store, PIPELINE, day)
    _collect_garbage(out_store, day, ledger, log)
    todo = ledger_mod.units_to_do(units, ledger, force=options.force)
    report.units_skipped_done = units.height - todo.height
    if todo.height == 0:
        report.seconds = time.monotonic() - started
        return report

    if "key_skip_reason" not in todo.columns:
        todo = todo.with_columns(pl.lit(None, pl.String).alias("key_skip_reason"))
    work = [
        Unit(r["a_key"], r["a_etag"], r["wafer_token"], r["b_key"], r["b_etag"], r["key_skip_reason"])
        for r in todo.select("a_key", "a_etag", "wafer_token", "b_key", "b_etag", "key_skip_reason").iter_rows(named=True)
    ]
    ledger_rows: list[dict] = []
    now = datetime.now(timezone.utc)
    progress = _Progress(len(work), options.progress_every_s, log)

    def download(unit: Unit) -> tuple[bytes, bytes | None]:
        a_data = a_store.get(unit.a_key)
        return a_data, (b_store.get(unit.b_key) if unit.b_key else None)

    def process(i: int, unit: Unit, a_data: bytes, b_data: bytes | None) -> UnitResult:
        opts = processing
        if i < options.previews and not processing.thumbnail:
            opts = replace(processing, thumbnail=True)
        try:
            result = process_unit(unit, a_data, b_data, opts)
        except Exception as exc:  # noqa: BLE001 - a reader bug on one object must not sink the day
            log(f"internal error on {unit.a_key!r}: {type(exc).__name__}: {exc}")
            result = UnitResult(unit, rejects=[RejectRow(
                unit.a_key, unit.a_etag, "a", "internal_error",
                f"{type(exc).__name__}: {exc} (a bug in failmap-assets: please report it; re-run with force after the fix)",
            )])
        # Output writes are not caught: an unwritable output store fails the run, and the
        # rerun completes the work.
        for w in result.wafers:
            if w.png is not None:  # None: too large for a PNG (a png_too_large warning)
                out_store.put(png_key(day, w.wafer_token), w.png, content_type="image/png")
            out_store.put(json_key(day, w.wafer_token), w.json, content_type="application/json")
        return result

    # Downloads wait on the network: many threads. Processing is CPU work (kernels and
    # encoders release the GIL, the glue does not): one thread per core, more only thrash.
    cpu_threads = options.cpu_threads or max(1, os.cpu_count() or 1)
    with ThreadPoolExecutor(options.max_workers, thread_name_prefix="get") as io_pool, \
            ThreadPoolExecutor(cpu_threads, thread_name_prefix="wafer") as cpu_pool, \
            _PartWriter(out_store, day, run_id, options.part_rows) as writer:
        pending: dict[Future, tuple[str, int, Unit, int]] = {}
        queue = iter(enumerate(work))

        def start_next() -> None:
            nxt = next(queue, None)
            if nxt is not None:
                pending[io_pool.submit(download, nxt[1])] = ("get", nxt[0], nxt[1], 0)

        for _ in range(options.max_in_flight):
            start_next()
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                stage, i, unit, nbytes = pending.pop(fut)
                if fut.exception() is not None:
                    exc = fut.exception()
                    if stage == "get":
                        report.download_errors.append((unit.a_key, f"{type(exc).__name__}: {exc}"))
                        log(f"could not read {unit.a_key!r} (or its partner): {type(exc).__name__}: {exc}; it stays to do")
                        progress.tick()
                        start_next()
                        continue
                    raise exc
                if stage == "get":
                    a_data, b_data = fut.result()
                    size = len(a_data) + (len(b_data) if b_data else 0)
                    pending[cpu_pool.submit(process, i, unit, a_data, b_data)] = ("process", i, unit, size)
                else:
                    _account(report, fut.result(), nbytes, ledger_rows, writer, now, run_id, day)
                    progress.tick()
                    start_next()
    report.part_files = writer.written

    # The ledger names each unit's part file only once that file exists.
    for row in ledger_rows:
        row["part_file"] = writer.part_of.get(row["a_key"])
    new_ledger = pl.DataFrame(ledger_rows, schema=ledger_mod.LEDGER_SCHEMA)
    redone = new_ledger["a_key"].to_list()
    _drop_superseded_rows(out_store, ledger, redone, log)
    for stale in ledger_mod.stale_outputs(ledger, new_ledger):
        log(f"removing {stale}: its source was re-uploaded and no longer produces it")
        out_store.delete(stale)
    ledger_mod.save(out_store, PIPELINE, day, ledger_mod.merge(ledger, new_ledger))

    old_rejects = ledger_mod.load_rejects(out_store, PIPELINE, day)
    new_rejects = pl.DataFrame(
        [{**r.__dict__, "a_key": a_key, "first_seen": now, "run_id": run_id} for a_key, r in report.rejects],
        schema=ledger_mod.REJECT_SCHEMA,
    )
    ledger_mod.save_rejects(out_store, PIPELINE, day, ledger_mod.merge_rejects(old_rejects, new_rejects, redone))
    report.seconds = time.monotonic() - started
    return report


def _account(report: DayReport, result: UnitResult, nbytes: int, ledger_rows, writer, now, run_id, day) -> None:
    unit = result.unit
    report.units_done += 1
    report.bytes_in += nbytes
    report.rejects.extend((unit.a_key, r) for r in result.rejects)
    for w in result.wafers:
        report.wafers += 1
        report.dies += w.die_count
        report.pass_dies += w.pass_count
        report.b_only_dies += w.b_only_dies
        report.retests += w.retests
        report.bins.update(w.bins)
        if w.thumbnail is not None:
            report.previews.append((w.wafer_token, w.thumbnail))
    if result.b_used:
        report.wafers_with_b += len(result.wafers)
    errors = [r for r in result.rejects if r.severity == "error" and r.bucket == "a"]
    if result.dies is not None and result.dies.num_rows:
        writer.add(unit.a_key, result.dies)
    ledger_rows.append(
        {
            "a_key": unit.a_key,
            "a_etag": unit.a_etag,
            # A rejected B partner is recorded as such; the unit's identity still names it.
            "b_key": unit.b_key,
            "b_etag": unit.b_etag,
            "outcome": "rejected" if errors and not result.wafers else "ok",
            "part_file": None,
            "wafer_tokens": [w.wafer_token for w in result.wafers],
            # A wafer too large for a PNG has none (its JSON says so): not an output.
            "outputs": [k for w in result.wafers for k in (png_key(day, w.wafer_token), json_key(day, w.wafer_token))
                        if w.png is not None or k != png_key(day, w.wafer_token)],
            "dies": sum(w.die_count for w in result.wafers),
            "processed_at": now,
            "run_id": run_id,
        }
    )


class _PartWriter:
    """Buffers die rows and writes them as Parquet part files of bounded size.

    Encoding and uploading a part runs on its own thread (pyarrow and the upload
    release the GIL), so the dispatching thread keeps downloads and processing fed
    meanwhile. At most one part is being written while the next one fills: memory
    stays bounded by two parts. A part counts as written (``written``, ``part_of``)
    only once its upload has finished; a failed write fails the run at the next
    ``flush`` or at ``close``.
    """

    def __init__(self, store: ObjectStore, day: date, run_id: str, part_rows: int):
        self.store, self.day, self.run_id, self.part_rows = store, day, run_id, part_rows
        self.buffer: list[tuple[str, pa.Table]] = []
        self.rows = 0
        self.written: list[str] = []
        self.part_of: dict[str, str] = {}
        self._parts = 0
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="part")
        self._writing: Future | None = None

    def add(self, a_key: str, table: pa.Table) -> None:
        self.buffer.append((a_key, table))
        self.rows += table.num_rows
        if self.rows >= self.part_rows:
            self.flush()

    def flush(self) -> None:
        self._wait()
        if not self.buffer:
            return
        key = f"{table_dir(DIES_TABLE, self.day)}part-{self.run_id}-{self._parts:04d}.parquet"
        self._parts += 1
        buffer, self.buffer, self.rows = self.buffer, [], 0
        self._writing = self._pool.submit(self._write, key, buffer)

    def _write(self, key: str, buffer: list[tuple[str, pa.Table]]) -> tuple[str, list[str]]:
        write_table(self.store, key, pa.concat_tables([t for _, t in buffer]))
        return key, [a_key for a_key, _ in buffer]

    def _wait(self) -> None:
        if self._writing is not None:
            future, self._writing = self._writing, None
            key, a_keys = future.result()
            self.written.append(key)
            self.part_of.update(dict.fromkeys(a_keys, key))

    def __enter__(self) -> _PartWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        """On success write what is buffered and wait for every part to be stored; on an
        error drop the buffer (the rerun redoes those units) and wait for the write in flight."""
        try:
            if exc_type is None:
                self.flush()
                self._wait()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)


def _collect_garbage(store: ObjectStore, day: date, ledger: pl.DataFrame, log) -> None:
    named = set(ledger["part_file"].drop_nulls().to_list())
    for obj in store.list(table_dir(DIES_TABLE, day)):
        if obj.key.endswith(".parquet") and obj.key not in named:
            log(f"removing {obj.key}: written by a run that did not finish")
            store.delete(obj.key)


def _drop_superseded_rows(store: ObjectStore, ledger: pl.DataFrame, redone: list[str], log) -> None:
    """Rewrite earlier part files without the rows of units this run redid."""
    stale = ledger.filter(pl.col("a_key").is_in(redone) & pl.col("part_file").is_not_null())
    for part in stale["part_file"].unique().to_list():
        keys = stale.filter(pl.col("part_file") == part)["a_key"].to_list()
        table = pq.read_table(io.BytesIO(store.get(part)))
        kept = table.filter(pa.compute.invert(pa.compute.is_in(table["a_key"], pa.array(keys))))
        write_table(store, part, kept)
        log(f"replaced {len(keys)} reprocessed unit(s) in {part}")


class _Progress:
    """done / total, rate and ETA in the run log every few seconds."""

    def __init__(self, total: int, every_s: float, log):
        self.total, self.every_s, self.log = total, every_s, log
        self.done = 0
        self.start = self.last = time.monotonic()
        self.lock = threading.Lock()

    def tick(self) -> None:
        with self.lock:
            self.done += 1
            now = time.monotonic()
            if now - self.last < self.every_s and self.done != self.total:
                return
            self.last = now
            elapsed = max(now - self.start, 1e-9)
            rate = self.done / elapsed
            eta = (self.total - self.done) / rate if rate else float("inf")
            self.log(f"progress {self.done}/{self.total} units, {rate:.1f}/s, ETA {eta:.0f} s")
