"""What a day's commit knows: its units of work, their test events and their rejects.

Three small tables per pipeline and day, written under new names by each commit and
named by the manifest (``storage/day_manifest.py``):

``units``    one row per unit of work (an A object with its B partner; an STDF
             file), by the identity of the object versions it was made from;
             outcome ``ok`` / ``rejected`` (done: see the rejects), ``read_error``
             (retried by later runs, up to ``MAX_READ_ATTEMPTS``), or ``changed`` /
             ``vanished`` (replaced or deleted between listing and reading: never
             done, so read again whenever that version is listed again; the day
             stays due for it while it has attempts left)
``events``   one row per wafer test event the units produced: the wafer's figures,
             whether it is the wafer's latest event, whether its PNG / JSON are the
             ones on disk
``rejects``  every object (or member) a unit could not use, with the reason

A unit is done when its identity is in ``units`` with a final outcome: a re-uploaded
object (new etag) or a B partner that arrived after its A was processed alone is a
new identity, so it is processed again and its earlier rows are replaced.
"""

from __future__ import annotations

import numpy as np
import polars as pl

MAX_READ_ATTEMPTS = 3
FINAL_OUTCOMES = ("ok", "rejected")
FAILED_OUTCOMES = ("read_error", "changed", "vanished")
IDENTITY = ["unit_key", "unit_etag", "partner_key", "partner_etag"]

UNITS_SCHEMA = {
    "unit_key": pl.String,
    "unit_etag": pl.String,
    "partner_key": pl.String,
    "partner_etag": pl.String,
    "outcome": pl.String,
    "attempts": pl.Int32,             # failed reads so far (read_error, changed, vanished)
    "files": pl.List(pl.String),      # table files holding the unit's rows
    "dies": pl.Int64,                 # its rows in the die table (fail maps) / parts (STDF)
    "event_time": pl.Datetime("us"),  # when it was tested (naive fab time), if known
    "processed_at": pl.Datetime("us", "UTC"),
    "run_id": pl.String,
}

EVENTS_SCHEMA = {
    "wafer_token": pl.String,
    "unit_key": pl.String,
    "unit_etag": pl.String,
    "event_time": pl.Datetime("us"),
    "source_format": pl.String,
    "lot": pl.String,
    "wafer": pl.String,
    "product": pl.String,
    "step": pl.String,
    "tester": pl.String,
    "stime": pl.String,
    "dies": pl.Int64,
    "pass_dies": pl.Int64,
    "b_only_dies": pl.Int64,
    "retested_dies": pl.Int64,
    "with_b": pl.Boolean,
    "bins": pl.List(pl.Int64),
    "bin_counts": pl.List(pl.Int64),
    "bin_pass": pl.List(pl.Boolean),  # per bin of `bins`: a passing bin (null: state of an older version)
    "bin_names": pl.List(pl.String),  # per bin of `bins`: its name where the file names it
    "latest": pl.Boolean,             # the wafer's latest event (wafer/events.py)
    "outputs_written": pl.Boolean,    # the PNG / JSON on disk are this event's
    "png_written": pl.Boolean,        # False: the map was too large to draw (JSON only)
    # the wafer's shape, for its merged map's notch and its pattern signature (null: state of an older version)
    "flat": pl.String,                # notch / flat side in the canonical frame: U, D, L, R
    "die_width_mm": pl.Float64,       # the file's die size, where it gives one
    "die_height_mm": pl.Float64,
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
    "unit_key": pl.String,            # the unit that reported it (replaced when the unit is redone)
    "first_seen": pl.Datetime("us", "UTC"),
    "run_id": pl.String,
}


def empty(schema: dict) -> pl.DataFrame:
    return pl.DataFrame(schema=schema)


def bin_columns(wafer, bins: list[int]) -> dict:
    """An event's ``bin_pass`` and ``bin_names`` for its ``bins``, from its map (the
    verdict its dies got: ``WaferMap.is_pass``); unknown without a map."""
    if wafer is None:
        return {"bin_pass": None, "bin_names": None}
    verdicts = wafer.is_pass(np.asarray(bins, dtype=np.int64)).tolist() if bins else []
    return {"bin_pass": [bool(v) for v in verdicts], "bin_names": [wafer.bin_names.get(b) for b in bins]}


def shape_columns(wafer) -> dict:
    """An event's ``flat`` and die size (mm), from its map; unknown without a map."""
    size = getattr(wafer, "die_size", None)
    return {"flat": wafer.flat if wafer is not None else None,
            "die_width_mm": float(size[0]) if size else None, "die_height_mm": float(size[1]) if size else None}


def conform(df: pl.DataFrame | None, schema: dict) -> pl.DataFrame:
    """``df`` with exactly ``schema``'s columns (missing ones null): state written by an
    older version of the code still reads."""
    if df is None:
        return empty(schema)
    missing = [pl.lit(None, dtype).alias(c) for c, dtype in schema.items() if c not in df.columns]
    return df.with_columns(missing).select(list(schema)).cast(schema)  # type: ignore[arg-type]


def _filled(df: pl.DataFrame, prefix: str) -> pl.DataFrame:
    # Nulls (no partner) must compare equal, so compare on filled copies.
    return df.with_columns([pl.col(c).fill_null("").alias(f"{prefix}{c}") for c in IDENTITY])


def split_units(current: pl.DataFrame, done: pl.DataFrame, *, force: bool = False
                ) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """``(kept, todo, dropped)``: which committed units still stand, which current units
    need processing, which committed units are gone (object deleted or replaced, B
    partner changed, no longer a unit).

    ``current`` has the IDENTITY columns; ``done`` is the committed units table. A unit
    whose last read failed is retried while it has attempts left; one whose object was
    replaced or deleted between listing and reading (``changed`` / ``vanished``) was never
    read, so it is redone whenever the same versions are listed again (on S3 the same
    bytes put back have the same ETag); ``force`` redoes all.
    """
    keyed_cur = _filled(current, "_")
    keyed_done = _filled(done, "_")
    on = [f"_{c}" for c in IDENTITY]
    if force:
        kept = done.head(0)
    else:
        settled = keyed_done.filter(
            pl.col("outcome").is_in(FINAL_OUTCOMES)
            | ((pl.col("outcome") == "read_error") & (pl.col("attempts") >= MAX_READ_ATTEMPTS))
        )
        kept = settled.join(keyed_cur.select(on), on=on, how="semi").drop(on)
    todo = keyed_cur.join(_filled(kept, "_").select(on), on=on, how="anti").drop(on)
    dropped = keyed_done.join(_filled(kept, "_").select(on), on=on, how="anti").drop(on)
    return kept, todo, dropped


def open_units(units: pl.DataFrame) -> pl.DataFrame:
    """Units whose objects still need a run of the day: a failed read with attempts left,
    and an object that changed or vanished while the run read it (when that version is
    listed again, be it put back unchanged, a run must take it; a sensor that has seen
    the version before would not ask for one)."""
    # bounded like read errors: a store whose listing keeps naming a version it cannot
    # serve must not make the reconcile sensor run the day on every tick
    return units.filter(pl.col("outcome").is_in(FAILED_OUTCOMES) & (pl.col("attempts") < MAX_READ_ATTEMPTS))


def failed_attempts(units: pl.DataFrame) -> dict[tuple[str, str], int]:
    """``(unit_key, unit_etag) -> failed reads so far`` of the committed units."""
    failed = units.filter(pl.col("outcome").is_in(FAILED_OUTCOMES))
    return {(k, e): n for k, e, n in failed.select("unit_key", "unit_etag", "attempts").iter_rows()}


def merge_rejects(old: pl.DataFrame, kept_units: pl.Series, new_rejects: pl.DataFrame) -> pl.DataFrame:
    """The day's unit rejects after a run: those of the kept units, and the new ones;
    a report seen before (by any earlier run) keeps its first_seen time."""
    old = conform(old, REJECT_SCHEMA)
    new = conform(new_rejects, REJECT_SCHEMA)
    same = ["key", "etag", "member", "reason"]
    earlier = old.select(same + ["first_seen"]).unique(subset=same, keep="first")
    new = (
        new.join(earlier.rename({"first_seen": "_fs"}), on=same, how="left", nulls_equal=True)
        .with_columns(pl.coalesce("_fs", "first_seen").alias("first_seen"))
        .drop("_fs")
    )
    kept = old.filter(pl.col("unit_key").is_in(kept_units.implode()))
    return pl.concat([kept, new], how="vertical")
