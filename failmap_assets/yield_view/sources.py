"""Each pipeline's committed tables in the one shape ``summaries.py`` reads.

Fail maps: the events state (one row per test event, ``latest`` by the day's rule),
the units state (the A map's B partner) and the die table (``failmap_dies``: the dies
of the A map, ``in_a``, are the test results; B-only dies are not). STDF: the events
state, the ``files`` table (the lot retest code) and each event's wafer map rebuilt
from the committed ``parts`` (``pipeline/summary_day.py``).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from failmap_assets.discovery.keys import parse_keys
from failmap_assets.wafer.model import WaferMap

FAILMAP, STDF = "failmap", "stdf"

EVENTS_SCHEMA = {"source": pl.String, "wafer_token": pl.String, "object_key": pl.String, "partner_key": pl.String,
                 "lot": pl.String, "wafer": pl.String, "insertion": pl.String, "product": pl.String,
                 "step": pl.String, "tester": pl.String, "file_time": pl.Datetime("us"), "latest": pl.Boolean,
                 "source_format": pl.String, "flat": pl.String}
DIES_SCHEMA = {"source": pl.String, "wafer_token": pl.String, "object_key": pl.String, "x": pl.Int32,
               "y": pl.Int32, "bin": pl.Int64, "pass": pl.Boolean}
BIN_NAMES_SCHEMA = {"source": pl.String, "wafer_token": pl.String, "object_key": pl.String, "bin": pl.Int64,
                    "name": pl.String}


def _events(events: pl.DataFrame, source: str) -> pl.DataFrame:
    return events.select(
        pl.lit(source).alias("source"), "wafer_token", pl.col("unit_key").alias("object_key"), "partner_key",
        "lot", "wafer", "insertion", "product", "step", "tester", pl.col("event_time").alias("file_time"),
        "latest", "source_format", "flat",
    ).select(list(EVENTS_SCHEMA)).cast(EVENTS_SCHEMA)


def failmap_events(events: pl.DataFrame, units: pl.DataFrame) -> pl.DataFrame:
    """Fail-map test events; the insertion is the letter the key grammar reads from the
    A map's name (null for a key outside it, e.g. an industry-format map)."""
    partners = units.select("unit_key", "unit_etag", "partner_key").unique(["unit_key", "unit_etag"])
    letters = parse_keys(events["unit_key"].unique()).select(pl.col("key").alias("unit_key"), "insertion")
    return _events(
        events.join(partners, on=["unit_key", "unit_etag"], how="left").join(letters, on="unit_key", how="left"),
        FAILMAP,
    )


def failmap_dies(die_table: pl.DataFrame) -> pl.DataFrame:
    """The test results among the die table's rows: the A map's dies."""
    return die_table.filter(pl.col("in_a")).select(
        pl.lit(FAILMAP).alias("source"), "wafer_token", pl.col("a_key").alias("object_key"), "x", "y",
        pl.col("bin").cast(pl.Int64), "pass",
    )


def failmap_bin_names(events: pl.DataFrame) -> pl.DataFrame:
    """The bin names each fail-map event's file gives (its ``BINDEF`` lines, an industry
    format's bin legend), as the events state recorded them beside its bins: the names
    of the JSON legend. Events of an older state version (no names) name none."""
    pairs = events.select("wafer_token", "unit_key", "bins", "bin_names").filter(
        pl.col("bin_names").is_not_null() & (pl.col("bins").list.len() == pl.col("bin_names").list.len()))
    return (pairs.explode("bins", "bin_names").drop_nulls("bin_names")
            .select(pl.lit(FAILMAP).alias("source"), "wafer_token", pl.col("unit_key").alias("object_key"),
                    pl.col("bins").alias("bin"), pl.col("bin_names").alias("name"))
            .cast(BIN_NAMES_SCHEMA))


def stdf_events(events: pl.DataFrame, files: pl.DataFrame) -> pl.DataFrame:
    """STDF test events; the insertion is the file's lot retest code (MIR RTST_COD),
    null when the tester left it blank."""
    code = pl.col("rtst_cod").str.strip_chars()
    codes = files.select(pl.col("source_key").alias("unit_key"),
                         pl.when(code != "").then(code).alias("insertion")).unique("unit_key")
    return _events(
        events.join(codes, on="unit_key", how="left").with_columns(pl.lit(None, pl.String).alias("partner_key")),
        STDF,
    )


def map_dies(source: str, wafer_token: str, object_key: str, wafer: WaferMap) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One wafer map's dies and bin names, as rows of the event ``(source, wafer_token, object_key)``."""
    n = wafer.die_count
    dies = pl.DataFrame({
        "source": [source] * n, "wafer_token": [wafer_token] * n, "object_key": [object_key] * n,
        "x": np.asarray(wafer.x, np.int32), "y": np.asarray(wafer.y, np.int32),
        "bin": np.asarray(wafer.bin, np.int64), "pass": wafer.is_pass(),
    }, schema=DIES_SCHEMA)
    names = pl.DataFrame([{"source": source, "wafer_token": wafer_token, "object_key": object_key,
                           "bin": b, "name": name} for b, name in sorted(wafer.bin_names.items())],
                         schema=BIN_NAMES_SCHEMA)
    return dies, names
