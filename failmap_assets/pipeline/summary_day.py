"""One day's wafer and lot summaries, merged retests and stacked lot maps, from both
pipelines' committed days, committed alike.

The summaries read only what the day's fail-map and STDF manifests name (the die
table, the STDF tables, the events and units state), so they describe the committed
day, never a run in progress. They are committed through a manifest of their own
(``state/summaries/date=.../``) by the same protocol as the pipelines
(``day_commit.py``): one writer per day (the lease), the tables written under names
carrying the run's tag, the manifest written last with a compare-and-swap. A crash
before that leaves the previous summaries readable; the next run recomputes and its
commit removes the leftovers.

The commit records which pipeline commits it summarised (``inputs``): a run finding
the same commits (and the same summary rules: version, merge rule, lot-map pixels per
die) has nothing to do. The lot-map PNG / JSON keep fixed names (users open them by
lot) and are recorded with their ETags in ``wafer_files``, like the wafer maps: one a
crashed run redrew is not the recorded version, and the next run draws the day again.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from failmap_assets.pipeline import day_state as st
from failmap_assets.pipeline.day_commit import DaySession
from failmap_assets.pipeline.day_lease import LeaseOptions
from failmap_assets.pipeline.stdf_day import stdf_wafer_token
from failmap_assets.stdf.tables import SCHEMAS as STDF_SCHEMAS
from failmap_assets.stdf.tables import TABLES as STDF_TABLES
from failmap_assets.stdf.wafer_maps import tables_wafer_maps
from failmap_assets.storage.committed_tables import named_table_files
from failmap_assets.storage.day_manifest import DayManifest, read_manifest
from failmap_assets.maps.coordinates import wafer_json
from failmap_assets.maps.render import no_png, render_wafer_png
from failmap_assets.storage.layout import (SUMMARY_PIPELINE, file_id_of, lot_map_key, merged_map_key, state_dir,
                                           table_file)
from failmap_assets.storage.local_store import check_key
from failmap_assets.storage.object_store import ObjectStore, UnsafeKey
from failmap_assets.storage.parquet_io import write_table
from failmap_assets.yield_view import sources
from failmap_assets.yield_view.lot_maps import LOT_MAP, lot_map_json, render_lot_map_png, stacked_lot_maps
from failmap_assets.yield_view.merged import MERGE_RULES, merge_dies, merged_wafers
from failmap_assets.yield_view.merged_maps import merged_maps
from failmap_assets.yield_view.summaries import (SUMMARY_VERSION, WAFER_SUMMARY_COLUMNS, day_figures, lot_summary,
                                                 schema_of, wafer_summary)
from failmap_assets.yield_view.worst_grid import worst_wafers_grid

PIPELINE = SUMMARY_PIPELINE
SOURCE_PIPELINES = ("failmap", "stdf")
#: A source day recommitted (its old files collected) while it was read is read again,
#: this many times in all.
READ_ATTEMPTS = 3
DEFAULT_RETEST_RULE = "last"  # the STDF day's default, for commits that predate recording it
DEFAULT_MERGE_RULE = "last"   # a retested die is what its latest test says, as the wafer's latest map
#: What the summaries read of the die table.
_DIE_COLUMNS = {"wafer_token": pl.String, "a_key": pl.String, "x": pl.Int32, "y": pl.Int32, "bin": pl.Int32,
                "pass": pl.Boolean, "in_a": pl.Boolean}
_MAP_TABLES = ("files", "wafers", "parts", "bins")


@dataclass
class SummaryDayReport:
    committed: bool = False            # this run made a new commit
    generation: int = 0
    seconds: float = 0.0
    waited_s: float = 0.0
    totals: dict | None = None         # the day's figures, from the summaries' commit
    manifest: DayManifest | None = None
    worst_grid: bytes | None = None    # the day's worst wafers drawn small (a PNG for the UI), None: no dies


@dataclass
class SummaryInputs:
    """What one summary is computed from: the shaped frames and the commits they came from."""

    events: pl.DataFrame
    dies: pl.DataFrame
    bin_names: pl.DataFrame
    commits: dict[str, dict]           # pipeline -> generation, run id, committed at (None: no commit)
    rules: dict = field(default_factory=dict)   # the summaries' own rules (merge rule, lot map size)

    def digest(self) -> str:
        return hashlib.sha256(json.dumps({"version": SUMMARY_VERSION, "commits": self.commits, "rules": self.rules},
                                         sort_keys=True).encode()).hexdigest()


def run_summary_day(*, day: date, out: ObjectStore, run_id: str, force: bool = False,
                    merge_rule: str = DEFAULT_MERGE_RULE, pixels_per_die: int = 4,
                    lease: LeaseOptions | None = None, log: Callable[[str], None] = print) -> SummaryDayReport:
    """Bring the day's summaries up to date with the pipelines' commits."""
    if merge_rule not in MERGE_RULES:
        raise ValueError(f"merge_rule must be one of {MERGE_RULES}, not {merge_rule!r}")
    started = time.monotonic()
    report = SummaryDayReport()
    with DaySession(out, PIPELINE, day, run_id, lease=lease or LeaseOptions(), log=log) as session:
        report.waited_s = session.lease.waited_s
        inputs = read_inputs(out, day, log)
        inputs.rules = {"merge_rule": merge_rule, "pixels_per_die": pixels_per_die}
        digest = inputs.digest()
        # a lot map a crashed run redrew is not the one the commit recorded: draw again
        stale = session.out_of_step()[1] if session.manifest is not None else set()
        committed = session.unchanged_commit(digest, force=force or bool(stale))
        if committed is not None:
            log(f"{day}: summaries already describe these commits ({inputs.commits}); no commit")
            report.manifest, report.totals, report.generation = committed, committed.totals, committed.generation
            wafers = committed_wafer_summary(out, committed)
        else:
            wafers = wafer_summary(inputs.events, inputs.dies, inputs.bin_names)
            merged = merge_dies(inputs.events, inputs.dies, merge_rule)
            final = merged_wafers(inputs.events, merged, inputs.dies, merge_rule)
            frames = {"wafer_summary": wafers, "lot_summary": lot_summary(wafers, final), "merged_dies": merged,
                      "merged_wafers": final, "stacked_lot_maps": stacked_lot_maps(merged)}
            tables = {name: [table_file(name, day, session.tag)] for name in frames}
            for name, frame in frames.items():
                write_table(out, tables[name][0], frame)
            session.check()   # still the day's writer before replacing visible files
            lot_maps = write_lot_maps(out, day, frames["stacked_lot_maps"], pixels_per_die)
            merged_files = write_merged_maps(out, day, inputs, merged, merge_rule, pixels_per_die)
            manifest = DayManifest(pipeline=PIPELINE, day=day, tables=tables, inputs=digest,
                                   wafer_files=lot_maps | merged_files, totals={
                **day_figures(wafers, frames["lot_summary"]), "rows": {n: f.height for n, f in frames.items()},
                "lot_maps": len(lot_maps) // 2, "merge_rule": merge_rule,
                "merged_maps": sum(k.endswith(".json") for k in merged_files),
                "summarised": inputs.commits, "summary_version": SUMMARY_VERSION,
            })
            session.commit(manifest)
            log(f"{day}: committed summaries generation {manifest.generation}: {wafers.height} test event(s), "
                f"{frames['lot_summary'].height} lot row(s), {len(lot_maps) // 2} lot map(s)")
            report.committed, report.manifest, report.totals = True, manifest, manifest.totals
            report.generation = manifest.generation
    report.worst_grid = worst_wafers_grid(wafers, inputs.dies)
    report.seconds = time.monotonic() - started
    return report


def committed_wafer_summary(store: ObjectStore, manifest: DayManifest) -> pl.DataFrame:
    """The summaries' committed wafer_summary, read through the manifest."""
    keys = named_table_files(manifest).get("wafer_summary", [])
    return pl.concat([pl.read_parquet(io.BytesIO(store.get(k))) for k in keys]) if keys else pl.DataFrame(
        schema=schema_of(WAFER_SUMMARY_COLUMNS))


def write_lot_maps(out: ObjectStore, day: date, stacked: pl.DataFrame, pixels_per_die: int) -> dict[str, str]:
    """Each lot map's PNG and JSON (fixed names, each put atomically); key -> ETag."""
    written = {}
    for (source, lot, step), rows in stacked.group_by(LOT_MAP, maintain_order=True):
        png = lot_map_key(day, source, lot, step, "png")
        written[png] = out.put(png, render_lot_map_png(rows, pixels_per_die), "image/png").etag
        doc = json.dumps(lot_map_json(rows, pixels_per_die), indent=1).encode()
        key = lot_map_key(day, source, lot, step, "json")
        written[key] = out.put(key, doc, "application/json").etag
    return written


def write_merged_maps(out: ObjectStore, day: date, inputs: SummaryInputs, merged: pl.DataFrame, rule: str,
                      pixels_per_die: int) -> dict[str, str]:
    """Each physical wafer's merged map: PNG (none for a map too large to draw, as for
    any wafer) and JSON, fixed names, each put atomically; key -> ETag."""
    written = {}
    for m in merged_maps(inputs.events, merged, inputs.bin_names, rule):
        source, lot, wafer, step = m.key
        if no_png(m.wafer, pixels_per_die) is None:
            png = merged_map_key(day, source, lot, step, wafer, "png")
            written[png] = out.put(png, render_wafer_png(m.wafer, pixels_per_die), "image/png").etag
        doc = wafer_json(m.wafer, wafer_token=m.wafer_token, source=m.source, companion=None,
                         pixels_per_die=pixels_per_die)
        key = merged_map_key(day, source, lot, step, wafer, "json")
        written[key] = out.put(key, doc, "application/json").etag
    return written


def read_inputs(store: ObjectStore, day: date, log: Callable[[str], None] = print) -> SummaryInputs:
    """The day's committed fail-map and STDF tables, shaped for the summaries; read again
    when a pipeline recommits the day (and collects the files read) meanwhile."""
    for attempt in range(1, READ_ATTEMPTS + 1):
        try:
            return _read_inputs(store, day)
        except FileNotFoundError as exc:
            if attempt == READ_ATTEMPTS:
                raise RuntimeError(f"{day} kept being recommitted while it was summarised ({exc}); run again") from exc
            log(f"{day}: a pipeline recommitted the day while it was read ({exc}); reading its new commit")
    raise AssertionError("unreachable")


def _read_inputs(store: ObjectStore, day: date) -> SummaryInputs:
    events, dies, names, commits = [], [], [], {}
    for pipeline in SOURCE_PIPELINES:
        manifest, _ = read_manifest(store, pipeline, day)
        commits[pipeline] = None if manifest is None else manifest.provenance()
        if manifest is None or "events" not in manifest.state:
            continue
        if pipeline == "failmap":
            ev, di, nm = _failmap_inputs(store, manifest)
        else:
            ev, di, nm = _stdf_inputs(store, manifest)
        events.append(ev)
        dies.append(di)
        names.append(nm)
    return SummaryInputs(
        events=pl.concat(events) if events else pl.DataFrame(schema=sources.EVENTS_SCHEMA),
        dies=pl.concat(dies) if dies else pl.DataFrame(schema=sources.DIES_SCHEMA),
        bin_names=pl.concat(names) if names else pl.DataFrame(schema=sources.BIN_NAMES_SCHEMA),
        commits=commits,
    )


def _state(store: ObjectStore, manifest: DayManifest, kind: str) -> pl.DataFrame:
    key = manifest.state[kind]
    check_key(key)
    if not key.startswith(state_dir(manifest.pipeline, manifest.day)):
        raise UnsafeKey(f"the {manifest.pipeline} manifest of {manifest.day} names {key[:200]!r} as its {kind}, "
                        "outside its state folder")
    schema = {"events": st.EVENTS_SCHEMA, "units": st.UNITS_SCHEMA}[kind]
    return st.conform(pl.read_parquet(io.BytesIO(store.get(key))), schema)


def _failmap_inputs(store: ObjectStore, manifest: DayManifest):
    state = _state(store, manifest, "events")
    events = sources.failmap_events(state, _state(store, manifest, "units"))
    files = named_table_files(manifest).get("failmap_dies", [])
    table = pl.concat([pl.DataFrame(schema=_DIE_COLUMNS)] + [
        pl.read_parquet(io.BytesIO(store.get(k)), columns=list(_DIE_COLUMNS)) for k in files])
    return events, sources.failmap_dies(table), sources.failmap_bin_names(state)


def _stdf_inputs(store: ObjectStore, manifest: DayManifest):
    """Each STDF file's wafer maps rebuilt from its committed tables by the day's retest
    rule: the maps the STDF day drew, die for die."""
    rule = manifest.totals.get("retest_rule", DEFAULT_RETEST_RULE)
    named = named_table_files(manifest, stdf_tables=tuple(STDF_TABLES))
    per_file: dict[str, dict[str, pa.Table]] = {}
    for table in _MAP_TABLES:
        for key in named.get(table, []):
            rows = pq.read_table(io.BytesIO(store.get(key)))
            # one file per STDF object version and table (layout.stdf_table_key)
            for source_key in set(rows["source_key"].to_pylist()):
                per_file.setdefault(source_key, {})[table] = rows.filter(pc.equal(rows["source_key"], source_key))
    events = _state(store, manifest, "events")
    wanted = set(events.select("wafer_token", "unit_key").iter_rows())
    dies, names = [], []
    for source_key, tables in sorted(per_file.items()):
        if "files" not in tables:
            continue
        full = {t: tables.get(t, STDF_SCHEMAS[t].empty_table()) for t in _MAP_TABLES}
        for wafer in tables_wafer_maps(full, file_id=file_id_of(source_key), name=source_key.rsplit("/", 1)[-1],
                                       retest_rule=rule):
            token = stdf_wafer_token(wafer.lot, wafer.wafer)
            if (token, source_key) in wanted:
                d, n = sources.map_dies(sources.STDF, token, source_key, wafer)
                dies.append(d)
                names.append(n)
    files = pl.concat([pl.DataFrame(schema={"source_key": pl.String, "rtst_cod": pl.String})] + [
        pl.from_arrow(t["files"].select(["source_key", "rtst_cod"])) for t in per_file.values() if "files" in t])
    return (sources.stdf_events(events, files),
            pl.concat(dies) if dies else pl.DataFrame(schema=sources.DIES_SCHEMA),
            pl.concat(names) if names else pl.DataFrame(schema=sources.BIN_NAMES_SCHEMA))
