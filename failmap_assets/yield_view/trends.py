"""Yield trends: daily yield by product, step and tester, and the bin pareto over days.

Computed from the committed ``wafer_summary`` of each day of a window (read only
through the summaries' manifests, so never a half-written day), over each wafer's
latest test event of the day (the rule of the day's yield everywhere else). The
window's two tables are committed like a day by ``pipeline/trends_day.py``: written
under new names, then one manifest naming them (``state/trends/date=<last day>/``)
with a compare-and-swap; a window whose summary commits did not change is not
recomputed. The chart is a PNG drawn with Pillow for the UI.
"""

from __future__ import annotations

import io
from datetime import date, timedelta

import polars as pl
from PIL import Image, ImageDraw, ImageFont

from failmap_assets.storage.committed_tables import named_table_files
from failmap_assets.storage.day_manifest import read_manifest
from failmap_assets.storage.layout import SUMMARY_PIPELINE
from failmap_assets.storage.object_store import ObjectStore

#: Bump when a rule or a column changes (the asset's code_version).
TRENDS_VERSION = 1
#: What a trend reads of wafer_summary.
_READ = ["product", "step", "tester", "dies", "pass_dies", "bins", "latest"]
#: The dimensions yield is broken down by, in this order.
DIMENSIONS = ("product", "step", "tester")
#: A wafer without a product / step / tester counts under this.
UNNAMED = "(none)"

YIELD_TREND_COLUMNS = {"date": pl.Date, "by": pl.String, "value": pl.String, "wafers": pl.Int64,
                       "dies": pl.Int64, "pass_dies": pl.Int64, "yield_pct": pl.Float64}
BIN_PARETO_COLUMNS = {"date": pl.Date, "bin": pl.Int64, "name": pl.String, "pass": pl.Boolean,
                      "dies": pl.Int64, "pct_of_dies": pl.Float64}


def window(last: date, days: int) -> list[date]:
    """The ``days`` days ending at ``last``, oldest first."""
    return [last - timedelta(days=n) for n in range(days - 1, -1, -1)]


def read_summaries(store: ObjectStore, days: list[date]) -> tuple[pl.DataFrame, dict[str, int | None]]:
    """The committed wafer_summary rows of the days (with a ``date`` column), and the
    summaries' commit generation of each day (None: not summarised)."""
    frames = [pl.DataFrame(schema={"date": pl.Date})]
    generations: dict[str, int | None] = {}
    for day in days:
        manifest, _ = read_manifest(store, SUMMARY_PIPELINE, day)
        generations[day.isoformat()] = None if manifest is None else manifest.generation
        if manifest is None:
            continue
        for key in named_table_files(manifest).get("wafer_summary", []):
            rows = pl.read_parquet(io.BytesIO(store.get(key)), columns=_READ)
            frames.append(rows.with_columns(pl.lit(day).alias("date")))
    return pl.concat(frames, how="diagonal_relaxed"), generations


def yield_trend(wafers: pl.DataFrame) -> pl.DataFrame:
    """Per day and per product, step and tester: wafers, dies, pass dies, yield % (null
    without dies), over the wafers' latest events."""
    if not wafers.height:
        return pl.DataFrame(schema=YIELD_TREND_COLUMNS)
    latest = wafers.filter(pl.col("latest"))
    parts = [
        latest.group_by("date", pl.col(dim).fill_null(UNNAMED).alias("value"))
        .agg(wafers=pl.len(), dies=pl.col("dies").sum(), pass_dies=pl.col("pass_dies").sum())
        .with_columns(by=pl.lit(dim))
        for dim in DIMENSIONS
    ]
    out = pl.concat(parts).with_columns(
        yield_pct=pl.when(pl.col("dies") > 0).then((100 * pl.col("pass_dies") / pl.col("dies")).round(2)))
    return out.select(list(YIELD_TREND_COLUMNS)).cast(YIELD_TREND_COLUMNS).sort("date", "by", "value")


def bin_pareto_trend(wafers: pl.DataFrame) -> pl.DataFrame:
    """Per day, dies per bin over the wafers' latest events: loss (failing) bins first,
    most dies first; the bin's name where a file names it."""
    if not wafers.height:
        return pl.DataFrame(schema=BIN_PARETO_COLUMNS)
    latest = wafers.filter(pl.col("latest"))
    bins = latest.select("date", "bins").explode("bins").unnest("bins").drop_nulls("bin")
    per_day = bins.group_by("date", "bin", "pass").agg(name=pl.col("name").drop_nulls().first(),
                                                       dies=pl.col("dies").sum())
    day_dies = latest.group_by("date").agg(total=pl.col("dies").sum())
    out = per_day.join(day_dies, on="date").with_columns(
        pct_of_dies=pl.when(pl.col("total") > 0).then((100 * pl.col("dies") / pl.col("total")).round(3)))
    return out.select(list(BIN_PARETO_COLUMNS)).cast(BIN_PARETO_COLUMNS).sort(
        ["date", "pass", "dies", "bin"], descending=[False, False, True, False])


# ----- the chart --------------------------------------------------------------------------
_W, _H, _LEFT, _RIGHT, _TOP, _BOTTOM = 720, 360, 56, 150, 24, 44
_COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
            (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


def trend_chart(trend: pl.DataFrame, days: list[date]) -> bytes:
    """A PNG: daily yield (%) per product over the days, one line each, axes labelled,
    a legend on the right. Days without dies of a product leave a gap."""
    img = Image.new("RGB", (_W, _H), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    x0, x1, y0, y1 = _LEFT, _W - _RIGHT, _TOP, _H - _BOTTOM

    def px(i: int) -> float:
        return x0 + (x1 - x0) * (i / max(len(days) - 1, 1))

    products = trend.filter(pl.col("by") == "product")
    # The y axis starts at the 10 % step below the lowest yield: differences of a few
    # points are what a trend is read for, and 0..100 would flatten them.
    lowest = products["yield_pct"].drop_nulls().min()
    floor = 0 if lowest is None else max(0, int(lowest // 10) * 10 - 10)
    tick = 20 if floor < 40 else 10

    def py(pct: float) -> float:
        return y1 - (y1 - y0) * (pct - floor) / (100 - floor)

    for pct in range(floor, 101, tick):   # gridlines
        draw.line([(x0, py(pct)), (x1, py(pct))], fill=(225, 225, 225))
        draw.text((x0 - 30, py(pct) - 6), f"{pct}", fill="black", font=font)
    draw.line([(x0, y0), (x0, y1), (x1, y1)], fill="black")
    draw.text((4, y0 - 18), "yield %", fill="black", font=font)
    step = max(1, len(days) // 6)
    for i in range(0, len(days), step):
        draw.line([(px(i), y1), (px(i), y1 + 4)], fill="black")
        draw.text((px(i) - 28, y1 + 8), days[i].isoformat(), fill="black", font=font)
    draw.text(((x0 + x1) // 2 - 30, _H - 16), "fab day", fill="black", font=font)

    index = {d: i for i, d in enumerate(days)}
    for n, product in enumerate(sorted(products["value"].unique().to_list())):
        colour = _COLOURS[n % len(_COLOURS)]
        points = sorted((index[d], y) for d, y in products.filter(pl.col("value") == product)
                        .select("date", "yield_pct").iter_rows() if d in index and y is not None)
        run: list[tuple[float, float]] = []
        for k, (i, y) in enumerate(points):
            if run and i != points[k - 1][0] + 1:   # a day missing: break the line
                _polyline(draw, run, colour)
                run = []
            run.append((px(i), py(y)))
        _polyline(draw, run, colour)
        ly = y0 + 14 * n
        draw.rectangle([x1 + 12, ly + 2, x1 + 22, ly + 10], fill=colour)
        draw.text((x1 + 28, ly), product[:18], fill="black", font=font)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _polyline(draw: ImageDraw.ImageDraw, points: list[tuple[float, float]], colour) -> None:
    if len(points) > 1:
        draw.line(points, fill=colour, width=2)
    for x, y in points:
        draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=colour)
