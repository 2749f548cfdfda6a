"""Test events: which of a wafer's tests the wafer's map shows.

Each A object (fail maps) and each STDF file is one *test event* of every wafer it
holds. A wafer token tested several times in a day (a retest written hours later,
a re-upload under a new key) has several events; the day's die table keeps all of
them, and the wafer's PNG and JSON show its *latest* event: the one with the latest
test time (the key's file time for fail maps, the file's start time for STDF), on a
tie (or no time) the one with the greater object key. The rule depends only on the
events, never on the order in which runs processed them.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

_NO_TIME = datetime(1, 1, 1)

#: How a physical wafer's tests (prime, retests) merge into its final map, per die:
#: the latest / the earliest test, a passing / a failing result first (then the latest).
#: ``yield_view/merged.py`` applies them; settings validate FAILMAP_MERGE_RULE against them.
MERGE_RULES = ("last", "first", "best", "worst")


def event_rank(event_time: datetime | None, key: str) -> tuple[datetime, str]:
    """Events compare by this: the greatest rank is the latest event."""
    return (event_time or _NO_TIME, key)


def mark_latest(events: pl.DataFrame, *, token: str = "wafer_token", time: str = "event_time",
                key: str = "unit_key") -> pl.DataFrame:
    """``events`` with ``latest`` set: True on exactly one event per wafer token."""
    if events.height == 0:
        return events.with_columns(pl.lit(False).alias("latest"))
    ranked = events.with_columns(pl.col(time).fill_null(_NO_TIME).alias("_t"))
    last = ranked.sort(["_t", key]).group_by(token).agg(pl.col(key).last().alias("_latest_key"))
    return (
        ranked.join(last, on=token, how="left")
        .with_columns((pl.col(key) == pl.col("_latest_key")).alias("latest"))
        .drop("_t", "_latest_key")
    )
