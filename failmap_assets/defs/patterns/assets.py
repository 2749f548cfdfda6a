"""Wafer-map pattern intelligence: wafer_signatures (daily), pattern_index (per product,
not partitioned) and similar_wafers / wafer_anomaly (daily). Wiring only:
``pipeline/patterns_day.py``, ``pipeline/pattern_index.py`` and ``patterns/``.

``pattern_index`` is one unpartitioned asset that rebuilds every product whose
committed signature days changed, rather than a dynamic partition per product: the
products are discovered in the data (a new product needs no partition added by a
sensor first), one materialization shows the whole round, and a product a round did
not touch keeps its version. Each product's rebuild is a new version switched in one
step (``pipeline/pattern_index.py``); a product whose rebuild fails keeps serving its
previous version and fails the run after the others are done.

Never two rebuilds at once: the asset is in the concurrency pool ``pattern_index``,
and the shipped instance config (deploy/dagster.yaml: ``concurrency: pools:
default_limit: 1``) gives every pool one slot, so a second run's rebuild waits for
the first one's. Whatever runs beside Dagster (``failmap`` from a shell, another
deployment on the same bucket) is held by the store: a switch is a compare-and-swap
on the pointer, and the second switcher is refused.
"""

from datetime import date

from dagster import (
    AssetExecutionContext,
    AssetSelection,
    AutomationConditionSensorDefinition,
    AssetSpec,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
    multi_asset,
)
from pydantic import Field

from failmap_assets.defs import metadata as md
from failmap_assets.defs.automation import FOLLOWS_ITS_DAY, FOLLOWS_ITS_SIGNATURES
from failmap_assets.defs.jobs import PATTERNS_GROUP
from failmap_assets.defs.partitions import daily_backfill_policy, daily_partitions
from failmap_assets.patterns.index import INDEX_FORMAT
from failmap_assets.patterns.signature import SIGNATURE_VERSION
from failmap_assets.patterns.tables import ANOMALY_COLUMNS, PATTERNS_DAY_VERSION, SIGNATURE_COLUMNS, SIMILAR_COLUMNS
from failmap_assets.pipeline.pattern_index import ROW_COLUMNS, rebuild_indexes
from failmap_assets.pipeline.patterns_day import SIMILAR_K, run_matches_day, run_signatures_day
from failmap_assets.resources import FailmapRules, FailmapStorage

OWNERS = ["team:yield-engineering"]
#: The concurrency pool of the index rebuilds (one slot: deploy/dagster.yaml).
INDEX_POOL = "pattern_index"
#: Versions of each product's history a materialization lists.
HISTORY_SHOWN = 10


class PatternsDayConfig(Config):
    force: bool = Field(default=False, description="Recompute even when the day's inputs did not change.")


class PatternIndexConfig(Config):
    force: bool = Field(default=False, description="Rebuild every product even when no committed day changed.")
    products: list[str] = Field(default_factory=list, description="Only these products (default: every product).")


class MatchesConfig(PatternsDayConfig):
    k: int = Field(default=SIMILAR_K, ge=1, le=100, description="Similar earlier wafers per test event.")


def _run(report) -> dict:
    return {"run_committed": report.committed, "run_generation": report.generation,
            "run_seconds": MetadataValue.float(round(report.seconds, 2))}


@asset(
    name="wafer_signatures", group_name=PATTERNS_GROUP, deps=["failmap_dies", "stdf_tables"],
    partitions_def=daily_partitions, backfill_policy=daily_backfill_policy, owners=OWNERS,
    code_version=f"{SIGNATURE_VERSION}.{PATTERNS_DAY_VERSION}", kinds={"numpy", "parquet"},
    automation_condition=FOLLOWS_ITS_DAY,
    description=(
        "One row per wafer test event of the day (fail maps, industry formats, STDF) from the day's committed "
        "dies: its fail-density raster (notch down, by the map's flat and die size), a unit-length embedding "
        "and a WM-811K pattern label (Center, Donut, Edge-Loc, Edge-Ring, Loc, Near-full, Random, Scratch, "
        "none; too_small for a handful of dies) with confidence and evidence: "
        "parquet/wafer_signatures/date=YYYY-MM-DD/"),
    metadata={"dagster/column_schema": md.table_schema(SIGNATURE_COLUMNS)},
)
def wafer_signatures(context: AssetExecutionContext, config: PatternsDayConfig, storage: FailmapStorage,
                     failmap_rules: FailmapRules) -> MaterializeResult:
    """Sign every committed test event of the day; commit the table at once."""
    report = run_signatures_day(day=date.fromisoformat(context.partition_key), out=storage.output_store(),
                                run_id=context.run.run_id, force=config.force, lease=failmap_rules.lease(),
                                log=context.log.info)
    t = report.totals or {}
    return MaterializeResult(metadata={
        **md.row_count(t.get("test_events", 0)),
        "labels": MetadataValue.json(t.get("labels", {})),
        "too_small": t.get("too_small", 0), "not_drawn": t.get("not_drawn", 0),
        "products": MetadataValue.json(t.get("products", [])),
        **_run(report),
    })


@asset(
    name="pattern_index", group_name=PATTERNS_GROUP, deps=["wafer_signatures"], pool=INDEX_POOL, owners=OWNERS,
    code_version=str(INDEX_FORMAT), kinds={"numpy", "parquet"}, automation_condition=FOLLOWS_ITS_DAY,
    description=(
        "Per product, the similarity index over every committed day's wafer signatures (too_small left out), "
        "rebuilt incrementally from the days whose signatures changed: patterns/index/<product>/, each "
        "rebuild a new version switched in one step (current.json, compare-and-swap); a failed rebuild leaves "
        "the previous version serving; old versions collected. Concurrency pool 'pattern_index' (one slot). "
        "Rows: identity, day, label, confidence, normal (the anomaly memory bank)."),
    metadata={"dagster/column_schema": md.table_schema(
        {k: (v, "") for k, v in ROW_COLUMNS.items()} | {"embedding": ("Float16 x D", "the signature's embedding")})},
)
def pattern_index(context: AssetExecutionContext, config: PatternIndexConfig,
                  storage: FailmapStorage) -> MaterializeResult:
    """Rebuild the index of every product whose committed signature days changed."""
    report = rebuild_indexes(storage.output_store(), run_id=context.run.run_id, products=config.products or None,
                             force=config.force, log=context.log.info)
    rows, history = [], []
    for product, r in sorted(report.products.items()):
        s = r.stats
        if not s:
            continue
        cal = s.get("calibration", {})
        rows.append((product, s.get("version"), "rebuilt" if r.rebuilt else "kept", s.get("rows"),
                     s.get("stored_bytes"), s.get("index_memory_bytes"), s.get("build_seconds"), s.get("knn5_loo"),
                     s.get("normal_bank"), None if cal.get("threshold") is None else round(cal["threshold"], 4),
                     len(r.changed_days)))
        history += [(product, h.get("version"), h.get("built_at"), h.get("rows"), h.get("stored_bytes"),
                     h.get("build_seconds"), h.get("knn5_loo"), h.get("rolled_back_from"))
                    for h in r.history[:HISTORY_SHOWN]]
    metadata = {
        **md.row_count(sum(r[3] or 0 for r in rows)),
        "products": len(rows), "rebuilt": sum(r.rebuilt for r in report.products.values()),
        "failed": MetadataValue.json(report.failed),
        "versions": MetadataValue.md(md.markdown_table(rows, [
            "product", "version", "this run", "wafers", "stored bytes", "memory bytes", "build s", "knn5 loo",
            "normal bank", "anomaly threshold", "changed days"])),
        "history": MetadataValue.md(md.markdown_table(history, [
            "product", "version", "built at", "wafers", "stored bytes", "build s", "knn5 loo", "rolled back from"])),
        "labels": MetadataValue.json({p: r.stats.get("labels", {}) for p, r in report.products.items() if r.stats}),
        "run_seconds": MetadataValue.float(round(report.seconds, 2)),
        "signature_version": SIGNATURE_VERSION,
        "stale_signature_days": MetadataValue.md(stale_days_text(report.stale_days)),
    }
    if report.failed:
        raise Failure(description=f"pattern index rebuild failed for {sorted(report.failed)}; their previous "
                                  "versions keep serving", metadata=metadata)
    return MaterializeResult(metadata=metadata)


def stale_days_text(stale: dict[str, str]) -> str:
    """What the UI says of days signed by another signature version (left out of the index)."""
    if not stale:
        return f"none: every committed day is signed by signature version {SIGNATURE_VERSION}"
    return (f"{len(stale)} day(s) signed by another signature version than this code's ({SIGNATURE_VERSION}) "
            "are left out of the index: materialize `wafer_signatures` for them (a backfill of these "
            "partitions), then `pattern_index` again.\n\n"
            + md.markdown_table(sorted(stale.items()), ["day", "signed with version"]))


MATCH_SPECS = [
    AssetSpec(
        "similar_wafers", deps=["wafer_signatures", "pattern_index"], kinds={"numpy", "parquet"}, owners=OWNERS,
        code_version=str(PATTERNS_DAY_VERSION), metadata={"dagster/column_schema": md.table_schema(SIMILAR_COLUMNS)},
        automation_condition=FOLLOWS_ITS_SIGNATURES,
        description=(
            "For each test event of the day, its k most similar earlier wafers of its product (the product's "
            "pattern index: earlier days, and the day's events tested before it; never the same wafer), any lot, "
            "with their step for filtering, similarity and distance: parquet/similar_wafers/date=YYYY-MM-DD/"),
    ),
    AssetSpec(
        "wafer_anomaly", deps=["wafer_signatures", "pattern_index"], kinds={"numpy", "parquet"}, owners=OWNERS,
        code_version=str(PATTERNS_DAY_VERSION), metadata={"dagster/column_schema": md.table_schema(ANOMALY_COLUMNS)},
        automation_condition=FOLLOWS_ITS_SIGNATURES,
        description=(
            "For each test event of the day, its anomaly score (mean cosine distance to the k nearest earlier "
            "normal wafers of its product: the memory bank) and a flag above the product's threshold (the 0.99 "
            "quantile of the bank's leave-one-out scores x 1.1): parquet/wafer_anomaly/date=YYYY-MM-DD/"),
    ),
]


@multi_asset(name="pattern_matches", specs=MATCH_SPECS, group_name=PATTERNS_GROUP, partitions_def=daily_partitions,
             backfill_policy=daily_backfill_policy, can_subset=False)
def pattern_matches(context: AssetExecutionContext, config: MatchesConfig, storage: FailmapStorage,
                    failmap_rules: FailmapRules):
    """Similar earlier wafers and anomaly scores of the day's test events; both tables committed at once."""
    report = run_matches_day(day=date.fromisoformat(context.partition_key), out=storage.output_store(),
                             run_id=context.run.run_id, k=config.k, force=config.force, lease=failmap_rules.lease(),
                             log=context.log.info)
    t = report.totals or {}
    rows = t.get("rows", {})
    common = {"index_versions": MetadataValue.json(t.get("index_versions", {})), **_run(report)}
    yield MaterializeResult(asset_key="similar_wafers", metadata={
        **md.row_count(rows.get("similar_wafers", 0)), "test_events": t.get("test_events", 0), **common})
    yield MaterializeResult(asset_key="wafer_anomaly", metadata={
        **md.row_count(rows.get("wafer_anomaly", 0)), "anomalous": t.get("anomalous", 0),
        "scored": t.get("scored", 0), "anomalous_wafers": MetadataValue.json(t.get("anomalous_wafers", [])),
        **common})


PATTERNS_ASSETS = [wafer_signatures, pattern_index, pattern_matches]


# Evaluates the pattern assets' conditions; off until turned on in the UI, like the others.
patterns_sensor = AutomationConditionSensorDefinition(
    "patterns_sensor", target=AssetSelection.groups(PATTERNS_GROUP), minimum_interval_seconds=60,
    description=("Requests a day's wafer_signatures after its fail-map or STDF runs, one pattern_index rebuild "
                 "after any days' signatures change (at the end of a backfill, not once per day), and a day's "
                 "similar_wafers / wafer_anomaly after its signatures, once the index rebuild is over."),
)
PATTERNS_SENSORS = [patterns_sensor]
