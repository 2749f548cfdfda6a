"""bucket_a_sensor, bucket_b_sensor, stdf_sensor: Dagster wiring of the listing layer.

Per tick and sensor (see ``listing.py`` for the listing, ``ledger.py`` for the ledger
and why it lives in the instance's key-value table):

* at most one RunRequest per affected day partition (``partition_key="YYYY-MM-DD"``,
  the day folder of the keys), at most ``FAILMAP_SENSOR_MAX_RUNS_PER_TICK`` of them,
  oldest day first;
* ``run_key = "<sensor>:<YYYY-MM-DD>:g<gen>:<digest>"``: ``gen`` counts the sensor's
  ticks that requested runs (it is in the cursor), ``digest`` is a SHA-256 of the sorted
  (key, etag) set the run covers. A tick evaluated twice from the same cursor yields
  the same keys (Dagster drops the duplicate); a later tick never repeats one, even
  when an identical object comes back after a delete;
* tags ``failmap/objects_count`` and ``failmap/objects`` (the first keys, truncated)
  say what triggered the run; the complete (key, etag) list is the run's *manifest*
  in the instance key-value table, named by the ``failmap/manifest`` tag (tags are
  copied into every tick row and run row, so a full list there would be kept
  several times over and could hit a deployment's run-size cap);
* across midnight, a fail map also re-runs its neighbour day (``failmap/partners_*``
  tags list those objects; they are not counted as the neighbour day's own): a B
  written within the pairing window after midnight re-runs the *previous* day, whose
  A it may partner; an A written within the window before midnight re-runs the
  *next* day, whose run lists it to tell a claimed B from an orphan;
* nothing new: a SkipReason, no run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from dagster import (
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from failmap_assets.defs.jobs import failmap_day_job, stdf_day_job
from failmap_assets.defs.owners import TEST_ENGINEERING
from failmap_assets.defs.partitions import daily_partitions
from failmap_assets.discovery.cursor import SensorCursor, TickPlan, finalize, scan
from failmap_assets.discovery.seen_ledger import LedgerStore, Manifest, objects_digest
from failmap_assets.pipeline.pairing import partner_days
from failmap_assets.resources import FailmapRules, FailmapStorage, SensorRules
from failmap_assets.settings import Settings
from failmap_assets.storage.day_manifest import read_manifest
from failmap_assets.storage.object_store import ObjectInfo, ObjectStore
from failmap_assets.storage.versions import entry_hash

TAG_PREFIX = "failmap/"
KV_NAMESPACE = "failmap/sensors"



def interval_seconds() -> int:
    """The sensors' minimum interval: Dagster needs it when the code location loads."""
    return Settings.from_env().sensor_interval_seconds


def current_time() -> datetime:
    """The sensors' clock (tests replace it to simulate days passing)."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class BucketSpec:
    name: str
    store: Callable[[FailmapStorage], ObjectStore]
    partners: str = ""  # "a" / "b": fail-map side whose files also re-run the day across midnight
    job: object = None
    description: str = ""
    pipeline: str = "failmap"  # whose day commits say what is already processed


def _truncated_list(keys: list[str], limit: int) -> str:
    """``"k1, k2 ... (+N more)"`` within ``limit`` characters."""
    full = ", ".join(keys)
    if len(full) <= limit:
        return full
    out: list[str] = []
    for i, key in enumerate(keys):
        if len(", ".join([*out, key]) + f" ... (+{len(keys) - i - 1} more)") > limit:
            break
        out.append(key)
    if not out:
        return f"({len(keys)} objects: see the manifest)"
    return ", ".join(out) + f" ... (+{len(keys) - len(out)} more)"


def build_run_requests(
    spec: BucketSpec, plan: TickPlan, gen: int, ledger_store: LedgerStore, tag_list_chars: int
) -> list[RunRequest]:
    """One RunRequest per day of the plan, oldest first; stages each run's manifest."""
    requests = []
    for day in plan.run_days:
        objects: list[ObjectInfo] = plan.new_objects.get(day, [])
        partners = plan.partners.get(day, [])
        entries = [(o.key, o.etag) for o in objects]
        partner_entries = [(o.key, o.etag, f"{own:%Y-%m-%d}") for o, own in partners]
        digest = objects_digest(entries + [("partner:" + k, e) for k, e, _ in partner_entries])
        run_key = f"{spec.name}:{day:%Y-%m-%d}:g{gen}:{digest[:16]}"
        manifest_key = ledger_store.stage_manifest(
            run_key,
            Manifest(sensor=spec.name, day=f"{day:%Y-%m-%d}", gen=gen, objects=entries, partners=partner_entries),
        )
        tags = {
            f"{TAG_PREFIX}trigger": spec.name,
            f"{TAG_PREFIX}objects_count": str(len(entries)),
            f"{TAG_PREFIX}objects": _truncated_list([k for k, _ in entries], tag_list_chars),
            f"{TAG_PREFIX}objects_digest": digest[:32],
            f"{TAG_PREFIX}manifest": manifest_key,
            f"{TAG_PREFIX}sensor_gen": str(gen),
            f"{TAG_PREFIX}day": f"{spec.pipeline}:{day:%Y-%m-%d}",
        }
        if partner_entries:
            tags[f"{TAG_PREFIX}partners_count"] = str(len(partner_entries))
            tags[f"{TAG_PREFIX}partners"] = _truncated_list([k for k, _, _ in partner_entries], tag_list_chars)
        requests.append(RunRequest(run_key=run_key, partition_key=f"{day:%Y-%m-%d}", tags=tags))
    return requests


def evaluate(context: SensorEvaluationContext, spec: BucketSpec, storage: FailmapStorage,
             failmap_rules: FailmapRules, sensor_rules: SensorRules) -> SensorResult | SkipReason:
    t0 = time.monotonic()
    now = current_time()
    today = now.astimezone(ZoneInfo(daily_partitions.timezone)).date()  # the fab day
    # end_offset=1: today's partition exists; 0 would mean only finished days
    last_day = min(today, today + timedelta(days=daily_partitions.end_offset - 1))
    first_day = daily_partitions.start.date()
    if last_day < first_day:
        return SkipReason(f"no daily partition exists yet on fab day {today}")

    previous = SensorCursor.decode(context.cursor)
    ledger_store = LedgerStore(context.instance.daemon_cursor_storage, f"{KV_NAMESPACE}/{spec.name}")
    ledger_store.prefetch((d, c.ledger) for d, c in previous.days.items())
    neighbours = None
    if spec.partners:
        def neighbours(obj: ObjectInfo, day: date) -> list[date]:
            return partner_days(spec.partners, obj.key, day, failmap_rules.window_s)
    plan = scan(
        spec.store(storage),
        previous,
        today=today,
        first_day=first_day,
        lookback_days=sensor_rules.lookback_days,
        max_objects=sensor_rules.max_objects_per_tick,
        max_runs=sensor_rules.max_runs_per_tick,
        time_budget=sensor_rules.time_budget_seconds,
        load_ledger=ledger_store.load,
        partner_days=neighbours,
        last_day=last_day,
    )
    covered = drop_covered(plan, storage.output_store(), spec.pipeline)
    has_runs = bool(plan.run_days)
    nxt = finalize(plan, previous, ledger_store, bump_gen=has_runs)
    requests = build_run_requests(spec, plan, nxt.gen, ledger_store, sensor_rules.tag_list_chars) if has_runs else []
    # Ledgers and manifests first, then the cursor that references them (committed by
    # Dagster together with the run requests); a crash in between leaves the old cursor.
    written = ledger_store.flush()
    encoded = nxt.encode()

    stats = plan.stats
    partner_count = sum(len(v) for v in plan.partners.values())
    context.log.info(
        f"{spec.name} ({today:%Y-%m-%d} fab day): {stats.summary()}; "
        + (f"{covered} already processed by another run; " if covered else "")
        + f"{len(requests)} run requests"
        + (f" (+{partner_count} neighbour-day partner triggers across midnight)" if partner_count else "")
        + f"; {written} ledger values written; cursor {len(encoded)} chars; tick {time.monotonic() - t0:.3f}s"
    )
    if requests:
        return SensorResult(run_requests=requests, cursor=encoded)
    reason = f"nothing new ({stats.listed} objects listed in {stats.days_visited} open day folders)"
    if stats.stopped_by:
        reason += f"; stopped by the {stats.stopped_by} cap"
    if encoded != (context.cursor or SensorCursor().encode()):
        return SensorResult(skip_reason=reason, cursor=encoded)
    return SkipReason(reason)


def drop_covered(plan: TickPlan, out: ObjectStore, pipeline: str) -> int:
    """Leave out of the plan the objects a committed run of their day has already
    processed (a backfill, a CLI run, the other sensor's run): a day whose new objects
    are all covered gets no run. One manifest read per day with new objects."""
    dropped = 0
    for day in plan.run_days:
        manifest, _ = read_manifest(out, pipeline, day)
        if manifest is None:
            continue
        objects = plan.new_objects.get(day, [])
        keep = [o for o in objects if manifest.needs_run(entry_hash(o.key, o.etag))]
        partners = [(o, own) for o, own in plan.partners.get(day, []) if manifest.needs_run(entry_hash(o.key, o.etag))]
        dropped += len(objects) - len(keep)
        for table, rows in ((plan.new_objects, keep), (plan.partners, partners)):
            if rows:
                table[day] = rows
            else:
                table.pop(day, None)
    return dropped


def bucket_sensor(spec: BucketSpec) -> SensorDefinition:
    """The Dagster sensor of one bucket: every tick is ``evaluate``."""

    @sensor(name=spec.name, job=spec.job, minimum_interval_seconds=interval_seconds(), description=spec.description,
            owners=TEST_ENGINEERING)
    def _sensor(context: SensorEvaluationContext, storage: FailmapStorage, failmap_rules: FailmapRules,
                sensor_rules: SensorRules):
        return evaluate(context, spec, storage, failmap_rules, sensor_rules)

    return _sensor


SPECS = (
    BucketSpec(
        "bucket_a_sensor", lambda s: s.source_a_store(), partners="a", job=failmap_day_job,
        description="New or re-uploaded fail maps in bucket A -> failmap_day_job for their day partitions "
        "(and the next day for A files written just before midnight).",
    ),
    BucketSpec(
        "bucket_b_sensor", lambda s: s.source_b_store(), partners="b", job=failmap_day_job,
        description="New or re-uploaded fail maps in bucket B -> failmap_day_job for their day partitions "
        "(and the previous day for B files written just after midnight).",
    ),
    BucketSpec(
        "stdf_sensor", lambda s: s.stdf_store(), job=stdf_day_job, pipeline="stdf",
        description="New or re-uploaded STDF files -> stdf_day_job for their day partitions.",
    ),
)
bucket_a_sensor, bucket_b_sensor, stdf_sensor = (bucket_sensor(spec) for spec in SPECS)
