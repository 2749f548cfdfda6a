"""A/B pairing on object listings (pure polars, no I/O).

The rule (failmap-format.md): an A object's partner is the B object with the same
wafer token written within ``[t_A, t_A + window]``; if several qualify the earliest
wins; each B pairs with at most one A, the earliest A that claims it. An unmatched A
is *pending* until ``t_A + window + grace`` has passed, then *a_only*. A B no A
claims is an *orphan_b*.

Matching is a sort-merge (``join_asof`` by wafer token) done in rounds, never a
loop over A x B: see ``_match_in_rounds``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl

STATUSES = ("matched", "a_only", "pending", "orphan_b")

# Columns a listing must have for pairing (see failmap_assets.listing).
_A_COLS = ["key", "etag", "wafer_token", "file_time"]


def pair_objects(
    a: pl.DataFrame,
    b: pl.DataFrame,
    *,
    now: datetime,
    window_s: int = 10,
    grace_s: int = 600,
) -> pl.DataFrame:
    """Pair A and B listings; one row per A (matched / a_only / pending) and one per orphan B.

    ``a`` and ``b`` hold valid fail-map keys only, with at least key, etag,
    wafer_token, file_time (naive fab time). ``now`` is the current fab time: it
    decides pending vs a_only. Extra columns of ``a`` (e.g. ``in_partition``) are kept;
    B's extra columns are not.
    """
    window = timedelta(seconds=window_s)
    a = a.sort(["file_time", "key"]).with_row_index("_a_idx")  # ties: earliest key first
    b = b.select(
        pl.col("key").alias("b_key"),
        pl.col("etag").alias("b_etag"),
        pl.col("wafer_token"),
        pl.col("file_time").alias("b_time"),
    ).sort(["b_time", "b_key"])

    claims = _match_in_rounds(a, b, window)

    paired = a.join(claims, on="_a_idx", how="left")
    deadline = pl.col("file_time") + pl.duration(seconds=window_s + grace_s)
    paired = paired.with_columns(
        pl.when(pl.col("b_key").is_not_null())
        .then(pl.lit("matched"))
        .when(deadline > pl.lit(now))
        .then(pl.lit("pending"))
        .otherwise(pl.lit("a_only"))
        .alias("status"),
        pl.col("key").alias("a_key"),
        pl.col("etag").alias("a_etag"),
        pl.col("file_time").alias("a_time"),
    ).drop(["key", "etag", "file_time", "_a_idx"])

    claimed = claims.select("b_key")
    orphans = b.join(claimed, on="b_key", how="anti").with_columns(
        pl.lit("orphan_b").alias("status"),
    )
    out = pl.concat([paired, orphans], how="diagonal_relaxed")
    return out.sort(["status", "wafer_token", "a_time", "b_time"], nulls_last=True)


def _match_in_rounds(a: pl.DataFrame, b: pl.DataFrame, window: timedelta) -> pl.DataFrame:
    """(_a_idx, b_key, b_etag, b_time) for every A that won a B.

    Each round settles the earliest still-open A of every wafer token: it takes its
    earliest free B in the window, or none. Tokens are independent, so this is the
    rule's greedy order exactly; the rounds number the most A files one wafer token
    has in the day (usually one), each round one vectorised as-of join.
    """
    won = []
    open_a = a.select("_a_idx", "wafer_token", "file_time")
    free_b = b
    while open_a.height:
        first = open_a.sort(["file_time", "_a_idx"]).group_by("wafer_token", maintain_order=True).first()
        if free_b.height:
            cand = first.sort("file_time").join_asof(
                free_b.sort("b_time"),
                left_on="file_time",
                right_on="b_time",
                by="wafer_token",
                strategy="forward",
                tolerance=window,
                check_sortedness=False,
            ).filter(pl.col("b_key").is_not_null())
            won.append(cand.select("_a_idx", "b_key", "b_etag", "b_time"))
            free_b = free_b.join(cand.select("b_key"), on="b_key", how="anti")
        open_a = open_a.join(first.select("_a_idx"), on="_a_idx", how="anti")
    if not won:
        return pl.DataFrame(
            schema={"_a_idx": pl.UInt32, "b_key": pl.String, "b_etag": pl.String, "b_time": pl.Datetime("us")}
        )
    return pl.concat(won)
