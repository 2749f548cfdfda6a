"""One fail-map day, from the buckets to a committed day: list, pair, process what is new, commit.

The day's outputs are a function of the objects that exist for the day, never of how
runs were split, ordered, run side by side or killed. Every run:

1. takes the day (``day_commit.DaySession``: lease + manifest);
2. lists both buckets (with the neighbour-day edges pairing needs) and pairs them;
3. compares the day's units (an A object with its B partner, by object versions)
   with the committed ones: *kept* units stand, *dropped* ones (deleted, replaced,
   re-paired) lose their rows and outputs, *todo* units are processed;
4. processes todo units on worker threads (download tied to the listed version,
   decompress, parse, join A with B, render), die rows into new part files of
   bounded size; at most ``max_in_flight`` units in memory;
5. decides each wafer's latest test event (``wafer/events.py``) over kept and new
   events; rewrites the parts whose ``latest`` flags or dropped units changed, and
   redraws a wafer whose latest event's PNG / JSON are not the ones on disk;
6. commits: state tables, listings, pairs and rejects under new names, then the
   manifest (one conditional PUT), then removes what the manifest no longer names.

A run with nothing new (the same listings, nothing to process) commits nothing.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from failmap_assets.discovery.listing import list_day_with_neighbours
from failmap_assets.pipeline import day_state as st
from failmap_assets.pipeline.day_commit import DaySession, inputs_digest
from failmap_assets.pipeline.day_lease import LeaseOptions
from failmap_assets.pipeline.day_checks import DIE_ROWS_VERDICT, check_die_rows, die_rows_record
from failmap_assets.pipeline.day_totals import failmap_totals
from failmap_assets.pipeline.memory_budget import MemoryBudget, OverBudget, Reservation
from failmap_assets.pipeline.pairing import UNIT_STATUSES, pair_day
from failmap_assets.pipeline.progress import Progress
from failmap_assets.pipeline.wafer_files import WaferFiles
from failmap_assets.pipeline.unit import ProcessingOptions, Unit, UnitResult, process_unit
from failmap_assets.storage.day_manifest import DayManifest
from failmap_assets.storage.layout import die_part_key, table_file
from failmap_assets.storage.object_store import ObjectStore, PreconditionFailed
from failmap_assets.storage.parquet_io import write_table
from failmap_assets.storage.versions import entry_hash
from failmap_assets.wafer.events import mark_latest
from failmap_assets.wafer.rejects import RejectRow

PIPELINE = "failmap"
#: Bump when a rule or the layout of an output changes (tables, PNG, JSON): the day assets'
#: code_version, so the UI shows which days an older pipeline made.
OUTPUT_VERSION = 1
DIES_TABLE = "failmap_dies"


@dataclass
class RunnerOptions:
    max_workers: int = 16
    max_in_flight: int = 32            # units held in memory at once
    cpu_threads: int = 0               # processing threads; 0 = one per core
    part_rows: int = 250_000           # die rows per Parquet part file (bounds memory)
    previews: int = 4                  # thumbnails for the materialization preview
    progress_every_s: float = 5.0
    force: bool = False
    lease: LeaseOptions = field(default_factory=LeaseOptions)
    memory_budget_bytes: int = 256 << 20  # objects and their decompressed bytes held at once


@dataclass(frozen=True)
class PairingRules:
    window_s: int = 10
    grace_s: int = 600


@dataclass
class DayReport:
    """What one run did, and (``totals``) what the day is after it."""

    units_total: int = 0
    units_done: int = 0                # processed by this run
    units_skipped_done: int = 0        # already committed with the same identity
    units_dropped: int = 0             # committed before, gone now (deleted, replaced, re-paired)
    units_failed: int = 0              # could not be read this run (retried by the next one)
    wafers_redrawn: int = 0            # PNG / JSON redrawn because the latest event changed
    parts_rewritten: int = 0
    bytes_in: int = 0
    seconds: float = 0.0
    waited_s: float = 0.0              # waiting for another run of the day
    committed: bool = False
    generation: int = 0
    part_files: list[str] = field(default_factory=list)
    previews: list[tuple[str, bytes]] = field(default_factory=list)
    download_errors: list[tuple[str, str]] = field(default_factory=list)
    totals: dict = field(default_factory=dict)
    manifest: DayManifest | None = None   # the day's commit after the run
    events: pl.DataFrame | None = None    # the day's test events after the run


def run_day(
    *,
    day: date,
    a_store: ObjectStore,
    b_store: ObjectStore,
    out_store: ObjectStore,
    now: datetime,
    pairing: PairingRules,
    processing: ProcessingOptions,
    options: RunnerOptions,
    run_id: str,
    log: Callable[[str], None] = print,
) -> DayReport:
    """Bring the fail-map day up to date with the buckets (see the module docstring).
    ``now`` is the fab time that decides pending vs a_only."""
    started = time.monotonic()
    report = DayReport()
    with DaySession(out_store, PIPELINE, day, run_id, lease=options.lease, log=log) as session:
        report.waited_s = session.lease.waited_s
        _Day(session, a_store, b_store, now, pairing, processing, options, report, log).run()
    report.seconds = time.monotonic() - started
    return report


class _Day:
    """The work of one run on one day (kept as state so the steps read as steps)."""

    def __init__(self, session: DaySession, a_store, b_store, now, pairing, processing, options, report, log):
        self.session, self.a_store, self.b_store = session, a_store, b_store
        self.out: ObjectStore = session.store
        self.day: date = session.day
        self.now, self.pairing, self.processing, self.options = now, pairing, processing, options
        self.report, self.log = report, log
        self.run_id = session.run_id
        self.processed_at = datetime.now(UTC)

    # ----- 1-3: what the day is, and what is new -------------------------------------------
    def run(self) -> None:
        window = timedelta(seconds=self.pairing.window_s)
        a = list_day_with_neighbours(self.a_store, self.day, before=window)
        b = list_day_with_neighbours(self.b_store, self.day, after=window + timedelta(seconds=self.pairing.grace_s))
        pairs = pair_day(a, b, now=self.now, window_s=self.pairing.window_s, grace_s=self.pairing.grace_s)
        units = _units_of(pairs, a, b)
        self.report.units_total = units.height

        committed_units = st.conform(self.session.state_table("units"), st.UNITS_SCHEMA)
        committed_events = st.conform(self.session.state_table("events"), st.EVENTS_SCHEMA)
        committed_rejects = st.conform(self.session.state_table("rejects"), st.REJECT_SCHEMA)
        kept, todo, dropped = st.split_units(units, committed_units, force=self.options.force)
        self.report.units_skipped_done = kept.height
        self.report.units_dropped = dropped.height
        kept_events = committed_events.join(kept.select("unit_key"), on="unit_key", how="semi")

        inputs = inputs_digest(a, b, pairs)
        manifest = self.session.manifest
        garbage, stale_files = self.session.out_of_step()
        undrawn = kept_events.filter(pl.col("latest") & ~pl.col("outputs_written")).height
        if (manifest is not None and todo.height == 0 and dropped.height == 0 and manifest.inputs == inputs
                and not garbage and not stale_files and not undrawn):
            self.log(f"{self.day}: nothing new ({kept.height} units committed); no commit")
            self.session.remove_stale_temporaries()
            self.report.totals, self.report.generation = manifest.totals, manifest.generation
            self.report.manifest, self.report.events = manifest, committed_events
            return
        if stale_files:
            self.log(f"{self.day}: {len(stale_files)} wafer file(s) were drawn by a run that did not commit: redrawing")
        attempts = st.failed_attempts(committed_units)

        # Each unit's place among its wafer's events (the base wafer token: the key's).
        ranks = units.with_columns(pl.struct(["event_time", "unit_key"]).alias("_r"))
        best = ranks.group_by("wafer_token").agg(
            pl.col("unit_key").sort_by([pl.col("event_time").fill_null(datetime(1, 1, 1)), pl.col("unit_key")]).last()
            .alias("_latest_key"))
        latest_units = set(best["_latest_key"].to_list())

        writer = WaferFiles(self.session, kept_events, manifest.wafer_files if manifest else {}, stale_files)
        new_events, new_rejects, new_units, parts = self._process(todo, latest_units, writer, attempts)

        # ----- 5: the latest event of every wafer, over kept and new events ---------------
        events = mark_latest(pl.concat([kept_events, new_events], how="vertical"))
        events = self._redraw(events, units, writer)
        unit_rows = pl.concat([kept, new_units], how="vertical_relaxed").select(list(st.UNITS_SCHEMA))
        part_files, unit_rows = self._maintain_parts(manifest, committed_events, dropped, events, unit_rows, parts)
        self.report.part_files = part_files

        # ----- 6: commit ---------------------------------------------------------------------
        rejects = st.merge_rejects(committed_rejects, kept["unit_key"], new_rejects)
        self._commit(a, b, pairs, unit_rows, events, rejects, part_files, inputs, writer)

    # ----- 4: processing -----------------------------------------------------------------
    def _process(self, todo: pl.DataFrame, latest_units: set[str], writer: WaferFiles,
                 attempts: dict[tuple[str, str], int]):
        work = [
            Unit(r["unit_key"], r["unit_etag"], r["wafer_token"], r["partner_key"], r["partner_etag"],
                 r["key_skip_reason"], latest=r["unit_key"] in latest_units)
            for r in todo.iter_rows(named=True)
        ]
        meta = {r["unit_key"]: r for r in todo.iter_rows(named=True)}
        events: list[dict] = []
        rejects: list[dict] = []
        unit_rows: list[dict] = []
        if not work:
            return _frame(events, st.EVENTS_SCHEMA), _frame(rejects, st.REJECT_SCHEMA), \
                _frame(unit_rows, st.UNITS_SCHEMA), []
        progress = Progress(len(work), self.options.progress_every_s, self.log)
        self.log(f"{self.day}: {len(work)} unit(s) to process, {self.report.units_skipped_done} already done")

        budget = MemoryBudget(self.options.memory_budget_bytes)
        held: dict[str, Reservation] = {}
        aside: list[tuple[int, Unit]] = []

        def process(i: int, unit: Unit, a_data: bytes, b_data: bytes | None, alone: bool = False) -> UnitResult | None:
            opts = self.processing
            if i < self.options.previews and not opts.thumbnail:
                opts = replace(opts, thumbnail=True)
            try:
                result = process_unit(unit, a_data, b_data, opts, memory=held[unit.a_key])
            except OverBudget as exc:
                if not alone:
                    return None  # set aside: processed alone once the others are done
                result = UnitResult(unit, rejects=[RejectRow(unit.a_key, unit.a_etag, "a", exc.reason, exc.detail)])
            except Exception as exc:  # noqa: BLE001 - a reader bug on one object must not sink the day
                self.log(f"internal error on {unit.a_key!r}: {type(exc).__name__}: {exc}")
                result = UnitResult(unit, rejects=[RejectRow(
                    unit.a_key, unit.a_etag, "a", "internal_error",
                    f"{type(exc).__name__}: {exc} (a bug in failmap-assets: please report it; re-run with force after the fix)",
                )])
            # Output writes are not caught: an unwritable output store fails the run, and
            # the rerun completes the work.
            event_time = meta[unit.a_key]["event_time"]
            for w in result.wafers:
                writer.offer(w.wafer_token, unit.a_key, event_time, w.png, w.json, aspect_png=w.aspect_png,
                             flag=unit.latest)
            return result

        def account(result: UnitResult, nbytes: int, parts: _PartWriter) -> None:
            unit = result.unit
            held.pop(unit.a_key).release()
            self.report.units_done += 1
            self.report.bytes_in += nbytes
            for w in result.wafers:
                if w.thumbnail is not None:   # drawn only for a wafer with dies: labelled with its yield
                    self.report.previews.append((f"{w.wafer_token} {100 * w.pass_count / w.die_count:.2f}%",
                                                 w.thumbnail))
                events.append(_event_row(w, unit, meta[unit.a_key]["event_time"]))
            rejects.extend(_reject_row(r, unit.a_key, self.processed_at, self.run_id) for r in result.rejects)
            errors = [r for r in result.rejects if r.severity == "error" and r.bucket == "a"]
            if result.dies is not None and result.dies.num_rows:
                parts.add(unit.a_key, result.dies)
            unit_rows.append(self._unit_row(meta[unit.a_key], "rejected" if errors and not result.wafers else "ok",
                                            dies=sum(w.die_count for w in result.wafers)))

        def failed(unit: Unit, exc: BaseException) -> None:
            held.pop(unit.a_key).release()
            row = meta[unit.a_key]
            which = "b" if isinstance(exc, _PartnerError) else "a"
            key, etag = (unit.b_key, unit.b_etag) if which == "b" else (unit.a_key, unit.a_etag)
            cause = exc.__cause__ if isinstance(exc, _PartnerError) else exc
            if isinstance(cause, PreconditionFailed):
                reason, outcome = "changed_since_listing", "changed"
                detail = "replaced after it was listed; the next run reads the new version"
            elif isinstance(cause, FileNotFoundError):
                reason, outcome = "vanished", "vanished"
                detail = "deleted after it was listed"
            else:
                reason, outcome = "read_error", "read_error"
                detail = f"{type(cause).__name__}: {cause}"[:500]
            tries = attempts.get((unit.a_key, unit.a_etag), 0) + 1
            self.report.units_failed += 1
            self.report.download_errors.append((key, detail))
            self.log(f"could not read {key!r}: {detail}" + (
                f" (attempt {tries} of {st.MAX_READ_ATTEMPTS})" if outcome == "read_error" else ""))
            rejects.append(_reject_row(RejectRow(key, etag, which, reason, detail,
                                                 severity="error" if outcome == "read_error" else "warning"),
                                       unit.a_key, self.processed_at, self.run_id))
            unit_rows.append(self._unit_row(row, outcome, attempts=tries))

        def download(unit: Unit) -> tuple[bytes, bytes | None]:
            a_data = self.a_store.get(unit.a_key, if_match=unit.a_etag)
            try:
                b_data = self.b_store.get(unit.b_key, if_match=unit.b_etag) if unit.b_key else None
            except Exception as exc:
                raise _PartnerError() from exc
            return a_data, b_data

        cpu_threads = self.options.cpu_threads or max(1, os.cpu_count() or 1)
        # Downloads wait on the network: many threads. Processing is CPU work (kernels and
        # encoders release the GIL, the glue does not): one thread per core.
        with ThreadPoolExecutor(self.options.max_workers, thread_name_prefix="get") as io_pool, \
                ThreadPoolExecutor(cpu_threads, thread_name_prefix="wafer") as cpu_pool, \
                _PartWriter(self.out, self.day, self.session.tag, self.options.part_rows) as parts:
            pending: dict[Future, tuple[str, int, Unit, int]] = {}
            queue = list(enumerate(work))[::-1]   # popped from the end: in order

            def fill(alone: bool = False) -> None:
                """Start downloads while units fit the memory budget by their listed size
                (a unit larger than the budget is rejected unread; one always runs)."""
                while queue and len(pending) < (1 if alone else self.options.max_in_flight):
                    i, unit = queue[-1]
                    size = meta[unit.a_key]["unit_size"] or 0
                    if size > budget.total:
                        queue.pop()
                        too_big = OverBudget(size, budget.total)
                        held[unit.a_key] = budget.reservation(0)
                        account(UnitResult(unit, rejects=[RejectRow(unit.a_key, unit.a_etag, "a", too_big.reason,
                                                                    f"{size} bytes as listed: {too_big.detail}")]),
                                0, parts)
                        progress.tick()
                        continue
                    if not budget.try_take(size, force=not pending):
                        return
                    queue.pop()
                    held[unit.a_key] = budget.reservation(size)
                    pending[io_pool.submit(download, unit)] = ("get", i, unit, 0)

            def drain(alone: bool = False) -> None:
                fill(alone)
                while pending:
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in done:
                        stage, i, unit, nbytes = pending.pop(fut)
                        exc = fut.exception()
                        if exc is not None:
                            if stage != "get":
                                raise exc
                            failed(unit, exc)
                        elif stage == "get":
                            a_data, b_data = fut.result()
                            size = len(a_data) + (len(b_data) if b_data else 0)
                            pending[cpu_pool.submit(process, i, unit, a_data, b_data, alone)] = ("process", i, unit, size)
                            continue
                        elif fut.result() is None:
                            held.pop(unit.a_key).release()
                            aside.append((i, unit))
                            self.log(f"{unit.a_key!r} needs more memory than is free: processed alone at the end")
                            fill(alone)
                            continue
                        else:
                            account(fut.result(), nbytes, parts)
                        progress.tick()
                    fill(alone)

            drain()
            queue.extend(aside[::-1])
            drain(alone=True)
        for row in unit_rows:
            part = parts.part_of.get(row["unit_key"])
            row["files"] = [part] if part else []
        return (_frame(events, st.EVENTS_SCHEMA), _frame(rejects, st.REJECT_SCHEMA),
                _frame(unit_rows, st.UNITS_SCHEMA), parts.written)

    def _unit_row(self, row: dict, outcome: str, *, dies: int = 0, attempts: int = 0) -> dict:
        return {
            "unit_key": row["unit_key"], "unit_etag": row["unit_etag"],
            "partner_key": row["partner_key"], "partner_etag": row["partner_etag"],
            "outcome": outcome, "attempts": attempts, "files": [], "dies": dies,
            "event_time": row["event_time"], "processed_at": self.processed_at, "run_id": self.run_id,
        }

    # ----- 5: redraw wafers whose latest event's outputs are not on disk -----------------
    def _redraw(self, events: pl.DataFrame, units: pl.DataFrame, writer: WaferFiles) -> pl.DataFrame:
        events = writer.settle(events)
        stale = events.filter(pl.col("latest") & ~pl.col("outputs_written"))
        if stale.height == 0:
            return events
        by_unit: dict[str, set[str]] = {}
        for r in stale.select("unit_key", "wafer_token").iter_rows():
            by_unit.setdefault(r[0], set()).add(r[1])
        rows = units.filter(pl.col("unit_key").is_in(list(by_unit)))
        self.log(f"{self.day}: redrawing {stale.height} wafer(s) whose latest test event changed")
        for r in rows.iter_rows(named=True):
            unit = Unit(r["unit_key"], r["unit_etag"], r["wafer_token"], r["partner_key"], r["partner_etag"],
                        r["key_skip_reason"], latest=True)
            try:
                a_data = self.a_store.get(unit.a_key, if_match=unit.a_etag)
                b_data = self.b_store.get(unit.b_key, if_match=unit.b_etag) if unit.b_key else None
                result = process_unit(unit, a_data, b_data, self.processing)
            except Exception as exc:  # noqa: BLE001 - the next run draws it (the event stays undrawn)
                self.log(f"could not redraw {unit.a_key!r}: {type(exc).__name__}: {exc}")
                continue
            for w in result.wafers:
                if w.wafer_token in by_unit[unit.a_key]:
                    writer.offer(w.wafer_token, unit.a_key, r["event_time"], w.png, w.json, aspect_png=w.aspect_png,
                                 force=True)
                    self.report.wafers_redrawn += 1
        return writer.settle(events)

    # ----- 5: die parts: drop rows of dropped units, fix latest flags --------------------
    def _maintain_parts(self, manifest: DayManifest | None, committed_events: pl.DataFrame, dropped: pl.DataFrame,
                        events: pl.DataFrame, unit_rows: pl.DataFrame, new_parts: list[str]):
        old_parts = list(manifest.tables.get(DIES_TABLE, [])) if manifest else []
        flags = events.select("wafer_token", "unit_key", "latest")
        # which flag each part holds now: committed events for old parts, this run's
        # choice (the unit-level estimate) for new ones
        written = pl.concat([
            committed_events.select("wafer_token", "unit_key", pl.col("latest").alias("_was")),
            self._new_flags(unit_rows, events),
        ], how="vertical").unique(["wafer_token", "unit_key"], keep="last")
        changed = flags.join(written, on=["wafer_token", "unit_key"], how="inner").filter(
            pl.col("latest") != pl.col("_was"))["unit_key"].unique().to_list()
        dropped_keys = set(dropped["unit_key"].to_list())
        # parts whose flags are stale (old or new parts), and old parts holding rows of
        # dropped units (a redone unit's new rows are in a new part already)
        part_of_unit = unit_rows.select("unit_key", pl.col("files").list.first().alias("part"))
        affected = set(part_of_unit.filter(pl.col("unit_key").is_in(changed))["part"].drop_nulls().to_list())
        if dropped_keys and manifest is not None:
            committed_units = st.conform(self.session.state_table("units"), st.UNITS_SCHEMA)
            for files in committed_units.filter(pl.col("unit_key").is_in(list(dropped_keys)))["files"].to_list():
                affected.update(f for f in (files or []) if f in old_parts)
        parts = [p for p in old_parts + new_parts if p not in affected]
        moved: dict[str, str] = {}
        number = 1000  # rewritten parts are numbered apart from this run's new parts
        for part in sorted(affected):
            table = pq.read_table(io.BytesIO(self.out.get(part)))
            df = pl.from_arrow(table)
            df = df.filter(~pl.col("a_key").is_in(list(dropped_keys))) if part in old_parts else df
            if df.height == 0:
                continue
            df = (df.drop("latest")
                  .join(flags.rename({"unit_key": "a_key"}), on=["wafer_token", "a_key"], how="left")
                  .with_columns(pl.col("latest").fill_null(False))
                  .select(table.schema.names))
            key = die_part_key(self.day, self.session.tag, number)
            number += 1
            write_table(self.out, key, df.to_arrow().cast(table.schema))
            for unit_key in df["a_key"].unique().to_list():
                moved[unit_key] = key
            parts.append(key)
            self.report.parts_rewritten += 1
        if moved:
            files = [[moved[k]] if k in moved else f
                     for k, f in zip(unit_rows["unit_key"].to_list(), unit_rows["files"].to_list())]
            unit_rows = unit_rows.with_columns(pl.Series("files", files, dtype=pl.List(pl.String)))
        return parts, unit_rows

    def _new_flags(self, unit_rows: pl.DataFrame, events: pl.DataFrame) -> pl.DataFrame:
        """The latest flag this run wrote into its new parts: the unit-level estimate."""
        new = unit_rows.filter(pl.col("run_id") == self.run_id).select("unit_key")
        est = events.join(new, on="unit_key", how="semi").filter(pl.col("_written_flag").is_not_null())
        return est.select("wafer_token", "unit_key", pl.col("_written_flag").alias("_was"))

    # ----- 6: commit -----------------------------------------------------------------------
    def _commit(self, a, b, pairs, unit_rows, events, rejects, part_files, inputs, writer) -> None:
        s = self.session
        tables = {
            "bucket_a_objects": [table_file("bucket_a_objects", self.day, s.tag, "objects")],
            "bucket_b_objects": [table_file("bucket_b_objects", self.day, s.tag, "objects")],
            "failmap_pairs": [table_file("failmap_pairs", self.day, s.tag, "pairs")],
            "failmap_rejects": [table_file("failmap_rejects", self.day, s.tag, "rejects")],
            DIES_TABLE: sorted(part_files),
        }
        write_table(self.out, tables["bucket_a_objects"][0], a)
        write_table(self.out, tables["bucket_b_objects"][0], b)
        write_table(self.out, tables["failmap_pairs"][0], pairs)
        day_rejects = failmap_rejects_table(rejects, b)
        write_table(self.out, tables["failmap_rejects"][0], day_rejects)
        events = events.select(list(st.EVENTS_SCHEMA))
        state = {
            "units": s.write_state("units", unit_rows),
            "events": s.write_state("events", events),
            "rejects": s.write_state("rejects", rejects),
        }
        wafer_files = writer.files(events)
        seen, open_, due = _versions(a, b, pairs, unit_rows, self.pairing)
        own = {entry_hash(k, e) for df in (a, b)
               for k, e in df.filter(pl.col("in_partition")).select("key", "etag").iter_rows()}
        manifest = DayManifest(
            pipeline=PIPELINE, day=self.day, tables=tables, state=state, wafer_files=wafer_files,
            seen=seen, own=own, open=open_, next_due=due, inputs=inputs,
            totals=failmap_totals(events, unit_rows, day_rejects, pairs, a, b),
        )
        # checked now, from the parts as stored, and recorded with the commit: later runs
        # with nothing to do report it without reading the die table (day_checks)
        manifest.totals[DIE_ROWS_VERDICT] = die_rows_record(check_die_rows(self.out, manifest, events))
        s.commit(manifest)
        self.report.committed = True
        self.report.generation = manifest.generation
        self.report.totals = manifest.totals
        self.report.manifest, self.report.events = manifest, events
        self.log(f"{self.day}: committed generation {manifest.generation}: {len(part_files)} part file(s), "
                 f"{events.height} test event(s) of {events['wafer_token'].n_unique()} wafer(s)")


class _PartnerError(Exception):
    """The B partner could not be read (the cause says why)."""


def _units_of(pairs: pl.DataFrame, a: pl.DataFrame, b: pl.DataFrame) -> pl.DataFrame:
    """The day's units of work, by identity, with what processing needs."""
    units = pairs.filter(pl.col("status").is_in(UNIT_STATUSES))
    if "key_skip_reason" not in units.columns:
        units = units.with_columns(pl.lit(None, pl.String).alias("key_skip_reason"))
    if "a_time" not in units.columns:
        units = units.with_columns(pl.lit(None, pl.Datetime("us")).alias("a_time"))
    a_size = a.select(pl.col("key").alias("a_key"), pl.col("etag").alias("a_etag"), pl.col("size").alias("_a_size"))
    b_size = b.select(pl.col("key").alias("b_key"), pl.col("etag").alias("b_etag"), pl.col("size").alias("_b_size"))
    units = (units.join(a_size.unique(["a_key", "a_etag"]), on=["a_key", "a_etag"], how="left")
             .join(b_size.unique(["b_key", "b_etag"]), on=["b_key", "b_etag"], how="left"))
    return units.select(
        pl.col("a_key").alias("unit_key"),
        pl.col("a_etag").alias("unit_etag"),
        pl.col("b_key").alias("partner_key"),
        pl.col("b_etag").alias("partner_etag"),
        "wafer_token",
        "key_skip_reason",
        pl.col("a_time").cast(pl.Datetime("us")).alias("event_time"),
        # what holding the unit's objects costs: the memory budget admits units by it
        (pl.col("_a_size").fill_null(0) + pl.col("_b_size").fill_null(0)).alias("unit_size"),
    )


def _event_row(w, unit: Unit, event_time: datetime | None) -> dict:
    wafer = w.wafer
    bins = sorted(w.bins.items())
    return {
        "wafer_token": w.wafer_token, "unit_key": unit.a_key, "unit_etag": unit.a_etag, "event_time": event_time,
        "source_format": wafer.format if wafer else None, "lot": wafer.lot if wafer else None,
        "wafer": wafer.wafer if wafer else None, "product": wafer.product if wafer else None,
        "step": wafer.step if wafer else None, "tester": wafer.tester if wafer else None,
        "stime": wafer.stime if wafer else None,
        "dies": w.die_count, "pass_dies": w.pass_count, "b_only_dies": w.b_only_dies, "retested_dies": w.retests,
        "with_b": w.with_b, "bins": [k for k, _ in bins], "bin_counts": [v for _, v in bins],
        **st.bin_columns(wafer, [k for k, _ in bins]), **st.shape_columns(wafer),
        "latest": unit.latest, "outputs_written": False, "png_written": w.drawable,
    }


def _reject_row(r: RejectRow, unit_key: str, now: datetime, run_id: str) -> dict:
    return {**r.__dict__, "unit_key": unit_key, "first_seen": now, "run_id": run_id}


def _frame(rows: list[dict], schema: dict) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=schema)


def failmap_rejects_table(rejects: pl.DataFrame, b_listing: pl.DataFrame) -> pl.DataFrame:
    """The day's failmap_rejects: what units reported, plus B keys outside the grammar
    (never read: listed as skipped). A keys outside it got their verdict by content."""
    skipped = b_listing.filter(pl.col("in_partition") & ~pl.col("valid")).select(
        "key", "etag", pl.lit("b").alias("bucket"), pl.lit(None, pl.String).alias("member"),
        pl.lit("not_a_failmap_key").alias("reason"), pl.col("skip_reason").alias("detail"),
        pl.lit(None, pl.Int64).alias("line"), pl.lit("warning").alias("severity"),
        pl.col("last_modified").alias("first_seen"),
    )
    units = rejects.drop("unit_key", "run_id")
    return pl.concat([units, skipped], how="diagonal_relaxed").sort(["key", "member", "reason"], nulls_last=True)


def _versions(a: pl.DataFrame, b: pl.DataFrame, pairs: pl.DataFrame, unit_rows: pl.DataFrame,
              pairing: PairingRules) -> tuple[set[int], set[int], str | None]:
    """Object versions the commit accounted for; those that still need a run (pending
    A files, ``day_state.open_units``); and when the first of them falls due (fab time)."""
    seen = {entry_hash(k, e) for df in (a, b) for k, e in df.select("key", "etag").iter_rows()}
    pending = pairs.filter(pl.col("status") == "pending")
    open_ = {entry_hash(k, e) for k, e in pending.select("a_key", "a_etag").iter_rows()}
    retry = st.open_units(unit_rows)
    for k, e, pk, pe in retry.select("unit_key", "unit_etag", "partner_key", "partner_etag").iter_rows():
        open_.add(entry_hash(k, e))
        if pk:
            open_.add(entry_hash(pk, pe))
    due = None
    if pending.height:
        first = pending["a_time"].min()
        due = (first + timedelta(seconds=pairing.window_s + pairing.grace_s)).isoformat(sep=" ")
    if retry.height:  # due at once: the next reconcile check runs the day again
        due = datetime.min.isoformat(sep=" ")
    return seen, open_, due


class _PartWriter:
    """Buffers die rows and writes them as Parquet part files of bounded size.

    Encoding and uploading a part runs on its own thread (pyarrow and the upload
    release the GIL), so the dispatching thread keeps downloads and processing fed
    meanwhile. At most one part is being written while the next one fills: memory
    stays bounded by two parts. A part counts as written (``written``, ``part_of``)
    only once its upload has finished; a failed write fails the run at the next
    ``flush`` or at ``close``.
    """

    def __init__(self, store: ObjectStore, day: date, tag: str, part_rows: int):
        self.store, self.day, self.tag, self.part_rows = store, day, tag, part_rows
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
        key = die_part_key(self.day, self.tag, self._parts)
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
