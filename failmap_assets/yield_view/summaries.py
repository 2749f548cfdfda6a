"""``wafer_summary`` and ``lot_summary``: a day's yield, from its dies, in two tables.

``wafer_summary`` has one row per wafer test event of the day (every event, retests
included, both sources); ``lot_summary`` one row per lot and step (and source and
product), over each wafer's *latest* event only: what the wafer is now, the same rule
as the day's yield in the UI. Every figure is computed from dies, so a table is a
function of the day's committed dies and events, nothing else.

Inputs (shaped by ``sources.py``):

``events``  one row per test event: the ``EVENT`` columns plus lot, wafer, insertion,
            product, step, tester, file_time, latest, partner_key, source_format
``dies``    one row per die that is a test result of an event: ``EVENT`` + x, y, bin, pass
``bin_names``  ``EVENT`` + bin, name, where the event's file names its bins

Yields are percentages (0..100) and null where there is nothing to divide (an empty
wafer, an empty ring): never 0 %, which would read as a dead wafer.
"""

from __future__ import annotations

import polars as pl

from failmap_assets.yield_view.zones import ZONES, normalised_radius, zone_of

#: Bump when a rule or a column changes: the assets' code_version, so Dagster shows
#: which days were summarised by an older rule.
SUMMARY_VERSION = 3  # 2: merged retests and stacked lot maps added to the day; 3: fail-map bin names, the lots' merged result

#: One wafer test event: its source pipeline, wafer and object (an A map, an STDF file).
EVENT = ["source", "wafer_token", "object_key"]
#: A lot_summary row: a lot at one step, per source (a wafer's latest event is per source).
LOT = ["source", "lot", "step"]
#: How many loss bins lot_summary lists per lot.
WORST_BINS = 5

BIN_COUNT = pl.Struct({"bin": pl.Int64, "name": pl.String, "pass": pl.Boolean, "dies": pl.Int64})
LOSS_BIN = pl.Struct({"bin": pl.Int64, "name": pl.String, "dies": pl.Int64, "pct_of_dies": pl.Float64})


def _zone_columns(with_pass: bool) -> dict[str, tuple[pl.DataType, str]]:
    cols: dict[str, tuple[pl.DataType, str]] = {}
    for z in ZONES:
        cols[f"{z}_dies"] = (pl.Int64, f"dies in the {z} ring (see yield_view/zones.py for the ring bounds)")
        if with_pass:
            cols[f"{z}_pass_dies"] = (pl.Int64, f"passing dies in the {z} ring")
        cols[f"{z}_yield_pct"] = (pl.Float64, f"yield of the {z} ring, % (null: no die there)")
    return cols


#: column -> (type, what it means); the tables are written with exactly these columns.
WAFER_SUMMARY_COLUMNS: dict[str, tuple[pl.DataType, str]] = {
    "source": (pl.String, "failmap (fail maps, industry-format maps included) or stdf"),
    "lot": (pl.String, "lot id"),
    "wafer": (pl.String, "wafer id / slot"),
    "wafer_token": (pl.String, "the wafer's token (the name of its PNG and JSON)"),
    "insertion": (pl.String, "fail maps: the insertion letter of the key (P prime, R retest, C correlation); "
                             "STDF: the lot retest code (MIR RTST_COD); null when unknown"),
    "product": (pl.String, "product"),
    "step": (pl.String, "test step"),
    "tester": (pl.String, "tester"),
    "file_time": (pl.Datetime("us"), "when the event was tested (fab time): the key's time for fail maps, the "
                                     "file's start time for STDF; the latest-event rule orders by it"),
    "dies": (pl.Int64, "dies tested (fail maps: the A map's dies; STDF: parts with x/y, retests resolved)"),
    "pass_dies": (pl.Int64, "passing dies"),
    "yield_pct": (pl.Float64, "pass_dies / dies, % (null: an empty wafer)"),
    **_zone_columns(with_pass=True),
    "bins": (pl.List(BIN_COUNT), "dies per bin, most dies first: bin, name (where the file names it), pass, dies"),
    "latest": (pl.Boolean, "whether this is the wafer's latest test event (what its map shows)"),
    "object_key": (pl.String, "the object of the event: the A map, or the STDF file"),
    "partner_key": (pl.String, "the A map's bucket-B partner, if any"),
    "source_format": (pl.String, "the map's format (failmap, g85, e142, tsk, ascii:..., klarf, stdf)"),
}

LOT_SUMMARY_COLUMNS: dict[str, tuple[pl.DataType, str]] = {
    "source": (pl.String, "failmap or stdf (a wafer's latest event is per source)"),
    "lot": (pl.String, "lot id"),
    "step": (pl.String, "test step"),
    "product": (pl.String, "the product of the lot's wafers (several: comma-separated; null: none named)"),
    "wafers": (pl.Int64, "wafers of the lot tested this day"),
    "test_events": (pl.Int64, "their test events, retests included"),
    "retested_wafers": (pl.Int64, "wafers with more than one test event"),
    "dies": (pl.Int64, "dies of the wafers' latest events"),
    "pass_dies": (pl.Int64, "passing dies of the wafers' latest events"),
    "yield_pct": (pl.Float64, "pass_dies / dies over the lot, %"),
    "yield_pct_mean": (pl.Float64, "mean of the wafers' yields, % (empty wafers left out)"),
    "yield_pct_min": (pl.Float64, "lowest wafer yield, %"),
    "yield_pct_max": (pl.Float64, "highest wafer yield, %"),
    "worst_bins": (pl.List(LOSS_BIN), f"the top {WORST_BINS} fail bins by dies: bin, name, dies, "
                                      "pct_of_dies (share of the lot's dies)"),
    **_zone_columns(with_pass=False),
    "merged_dies": (pl.Int64, "dies of the lot's wafers merged over their insertions by FAILMAP_MERGE_RULE "
                              "(merged_wafers; null: no wafer of the lot could be merged)"),
    "merged_pass_dies": (pl.Int64, "passing dies of the merged wafers: the lot's final result"),
    "merged_yield_pct": (pl.Float64, "merged_pass_dies / merged_dies, %"),
}


def schema_of(columns: dict[str, tuple[pl.DataType, str]]) -> pl.Schema:
    return pl.Schema({name: dtype for name, (dtype, _) in columns.items()})


def _pct(part: pl.Expr, whole: pl.Expr) -> pl.Expr:
    return pl.when(whole > 0).then(100.0 * part / whole).otherwise(None)


def event_figures(dies: pl.DataFrame, bin_names: pl.DataFrame) -> pl.DataFrame:
    """Per test event (``EVENT``): dies, pass dies, dies and pass dies per ring, dies per bin."""
    zoned = dies.with_columns(
        pl.col("bin").cast(pl.Int64),
        zone_of(normalised_radius(EVENT)).alias("zone"),
    )
    counts = zoned.group_by(EVENT).agg(
        pl.len().cast(pl.Int64).alias("dies"),
        pl.col("pass").sum().cast(pl.Int64).alias("pass_dies"),
        *[e for z in ZONES for e in (
            (pl.col("zone") == z).sum().cast(pl.Int64).alias(f"{z}_dies"),
            ((pl.col("zone") == z) & pl.col("pass")).sum().cast(pl.Int64).alias(f"{z}_pass_dies"),
        )],
    )
    names = bin_names.select(*EVENT, pl.col("bin").cast(pl.Int64), pl.col("name").cast(pl.String)).unique(
        subset=[*EVENT, "bin"], keep="first")
    per_bin = (
        zoned.group_by([*EVENT, "bin"]).agg(pl.len().cast(pl.Int64).alias("dies"), pl.col("pass").all())
        .join(names, on=[*EVENT, "bin"], how="left", nulls_equal=True)
        .sort([*EVENT, "dies", "bin"], descending=[False] * len(EVENT) + [True, False])
        .group_by(EVENT, maintain_order=True)
        .agg(pl.struct("bin", "name", "pass", "dies").alias("bins"))
    )
    return counts.join(per_bin, on=EVENT, how="left", nulls_equal=True)


def wafer_summary(events: pl.DataFrame, dies: pl.DataFrame, bin_names: pl.DataFrame) -> pl.DataFrame:
    """One row per test event, with its figures (an event without dies has 0 dies and
    null yields)."""
    counts = [c for c in WAFER_SUMMARY_COLUMNS if c.endswith("dies")]
    out = (
        events.join(event_figures(dies, bin_names), on=EVENT, how="left", nulls_equal=True)
        .with_columns(
            *[pl.col(c).fill_null(0) for c in counts],
            pl.col("bins").fill_null(pl.lit([], dtype=pl.List(BIN_COUNT))),
        )
        .with_columns(
            _pct(pl.col("pass_dies"), pl.col("dies")).alias("yield_pct"),
            *[_pct(pl.col(f"{z}_pass_dies"), pl.col(f"{z}_dies")).alias(f"{z}_yield_pct") for z in ZONES],
        )
    )
    return (out.select(list(WAFER_SUMMARY_COLUMNS)).cast(dict(schema_of(WAFER_SUMMARY_COLUMNS)))
            .sort(["source", "lot", "wafer_token", "file_time", "object_key"], nulls_last=True))


def lot_summary(wafers: pl.DataFrame, merged: pl.DataFrame | None = None) -> pl.DataFrame:
    """One row per ``LOT`` over the wafers' latest events (``wafers`` is a wafer_summary),
    with the final result of its wafers merged over their insertions (``merged``, a
    merged_wafers table; None: not known, null)."""
    latest = wafers.filter(pl.col("latest"))
    events = wafers.group_by([*LOT, "wafer_token"]).agg(pl.len().alias("_events")).group_by(LOT).agg(
        pl.col("_events").sum().cast(pl.Int64).alias("test_events"),
        (pl.col("_events") > 1).sum().cast(pl.Int64).alias("retested_wafers"),
    )
    products = pl.col("product").drop_nulls().unique().sort().str.join(",")
    figures = latest.group_by(LOT).agg(
        pl.when(products != "").then(products).alias("product"),
        pl.len().cast(pl.Int64).alias("wafers"),
        pl.col("dies").sum(), pl.col("pass_dies").sum(),
        pl.col("yield_pct").mean().alias("yield_pct_mean"),
        pl.col("yield_pct").min().alias("yield_pct_min"),
        pl.col("yield_pct").max().alias("yield_pct_max"),
        *[pl.col(f"{z}_{c}").sum() for z in ZONES for c in ("dies", "pass_dies")],
    )
    loss = (
        latest.select(*LOT, "bins").explode("bins").unnest("bins")
        .drop_nulls("bin").filter(~pl.col("pass"))
        .group_by([*LOT, "bin"]).agg(pl.col("dies").sum(), pl.col("name").drop_nulls().first())
        .join(figures.select(*LOT, pl.col("dies").alias("_lot_dies")), on=LOT, how="left", nulls_equal=True)
        .with_columns(_pct(pl.col("dies"), pl.col("_lot_dies")).alias("pct_of_dies"))
        .sort([*LOT, "dies", "bin"], descending=[False] * len(LOT) + [True, False])
        .group_by(LOT, maintain_order=True)
        .agg(pl.struct("bin", "name", "dies", "pct_of_dies").head(WORST_BINS).alias("worst_bins"))
    )
    if merged is None:
        merged = pl.DataFrame(schema={c: pl.String for c in LOT} | {"dies": pl.Int64, "pass_dies": pl.Int64})
    final = merged.group_by(LOT).agg(pl.col("dies").sum().alias("merged_dies"),
                                     pl.col("pass_dies").sum().alias("merged_pass_dies"))
    out = (
        figures.join(events, on=LOT, how="left", nulls_equal=True)
        .join(loss, on=LOT, how="left", nulls_equal=True)
        .join(final, on=LOT, how="left", nulls_equal=True)
        .with_columns(
            _pct(pl.col("merged_pass_dies"), pl.col("merged_dies")).alias("merged_yield_pct"),
            pl.col("worst_bins").fill_null(pl.lit([], dtype=pl.List(LOSS_BIN))),
            _pct(pl.col("pass_dies"), pl.col("dies")).alias("yield_pct"),
            *[_pct(pl.col(f"{z}_pass_dies"), pl.col(f"{z}_dies")).alias(f"{z}_yield_pct") for z in ZONES],
        )
    )
    return (out.select(list(LOT_SUMMARY_COLUMNS)).cast(dict(schema_of(LOT_SUMMARY_COLUMNS)))
            .sort(LOT, nulls_last=True))


def day_figures(wafers: pl.DataFrame, lots: pl.DataFrame) -> dict:
    """The day in numbers, for the UI: yield over the wafers' latest events (None
    without dies), wafers, test events, dies, lots."""
    latest = wafers.filter(pl.col("latest"))
    dies = int(latest["dies"].sum() or 0)
    pass_dies = int(latest["pass_dies"].sum() or 0)
    return {
        "yield": round(pass_dies / dies, 6) if dies else None,
        "wafers": latest.height,
        "test_events": wafers.height,
        "dies": dies,
        "pass_dies": pass_dies,
        "lots": lots.height,
        "sources": {s: int(n) for s, n in latest.group_by("source").len().sort("source").iter_rows()},
    }
