"""One STDF day, from the bucket to a committed day: list, parse what is new, commit.

The same protocol as the fail-map day (``failmap_day.py``, ``day_commit.py``): every
STDF object of the day folder is one unit of work, done when its (key, etag) is in
the committed units table. A new or re-uploaded file is parsed once; its Parquet
tables are written under names carrying the file version and the run's tag (never a
committed file's name), its wafers become test events, and the commit (one
conditional PUT of the manifest) makes them the day's. Two files holding the same
wafer (a retest file) are two test events of it: the wafer's PNG and JSON show the
latest (by the file's start time, then key), whatever order they were parsed in.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import numpy as np
import polars as pl
import pyarrow as pa

from failmap_assets.discovery.listing import list_objects
from failmap_assets.maps.coordinates import wafer_json
from failmap_assets.maps.render import no_png, render_true_aspect_png, render_wafer_png
from failmap_assets.pipeline import day_state as st
from failmap_assets.pipeline.day_commit import DaySession, inputs_digest
from failmap_assets.pipeline.day_lease import LeaseOptions
from failmap_assets.pipeline.day_totals import reject_totals, unit_totals, wafer_totals
from failmap_assets.pipeline.progress import Progress
from failmap_assets.pipeline.wafer_files import WaferFiles
from failmap_assets.stdf.tables import TABLES, parse_stdf
from failmap_assets.stdf.wafer_maps import wafer_maps
from failmap_assets.storage.day_manifest import DayManifest
from failmap_assets.storage.layout import STDF_SUFFIX, file_id_of, stdf_table_key, table_file
from failmap_assets.storage.object_store import ObjectStore, PreconditionFailed
from failmap_assets.storage.parquet_io import write_table
from failmap_assets.storage.versions import entry_hash
from failmap_assets.wafer.events import mark_latest
from failmap_assets.wafer.rejects import Rejected

PIPELINE = "stdf"
#: Bump when a rule or the layout of an output changes (tables, PNG, JSON): the day assets'
#: code_version, so the UI shows which days an older pipeline made.
OUTPUT_VERSION = 1


@dataclass
class StdfDayReport:
    files_total: int = 0
    files_done: int = 0                # parsed by this run
    files_already_done: int = 0
    files_dropped: int = 0
    files_failed: int = 0              # could not be read (retried by the next run)
    parts: int = 0
    tests: int = 0
    results: int = 0
    bytes_in: int = 0
    seconds: float = 0.0
    waited_s: float = 0.0
    committed: bool = False
    generation: int = 0
    yield_by_wafer: dict[str, float] = field(default_factory=dict)
    totals: dict = field(default_factory=dict)
    manifest: DayManifest | None = None
    events: pl.DataFrame | None = None


def stdf_wafer_token(lot: str | None, wafer: str | None) -> str:
    return f"{lot or 'lot'}_W{wafer or '0'}{STDF_SUFFIX}"


def _start_time(mir: dict) -> datetime | None:
    t = mir.get("start_t") or mir.get("setup_t")
    if isinstance(t, datetime):
        return t.replace(tzinfo=None)
    try:
        return datetime.fromtimestamp(int(t), UTC).replace(tzinfo=None) if t else None
    except (OverflowError, OSError, ValueError, TypeError):
        return None


def run_stdf_day(
    *,
    day: date,
    source: ObjectStore,
    out: ObjectStore,
    retest_rule: str,
    pixels_per_die: int,
    run_id: str,
    force: bool = False,
    workers: int = 2,
    lease: LeaseOptions | None = None,
    log: Callable[[str], None] = print,
) -> StdfDayReport:
    started = time.monotonic()
    report = StdfDayReport()
    with DaySession(out, PIPELINE, day, run_id, lease=lease or LeaseOptions(), log=log,
                    stdf_tables=tuple(TABLES)) as session:
        report.waited_s = session.lease.waited_s
        _StdfDay(session, source, retest_rule, pixels_per_die, force, workers, report, log).run()
    report.seconds = time.monotonic() - started
    return report


class _StdfDay:
    def __init__(self, session: DaySession, source: ObjectStore, retest_rule: str, pixels_per_die: int,
                 force: bool, workers: int, report: StdfDayReport, log) -> None:
        self.session, self.source, self.out, self.day = session, source, session.store, session.day
        self.retest_rule, self.ppd, self.force, self.workers = retest_rule, pixels_per_die, force, workers
        self.report, self.log = report, log
        self.run_id = session.run_id
        self.now = datetime.now(UTC)
        self.lock = threading.Lock()

    def run(self) -> None:
        listing = list_objects(self.source, self.day)
        units = listing.select(
            pl.col("key").alias("unit_key"), pl.col("etag").alias("unit_etag"),
            pl.lit(None, pl.String).alias("partner_key"), pl.lit(None, pl.String).alias("partner_etag"),
        )
        self.report.files_total = units.height
        committed_units = st.conform(self.session.state_table("units"), st.UNITS_SCHEMA)
        committed_events = st.conform(self.session.state_table("events"), st.EVENTS_SCHEMA)
        committed_rejects = st.conform(self.session.state_table("rejects"), st.REJECT_SCHEMA)
        kept, todo, dropped = st.split_units(units, committed_units, force=self.force)
        self.report.files_already_done = kept.height
        self.report.files_dropped = dropped.height
        kept_events = committed_events.join(kept.select("unit_key"), on="unit_key", how="semi")

        manifest = self.session.manifest
        inputs = inputs_digest(listing)
        garbage, stale_files = self.session.out_of_step()
        undrawn = kept_events.filter(pl.col("latest") & ~pl.col("outputs_written")).height
        if manifest is not None and todo.height == 0 and dropped.height == 0 and manifest.inputs == inputs \
                and not garbage and not stale_files and not undrawn:
            self.log(f"{self.day}: nothing new ({kept.height} STDF files committed); no commit")
            self.session.remove_stale_temporaries()
            self.report.totals, self.report.generation = manifest.totals, manifest.generation
            self.report.manifest, self.report.events = manifest, committed_events
            return
        attempts = st.failed_attempts(committed_units)

        writer = WaferFiles(self.session, kept_events, manifest.wafer_files if manifest else {}, stale_files)
        events, rejects, unit_rows = [], [], []
        progress = Progress(todo.height, 5.0, self.log, "STDF files")

        def one(key: str, etag: str) -> None:
            try:
                data = self.source.get(key, if_match=etag)
            except Exception as exc:  # noqa: BLE001 - one unreadable object must not stop the day
                self._failed(key, etag, exc, attempts, rejects, unit_rows)
                return
            ev, rj, row = self._parse_and_write(key, etag, data, writer)
            with self.lock:
                events.extend(ev)
                rejects.extend(rj)
                unit_rows.append(row)
                self.report.bytes_in += len(data)
                self.report.files_done += 1
            progress.tick()

        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="stdf") as pool:
            for fut in [pool.submit(one, r["unit_key"], r["unit_etag"]) for r in todo.iter_rows(named=True)]:
                fut.result()  # output writes are not caught: an unwritable store fails the run

        all_events = mark_latest(pl.concat([kept_events, pl.DataFrame(events, schema=st.EVENTS_SCHEMA)]))
        all_events = writer.settle(all_events)
        all_events = self._redraw(all_events, writer)
        units_now = pl.concat([kept, pl.DataFrame(unit_rows, schema=st.UNITS_SCHEMA)], how="vertical_relaxed")
        all_rejects = st.merge_rejects(committed_rejects, kept["unit_key"],
                                       pl.DataFrame(rejects, schema=st.REJECT_SCHEMA))
        self._commit(listing, units_now.select(list(st.UNITS_SCHEMA)), all_events, all_rejects, writer, inputs)

    # ----- one file ----------------------------------------------------------------------
    def _parse_and_write(self, key: str, etag: str, data: bytes, writer: WaferFiles):
        events: list[dict] = []
        rejects: list[dict] = []
        try:
            parsed = parse_stdf(data, file_id=file_id_of(key), name=key.rsplit("/", 1)[-1])
        except Rejected as exc:
            rejects.append(self._reject(key, etag, exc.reason, exc.detail, "error"))
            return events, rejects, self._unit_row(key, etag, "rejected")
        # Corrupt data inside a V4 file: everything before it is kept and used; the
        # report says at which byte and why the rest was lost.
        rejects.extend(self._reject(key, etag, i.reason, str(i), i.severity) for i in parsed.issues)
        mir = parsed.tables["files"].to_pylist()[0] if parsed.tables["files"].num_rows else {}
        event_time = _start_time(mir)
        fid = f"{file_id_of(key, etag)}-{self.session.tag}"
        files: list[str] = []
        for table in TABLES:
            t = parsed.tables[table]
            if t.num_rows == 0:
                continue
            tkey = stdf_table_key(table, self.day, mir.get("part_typ"), mir.get("test_cod"), fid)
            write_table(self.out, tkey, t.append_column("source_key", pa.repeat(pa.scalar(key, pa.string()), t.num_rows)))
            files.append(tkey)
        t = parsed.tables
        with self.lock:
            self.report.parts += t["parts"].num_rows
            self.report.tests += t["tests"].num_rows
            self.report.results += t["ptr_results"].num_rows + t["mpr_results"].num_rows + t["ftr_results"].num_rows
        try:
            maps = wafer_maps(parsed, retest_rule=self.retest_rule)
        except Exception as exc:  # noqa: BLE001 - a reader bug on one file must not sink the day
            rejects.append(self._reject(key, etag, "internal_error",
                                        f"wafer maps: {type(exc).__name__}: {exc} (a bug in failmap-assets: please report it)",
                                        "error"))
            maps = []
        for wafer in maps:
            token = stdf_wafer_token(wafer.lot, wafer.wafer)
            png, js, aspect = self._draw(wafer, token, key, etag)
            refused = no_png(wafer, self.ppd)
            if refused is not None:
                rejects.append(self._reject(key, etag, refused.reason,
                                            f"wafer {token}: no PNG (tables and JSON kept): {refused}", "warning"))
            writer.offer(token, key, event_time, png, js, aspect_png=aspect)
            events.append(self._event(wafer, token, key, etag, event_time, png is not None))
            if wafer.die_count:
                with self.lock:
                    self.report.yield_by_wafer[token] = float(wafer.is_pass().mean())
        return events, rejects, self._unit_row(key, etag, "ok", files=files, dies=t["parts"].num_rows,
                                               event_time=event_time)

    def _draw(self, wafer, token: str, key: str, etag: str) -> tuple[bytes | None, bytes, bytes | None]:
        """The wafer's contract PNG (None: no PNG), JSON and true-aspect PNG."""
        source = {"a_key": key, "a_etag": etag, "b_key": None, "b_etag": None}
        drawable = no_png(wafer, self.ppd) is None
        png = render_wafer_png(wafer, pixels_per_die=self.ppd) if drawable else None
        aspect = render_true_aspect_png(wafer, pixels_per_die=self.ppd, contract_png=png) if drawable else None
        js = wafer_json(wafer, wafer_token=token, source=source, companion=None, pixels_per_die=self.ppd)
        return png, js, aspect

    def _redraw(self, events: pl.DataFrame, writer: WaferFiles) -> pl.DataFrame:
        stale = events.filter(pl.col("latest") & ~pl.col("outputs_written"))
        if stale.height == 0:
            return events
        self.log(f"{self.day}: redrawing {stale.height} wafer(s) whose latest test event changed")
        for (key, etag), group in stale.group_by(["unit_key", "unit_etag"]):
            tokens = set(group["wafer_token"].to_list())
            drawn = []
            try:
                parsed = parse_stdf(self.source.get(key, if_match=etag), file_id=file_id_of(key),
                                    name=key.rsplit("/", 1)[-1])
                event_time = _start_time(parsed.tables["files"].to_pylist()[0])
                for wafer in wafer_maps(parsed, retest_rule=self.retest_rule):
                    token = stdf_wafer_token(wafer.lot, wafer.wafer)
                    if token in tokens:
                        drawn.append((token, event_time, *self._draw(wafer, token, key, etag)))
            except Exception as exc:  # noqa: BLE001 - the next run draws it (the event stays undrawn)
                self.log(f"could not redraw {key!r}: {type(exc).__name__}: {exc}")
            # Output writes are not caught (as in the fail-map day): an unwritable store
            # fails the run instead of committing the wafer undrawn as if all were well.
            for token, event_time, png, js, aspect in drawn:
                writer.offer(token, key, event_time, png, js, aspect_png=aspect, force=True)
        return writer.settle(events)

    def _event(self, wafer, token, key, etag, event_time, png_ok: bool) -> dict:
        bins, counts = np.unique(wafer.bin, return_counts=True)
        return {
            "wafer_token": token, "unit_key": key, "unit_etag": etag, "event_time": event_time,
            "source_format": wafer.format, "lot": wafer.lot, "wafer": wafer.wafer, "product": wafer.product,
            "step": wafer.step, "tester": wafer.tester, "stime": wafer.stime,
            "dies": wafer.die_count, "pass_dies": int(wafer.is_pass().sum()), "b_only_dies": 0,
            "retested_dies": int(wafer.retest_count.sum()), "with_b": False,
            "bins": [int(b) for b in bins], "bin_counts": [int(c) for c in counts],
            **st.bin_columns(wafer, [int(b) for b in bins]), **st.shape_columns(wafer),
            "latest": True, "outputs_written": False, "png_written": png_ok,
        }

    def _failed(self, key, etag, exc, attempts, rejects, unit_rows) -> None:
        if isinstance(exc, PreconditionFailed):
            reason, outcome, detail = "changed_since_listing", "changed", "replaced after it was listed; the next run reads the new version"
        elif isinstance(exc, FileNotFoundError):
            reason, outcome, detail = "vanished", "vanished", "deleted after it was listed"
        else:
            reason, outcome, detail = "read_error", "read_error", f"{type(exc).__name__}: {exc}"[:500]
        tries = attempts.get((key, etag), 0) + 1
        self.log(f"could not read {key!r}: {detail}")
        with self.lock:
            self.report.files_failed += 1
            rejects.append(self._reject(key, etag, reason, detail, "error" if outcome == "read_error" else "warning"))
            unit_rows.append(self._unit_row(key, etag, outcome, attempts=tries))

    def _reject(self, key, etag, reason, detail, severity) -> dict:
        return {"key": key, "etag": etag, "bucket": "stdf", "member": None, "reason": reason, "detail": detail,
                "line": None, "severity": severity, "unit_key": key, "first_seen": self.now, "run_id": self.run_id}

    def _unit_row(self, key, etag, outcome, *, files=(), dies=0, attempts=0, event_time=None) -> dict:
        return {"unit_key": key, "unit_etag": etag, "partner_key": None, "partner_etag": None, "outcome": outcome,
                "attempts": attempts, "files": list(files), "dies": dies, "event_time": event_time,
                "processed_at": self.now, "run_id": self.run_id}

    # ----- commit ------------------------------------------------------------------------
    def _commit(self, listing: pl.DataFrame, units: pl.DataFrame, events: pl.DataFrame,
                rejects: pl.DataFrame, writer: WaferFiles, inputs: str) -> None:
        s = self.session
        events = events.select(list(st.EVENTS_SCHEMA))
        day_rejects = rejects.drop("unit_key", "run_id").sort(["key", "reason"])
        tables = {
            "stdf_objects": [table_file("stdf_objects", self.day, s.tag, "objects")],
            "stdf_rejects": [table_file("stdf_rejects", self.day, s.tag, "rejects")],
        }
        write_table(self.out, tables["stdf_objects"][0], listing)
        write_table(self.out, tables["stdf_rejects"][0], day_rejects)
        for table in TABLES:
            tables[table] = sorted(f for fs in units["files"].to_list() for f in (fs or [])
                                   if f.startswith(f"parquet/stdf/{table}/"))
        state = {"units": s.write_state("units", units), "events": s.write_state("events", events),
                 "rejects": s.write_state("rejects", rejects)}
        retry = st.open_units(units)
        manifest = DayManifest(
            pipeline=PIPELINE, day=self.day, tables=tables, state=state, wafer_files=writer.files(events),
            seen={entry_hash(k, e) for k, e in listing.select("key", "etag").iter_rows()},
            own={entry_hash(k, e) for k, e in listing.select("key", "etag").iter_rows()},
            open={entry_hash(k, e) for k, e in retry.select("unit_key", "unit_etag").iter_rows()},
            next_due=datetime.min.isoformat(sep=" ") if retry.height else None, inputs=inputs,
            totals={**wafer_totals(events), **unit_totals(units), **reject_totals(day_rejects),
                    "files": listing.height, "parts": int(units.filter(pl.col("outcome") == "ok")["dies"].sum() or 0),
                    # the wafer summaries rebuild the day's maps from its parts by this rule
                    "retest_rule": self.retest_rule},
        )
        s.commit(manifest)
        self.report.committed, self.report.generation, self.report.totals = True, manifest.generation, manifest.totals
        self.report.manifest, self.report.events = manifest, events
        self.log(f"{self.day}: committed STDF generation {manifest.generation}: {units.height} file(s), "
                 f"{events.height} wafer test event(s)")
