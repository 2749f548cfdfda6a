"""A day's figures, computed from what the day's commit holds (never from what one run did).

Stored in the manifest (``totals``) and shown on every materialization: yield, dies,
wafers, test events, bins, rejects, match rate. Yield and bins describe each
wafer's latest test event (what the wafer *is* now); a day without dies has no yield
(None), never 0.
"""

from __future__ import annotations

import polars as pl

TOP_BINS = 12


def wafer_totals(events: pl.DataFrame) -> dict:
    latest = events.filter(pl.col("latest"))
    dies = int(latest["dies"].sum() or 0)
    pass_dies = int(latest["pass_dies"].sum() or 0)
    bins = (
        latest.select(pl.col("bins").explode().alias("bin"), pl.col("bin_counts").explode().alias("dies"))
        .drop_nulls()
        .group_by("bin").agg(pl.col("dies").sum())
        .sort(["dies", "bin"], descending=[True, False])
    )
    return {
        "bin_pareto": bin_pareto(latest),
        "wafers": int(events["wafer_token"].n_unique()) if events.height else 0,
        "test_events": events.height,
        "die_rows": int(events["dies"].sum() or 0),
        "dies": dies,
        "pass_dies": pass_dies,
        "yield": round(pass_dies / dies, 6) if dies else None,
        "retested_wafers": int(events.group_by("wafer_token").len().filter(pl.col("len") > 1).height) if events.height else 0,
        "bins": [[int(b), int(n)] for b, n in bins.head(TOP_BINS).iter_rows()],
    }


def bin_pareto(latest: pl.DataFrame) -> list[list]:
    """``[bin, name, pass, dies]`` of the latest events: loss (failing) bins first, most
    dies first, the first ``TOP_BINS`` of each kind; name null where no file names it;
    empty when an event's verdicts are unknown (state of an older version)."""
    unknown = latest.filter(pl.col("bin_pass").is_null() & (pl.col("bins").list.len() > 0))
    if not latest.height or unknown.height:   # a verdict unknown: no pareto that leaves dies out
        return []
    rows = (
        latest.select(pl.col("bins").alias("bin"), pl.col("bin_counts").alias("dies"),
                      pl.col("bin_pass").alias("pass"), pl.col("bin_names").alias("name"))
        .explode("bin", "dies", "pass", "name").drop_nulls("bin")
        .group_by("bin", "pass").agg(pl.col("name").drop_nulls().first(), pl.col("dies").sum())
        .sort(["pass", "dies", "bin"], descending=[False, True, False])
    )
    rows = pl.concat([rows.filter(~pl.col("pass")).head(TOP_BINS), rows.filter(pl.col("pass")).head(TOP_BINS)])
    return [[int(b), n, bool(p), int(d)] for b, p, n, d in rows.select("bin", "pass", "name", "dies").iter_rows()]


def reject_totals(rejects: pl.DataFrame) -> dict:
    errors = rejects.filter(pl.col("severity") == "error")
    by_reason = rejects.group_by("severity", "reason").len().sort(["len", "reason"], descending=[True, False])
    return {
        "rejects": errors.height,
        "warnings": rejects.height - errors.height,
        "rejects_by_reason": [[s, r, int(n)] for s, r, n in by_reason.iter_rows()],
    }


def unit_totals(units: pl.DataFrame) -> dict:
    return {"units": units.height,
            "units_by_outcome": {k: int(v) for k, v in units.group_by("outcome").len().iter_rows()}}


def listing_totals(listing: pl.DataFrame) -> dict:
    """A day's listing (with parsed keys and neighbour-day edges, discovery/listing.py)."""
    own = listing.filter(pl.col("in_partition"))
    valid = own.filter(pl.col("valid"))
    return {
        "objects": own.height,
        "fail_map_keys": valid.height,
        "skipped_keys": own.height - valid.height,
        "bytes": int(own["size"].sum() or 0),
        "neighbour_day_objects": listing.height - own.height,
        "extensions": {k: int(v) for k, v in valid.group_by("ext").len().iter_rows()},
    }


def failmap_totals(events: pl.DataFrame, units: pl.DataFrame, rejects: pl.DataFrame, pairs: pl.DataFrame,
                   a: pl.DataFrame, b: pl.DataFrame) -> dict:
    counts = {s: 0 for s in ("matched", "a_only", "pending", "orphan_b", "other_map")}
    counts.update({k: int(v) for k, v in pairs.group_by("status").len().iter_rows()})
    decided = counts["matched"] + counts["a_only"]
    latest = events.filter(pl.col("latest"))
    return {
        **wafer_totals(events),
        "wafers_with_b": int(latest.filter(pl.col("with_b")).height),
        "b_only_dies": int(latest["b_only_dies"].sum() or 0),
        **unit_totals(units),
        **reject_totals(rejects),
        "pairs": counts,
        "match_rate": round(counts["matched"] / decided, 6) if decided else None,
        "listings": {"bucket_a_objects": listing_totals(a), "bucket_b_objects": listing_totals(b)},
    }
