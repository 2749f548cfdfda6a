"""What a day's runs have already turned into outputs, keyed by object identity.

One Parquet object per day (``state/failmap/date=.../ledger.parquet``), replaced with
a single atomic PUT at the end of each run. A unit (an A object with its B partner)
is done when its ``(a_key, a_etag, b_key, b_etag)`` is in the ledger: a re-uploaded A
(new etag) or a B partner that arrived after its A was processed alone changes that
identity, so the unit is processed again and its earlier rows are replaced.
"""

from __future__ import annotations

import polars as pl

from failmap_assets.storage.layout import ledger_key, unit_rejects_key
from failmap_assets.storage.parquet_io import read_table, write_table
from failmap_assets.storage.object_store import ObjectStore

IDENTITY = ["a_key", "a_etag", "b_key", "b_etag"]

LEDGER_SCHEMA = {
    "a_key": pl.String,
    "a_etag": pl.String,
    "b_key": pl.String,
    "b_etag": pl.String,
    "outcome": pl.String,           # "ok" (outputs written) or "rejected" (see the rejects table)
    "part_file": pl.String,         # the failmap_dies Parquet object holding this unit's rows
    "wafer_tokens": pl.List(pl.String),
    "outputs": pl.List(pl.String),  # every object written for the unit (PNG, JSON, tables)
    "dies": pl.Int64,
    "processed_at": pl.Datetime("us", "UTC"),
    "run_id": pl.String,
}

REJECT_SCHEMA = {
    "key": pl.String,
    "etag": pl.String,
    "bucket": pl.String,
    "member": pl.String,
    "reason": pl.String,
    "detail": pl.String,
    "line": pl.Int64,
    "severity": pl.String,
    "a_key": pl.String,             # the unit that reported it (to replace it when the unit is redone)
    "first_seen": pl.Datetime("us", "UTC"),
    "run_id": pl.String,
}


def empty_ledger() -> pl.DataFrame:
    return pl.DataFrame(schema=LEDGER_SCHEMA)


def load(store: ObjectStore, pipeline: str, day) -> pl.DataFrame:
    df = read_table(store, ledger_key(pipeline, day))
    if df is None:
        return empty_ledger()
    missing = [pl.lit(None, dtype).alias(c) for c, dtype in LEDGER_SCHEMA.items() if c not in df.columns]
    return df.with_columns(missing).select(list(LEDGER_SCHEMA)).cast(LEDGER_SCHEMA)  # type: ignore[arg-type]


def save(store: ObjectStore, pipeline: str, day, ledger: pl.DataFrame) -> None:
    write_table(store, ledger_key(pipeline, day), ledger.select(list(LEDGER_SCHEMA)).sort("a_key"))


def load_rejects(store: ObjectStore, pipeline: str, day) -> pl.DataFrame:
    df = read_table(store, unit_rejects_key(pipeline, day))
    return pl.DataFrame(schema=REJECT_SCHEMA) if df is None else df.cast(REJECT_SCHEMA)  # type: ignore[arg-type]


def save_rejects(store: ObjectStore, pipeline: str, day, rejects: pl.DataFrame) -> None:
    write_table(store, unit_rejects_key(pipeline, day), rejects.select(list(REJECT_SCHEMA)))


def _identity(df: pl.DataFrame) -> pl.DataFrame:
    # Nulls (no B partner) must compare equal, so compare on filled copies.
    return df.select([pl.col(c).fill_null("") for c in IDENTITY])


def units_to_do(units: pl.DataFrame, ledger: pl.DataFrame, *, force: bool = False) -> pl.DataFrame:
    """The units whose exact identity is not in the ledger (all of them with ``force``)."""
    if force or ledger.height == 0:
        return units
    done = _identity(ledger).with_columns(pl.lit(True).alias("_done"))
    keyed = units.with_columns([pl.col(c).fill_null("").alias(f"_{c}") for c in IDENTITY])
    joined = keyed.join(
        done.rename({c: f"_{c}" for c in IDENTITY}), on=[f"_{c}" for c in IDENTITY], how="left"
    )
    return joined.filter(pl.col("_done").is_null()).drop([f"_{c}" for c in IDENTITY] + ["_done"])


def stale_outputs(old: pl.DataFrame, new: pl.DataFrame) -> list[str]:
    """Objects the redone units wrote before but not this time (a wafer token or a
    product folder that changed with a re-upload): to delete, so nothing stale remains."""
    before = old.join(new.select("a_key"), on="a_key", how="semi").explode("outputs")["outputs"]
    now = set(new.explode("outputs")["outputs"].drop_nulls().to_list())
    return sorted(set(before.drop_nulls().to_list()) - now)


def merge(old: pl.DataFrame, new: pl.DataFrame) -> pl.DataFrame:
    """The ledger after a run: a unit's new row replaces any older row for the same A key."""
    kept = old.join(new.select("a_key"), on="a_key", how="anti")
    return pl.concat([kept, new.select(list(LEDGER_SCHEMA)).cast(LEDGER_SCHEMA)], how="vertical")  # type: ignore[arg-type]


def merge_rejects(old: pl.DataFrame, new: pl.DataFrame, redone_a_keys: list[str]) -> pl.DataFrame:
    """Rejects after a run: the redone units' old reports are replaced; a report seen
    before keeps its first_seen time."""
    new = new.select(list(REJECT_SCHEMA)).cast(REJECT_SCHEMA)  # type: ignore[arg-type]
    same = ["key", "etag", "member", "reason"]
    earlier = old.select(same + ["first_seen"]).unique(subset=same, keep="first")
    new = (
        new.join(earlier.rename({"first_seen": "_fs"}), on=same, how="left", nulls_equal=True)
        .with_columns(pl.coalesce("_fs", "first_seen").alias("first_seen"))
        .drop("_fs")
    )
    kept = old.filter(~pl.col("a_key").is_in(redone_a_keys))
    return pl.concat([kept, new], how="vertical")
