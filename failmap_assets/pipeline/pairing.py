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

from datetime import date, datetime, timedelta

import polars as pl

from failmap_assets.discovery.keys import key_time

STATUSES = ("matched", "a_only", "pending", "orphan_b")
#: pair statuses that are units of work (an A object to process, with or without B)
UNIT_STATUSES = ("matched", "a_only", "other_map")

# Columns a listing must have for pairing (see failmap_assets.discovery.listing).
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


def pair_day(a: pl.DataFrame, b: pl.DataFrame, *, now: datetime, window_s: int, grace_s: int) -> pl.DataFrame:
    """The day's pairs from its listings (``discovery.listing.list_day_with_neighbours``).

    Neighbour-day objects were listed only so that claims across midnight come out
    right: the result keeps this day's A objects, and only this day's unclaimed B
    objects as orphans. Keys outside the grammar may still be industry map files
    (G85, TSK, ...): they are units of their own (``other_map``), processed like A
    files without a partner, or reported as skipped by their content.
    """
    pairs = pair_objects(a.filter(pl.col("valid")), b.filter(pl.col("valid")),
                         now=now, window_s=window_s, grace_s=grace_s)
    b_own = b.filter(pl.col("in_partition") & pl.col("valid")).select(pl.col("key").alias("b_key"))
    pairs = pairs.filter(
        (pl.col("status") != "orphan_b") & pl.col("in_partition").fill_null(False)
        | (pl.col("status") == "orphan_b") & pl.col("b_key").is_in(b_own["b_key"].implode())
    ).drop("in_partition")
    other = a.filter(pl.col("in_partition") & ~pl.col("valid")).select(
        pl.col("key").alias("a_key"),
        pl.col("etag").alias("a_etag"),
        pl.col("key").str.split("/").list.last().str.replace(r"\.[^.]*$", "").alias("wafer_token"),
        pl.col("skip_reason").alias("key_skip_reason"),
        pl.lit("other_map").alias("status"),
    )
    return pl.concat([pairs, other], how="diagonal_relaxed")


def partner_days(side: str, key: str, day: date, window_s: int) -> list[date]:
    """Neighbour days whose pairing a new object of bucket ``side`` can change.

    ``"b"``: a B written less than the window after midnight can partner an A written
    just before it, in the previous day's folder: that day must pair again. ``"a"``:
    an A written less than the window before midnight may have its B in the next day's
    folder, and that day lists such A files to tell a claimed B from an orphan.
    """
    t = key_time(key)
    if t is None or window_s <= 0:
        return []
    if side == "b":
        earliest = (t - timedelta(seconds=window_s)).date()
        return [max(earliest, day - timedelta(days=1))] if earliest < day else []
    latest = (t + timedelta(seconds=window_s)).date()
    return [min(latest, day + timedelta(days=1))] if latest > day else []
