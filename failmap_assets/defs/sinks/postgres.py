"""``postgres_sink``: the day's wafer_summary, lot_summary and pattern tables
(wafer_signatures, wafer_anomaly, similar_wafers) upserted into PostgreSQL.
Wiring only: ``sinks/postgres/`` connects, migrates and loads.

Daily-partitioned like the tables it copies, after them (its deps are the sink
tables' assets, so FOLLOWS_ITS_DAY requests the day again when the summaries, the
signatures or the pattern matches of the day are materialized; a table whose day is
not committed yet is left alone and listed under ``not_loaded``): the partition D
loads day D's committed tables in one transaction, so a re-run, a backfill or runs in any
order leave the rows one clean run leaves. Whether the sink is on is read when the
code location loads (for the description and the automation condition) and again by
each run (through the ``postgres`` resource). Off (no FAILMAP_POSTGRES_DSN, no
PGHOST / PGDATABASE / PGSERVICE): the asset still materializes, says so, and touches
nothing; nothing requests it automatically.
"""


from datetime import date

from dagster import (
    AssetExecutionContext,
    AssetSelection,
    AutomationConditionSensorDefinition,
    MaterializeResult,
    MetadataValue,
    asset,
)

from failmap_assets.defs import metadata as md
from failmap_assets.defs.jobs import SINKS_GROUP
from failmap_assets.defs.partitions import daily_backfill_policy, daily_partitions
from failmap_assets.defs.automation import FOLLOWS_ITS_DAY
from failmap_assets.defs.yield_view.assets import OWNERS
from failmap_assets.resources import FailmapStorage, PostgresSink
from failmap_assets.settings import Settings
from failmap_assets.sinks.postgres.connection import SINK_OFF
from failmap_assets.sinks.postgres.schema import SCHEMA_VERSION
from failmap_assets.sinks.postgres.sink_day import SinkReport, run_sink_day
from failmap_assets.sinks.postgres.tables import SINK_TABLES

_settings = Settings.from_env()
SINK_ON = bool(_settings.postgres_dsn) or _settings.postgres_pg_environment
_TABLES = ", ".join(s.name for s in SINK_TABLES)
_WHAT = (f"Upserts the day's committed {_TABLES} into PostgreSQL tables of the same names (schema created and "
         f"migrated by the sink, version {SCHEMA_VERSION} in failmap_schema_version; one transaction per day: COPY "
         "into staging, one INSERT ... ON CONFLICT, the day's stale rows deleted). Connection: "
         "FAILMAP_POSTGRES_DSN, or libpq's PG* variables.")
DESCRIPTION = _WHAT if SINK_ON else f"{SINK_OFF} (or PGHOST / PGDATABASE / PGSERVICE). {_WHAT}"


@asset(name="postgres_sink", group_name=SINKS_GROUP, partitions_def=daily_partitions,
       backfill_policy=daily_backfill_policy, deps=[s.source_table for s in SINK_TABLES], owners=OWNERS,
       kinds={"postgres"}, code_version=str(SCHEMA_VERSION), description=DESCRIPTION,
       automation_condition=FOLLOWS_ITS_DAY if SINK_ON else None)
def postgres_sink(context: AssetExecutionContext, storage: FailmapStorage, postgres: PostgresSink) -> MaterializeResult:
    """Load the partition's day into PostgreSQL (or say that the sink is off)."""
    target = postgres.target()
    if not target.enabled:
        context.log.info(SINK_OFF)
        return MaterializeResult(metadata={"postgres_sink": SINK_OFF})
    day = date.fromisoformat(context.partition_key)
    report = run_sink_day(day=day, out=storage.output_store(), target=target, log=context.log.info)
    return MaterializeResult(metadata=sink_metadata(report))


def sink_metadata(report: SinkReport) -> dict:
    """What the UI shows of a load: where (never a password), the schema, per table
    the day's rows and what the run changed."""
    rows = [(t.table, t.rows, t.inserted, t.updated, t.unchanged, t.deleted, t.generation, t.skipped)
            for t in report.tables]
    rows += [(name, "", "", "", "", "", "", f"not loaded: {why}") for name, why in report.missing.items()]
    migration = report.migration
    return {
        "postgres_sink": "on",
        "postgres_target": report.target,
        "schema_version": MetadataValue.int(migration.after if migration else 0),
        "schema_migrated_from": MetadataValue.int(migration.before if migration else 0),
        **md.row_count(sum(t.rows for t in report.tables)),
        "tables": MetadataValue.md(md.markdown_table(rows, ["table", "rows", "inserted", "updated", "unchanged",
                                                            "deleted", "commit generation", "note"])),
        "loaded": MetadataValue.json({t.table: {"rows": t.rows, "inserted": t.inserted, "updated": t.updated,
                                                "deleted": t.deleted, "commit_generation": t.generation,
                                                "skipped": t.skipped} for t in report.tables}),
        "not_loaded": MetadataValue.json(report.missing),
        "run_seconds": MetadataValue.float(round(report.seconds, 3)),
    }


# Evaluates FOLLOWS_ITS_DAY for the sink: off until turned on in the UI, like the others.
postgres_sink_sensor = AutomationConditionSensorDefinition(
    "postgres_sink_sensor", target=AssetSelection.groups(SINKS_GROUP), minimum_interval_seconds=60,
    description=("Requests a day's postgres_sink after its summaries or pattern tables are materialized (only "
                 "when the sink is on)."),
)

SINK_ASSETS = [postgres_sink]
SINK_SENSORS = [postgres_sink_sensor]
