"""Merged retests: each physical wafer's final die map across its test events.

A wafer tested more than once (prime ``P``, retest ``R``, ... in the fail-map key;
several STDF files of one wafer) has one final result per die, chosen by a rule,
the same four names as the STDF retest rule (``FAILMAP_MERGE_RULE``):

``last``   the die's result in the latest test event that tested it
``first``  ... in the earliest test event that tested it
``best``   a passing result wins over a failing one; among the winners, the latest
``worst``  a failing result wins over a passing one; among the winners, the latest

"Latest" is the order of the latest-event rule: file time, then object key, then
wafer token (the greater wins a tie). Only the events that tested a die take part:
a die missing from a retest keeps its earlier result under every rule.

A physical wafer is ``(source, lot, wafer, step)``: the lot and wafer/slot the file
names, whatever its insertion letter or wafer token. Different steps are different
test programs, never merged; a fail map and an STDF file of one wafer are not merged
either (their die coordinates need not follow one convention). Events without a lot
or a wafer number cannot be matched to a wafer and are left out.
"""

from __future__ import annotations

import polars as pl

from failmap_assets.wafer.events import MERGE_RULES
from failmap_assets.yield_view.summaries import EVENT, schema_of

#: A physical wafer: what the merge groups by.
WAFER = ["source", "lot", "wafer", "step"]
DIE = [*WAFER, "x", "y"]

MERGED_DIES_COLUMNS: dict[str, tuple[pl.DataType, str]] = {
    "source": (pl.String, "failmap or stdf (the two are never merged into one wafer)"),
    "lot": (pl.String, "lot id"),
    "wafer": (pl.String, "wafer id / slot"),
    "step": (pl.String, "test step (each step is merged on its own)"),
    "x": (pl.Int32, "die x"),
    "y": (pl.Int32, "die y"),
    "bin": (pl.Int64, "the die's final bin by the merge rule"),
    "pass": (pl.Boolean, "whether that bin is a pass bin"),
    "tests": (pl.Int64, "how many of the wafer's test events tested this die"),
    "insertion": (pl.String, "insertion of the event the result comes from (P, R, C; STDF: the retest code)"),
    "wafer_token": (pl.String, "wafer token of that event"),
    "object_key": (pl.String, "object of that event: the A map or the STDF file"),
    "file_time": (pl.Datetime("us"), "when that event was tested"),
}

MERGED_WAFERS_COLUMNS: dict[str, tuple[pl.DataType, str]] = {
    "source": (pl.String, "failmap or stdf"),
    "lot": (pl.String, "lot id"),
    "wafer": (pl.String, "wafer id / slot"),
    "step": (pl.String, "test step"),
    "merge_rule": (pl.String, "last, first, best or worst (FAILMAP_MERGE_RULE)"),
    "test_events": (pl.Int64, "the wafer's test events merged"),
    "insertions": (pl.String, "their insertions in test order, comma-separated (? where unknown)"),
    "dies": (pl.Int64, "dies of the merged map"),
    "pass_dies": (pl.Int64, "passing dies of the merged map"),
    "yield_pct": (pl.Float64, "pass_dies / dies, % (null: no die)"),
    "retested_dies": (pl.Int64, "dies tested more than once"),
    "latest_pass_dies": (pl.Int64, "passing dies of the wafer's latest event alone, for comparison"),
}


def _check(rule: str) -> None:
    if rule not in MERGE_RULES:
        raise ValueError(f"merge rule must be one of {MERGE_RULES}, not {rule!r}")


def _ordered(events: pl.DataFrame) -> pl.DataFrame:
    """The mergeable events with their place in test order (``_order``: 0 earliest)."""
    return (events.filter(pl.col("lot").is_not_null() & pl.col("wafer").is_not_null())
            .sort(["file_time", "object_key", "wafer_token"], nulls_last=False)
            .with_row_index("_order"))


def merge_dies(events: pl.DataFrame, dies: pl.DataFrame, rule: str) -> pl.DataFrame:
    """One row per die of each physical wafer: its final result by ``rule``."""
    _check(rule)
    ev = _ordered(events).select(*EVENT, "lot", "wafer", "step", "insertion", "file_time", "_order")
    tested = dies.join(ev, on=EVENT, how="inner", nulls_equal=True)
    # the winner is the greatest (preference, order): preference 1 beats 0
    preference = {"last": pl.lit(0), "first": pl.lit(0), "best": pl.col("pass").cast(pl.Int8),
                  "worst": (~pl.col("pass")).cast(pl.Int8)}[rule]
    order = -pl.col("_order").cast(pl.Int64) if rule == "first" else pl.col("_order").cast(pl.Int64)
    out = (
        tested.with_columns(preference.alias("_pref"), order.alias("_rank"),
                            pl.len().over(DIE, mapping_strategy="group_to_rows").cast(pl.Int64).alias("tests"))
        .sort([*DIE, "_pref", "_rank"], nulls_last=False)
        .unique(DIE, keep="last", maintain_order=True)
    )
    return (out.select(list(MERGED_DIES_COLUMNS)).cast(dict(schema_of(MERGED_DIES_COLUMNS)))
            .sort(DIE, nulls_last=True))


def merged_wafers(events: pl.DataFrame, merged: pl.DataFrame, dies: pl.DataFrame, rule: str) -> pl.DataFrame:
    """One row per physical wafer: its merged yield beside its latest event's."""
    _check(rule)
    ev = _ordered(events)
    per_wafer = ev.group_by(WAFER).agg(
        pl.len().cast(pl.Int64).alias("test_events"),
        pl.col("insertion").fill_null("?").sort_by("_order").str.join(",").alias("insertions"),
        # the wafer's latest event (source is a key of both)
        *[pl.col(c).sort_by("_order").last().alias(f"_last_{c}") for c in EVENT if c not in WAFER],
    )
    latest = (per_wafer.select(*WAFER, *[pl.col(f"_last_{c}").alias(c) for c in EVENT if c not in WAFER])
              .join(dies, on=EVENT, how="left", nulls_equal=True)
              .group_by(WAFER).agg(pl.col("pass").sum().cast(pl.Int64).alias("latest_pass_dies")))
    figures = merged.group_by(WAFER).agg(
        pl.len().cast(pl.Int64).alias("dies"),
        pl.col("pass").sum().cast(pl.Int64).alias("pass_dies"),
        (pl.col("tests") > 1).sum().cast(pl.Int64).alias("retested_dies"),
    )
    out = (
        per_wafer.join(figures, on=WAFER, how="left", nulls_equal=True)
        .join(latest, on=WAFER, how="left", nulls_equal=True)
        .with_columns(pl.col("dies", "pass_dies", "retested_dies", "latest_pass_dies").fill_null(0),
                      pl.lit(rule).alias("merge_rule"))
        .with_columns(pl.when(pl.col("dies") > 0).then(100.0 * pl.col("pass_dies") / pl.col("dies"))
                      .alias("yield_pct"))
    )
    return (out.select(list(MERGED_WAFERS_COLUMNS)).cast(dict(schema_of(MERGED_WAFERS_COLUMNS)))
            .sort(WAFER, nulls_last=True))
