"""What the day's checks verify, computed from the committed day (its manifest), not
from what one run wrote. Pure over the stores: the Dagster checks wrap these."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from failmap_assets.storage.day_manifest import DayManifest
from failmap_assets.storage.object_store import ObjectStore

_ROW_KEY = ["wafer_token", "a_key", "x", "y"]
#: where a fail-map commit records its die-row verdict (``manifest.totals``)
DIE_ROWS_VERDICT = "die_rows_check"


@dataclass
class DieRowsReport:
    rows: int = 0
    duplicated: int = 0                              # (wafer_token, a_key, x, y) seen more than once
    duplicate_examples: list = field(default_factory=list)
    missing_events: int = 0                          # events whose rows are fewer than their dies
    extra_events: int = 0                            # rows of events the day does not have / more rows
    count_examples: list = field(default_factory=list)
    missing_parts: list = field(default_factory=list)  # named by the manifest, gone from the store


def check_die_rows(store: ObjectStore, manifest: DayManifest, events: pl.DataFrame) -> DieRowsReport:
    """One die of one test event is one row (a retest inside a file replaces, a B-only
    die does not duplicate an A die), and every test event of the day has exactly its
    dies in the table (A dies + B dies without an A die). Reads four columns, part by
    part: a day of millions of dies is checked in tens of MB."""
    report = DieRowsReport()
    codes: dict[tuple[str, str], int] = {}
    code_parts, xs, ys = [], [], []
    for part in manifest.tables.get("failmap_dies", []):
        try:
            data = store.get(part)
        except FileNotFoundError:
            report.missing_parts.append(part)  # its rows are missing: dies_complete says so
            continue
        t = pq.read_table(io.BytesIO(data), columns=_ROW_KEY)
        if t.num_rows == 0:
            continue
        df = pl.from_arrow(t)
        pairs = df.select("wafer_token", "a_key").unique(maintain_order=True)
        for token, key in pairs.iter_rows():
            codes.setdefault((token, key), len(codes))
        mapping = pl.DataFrame({"wafer_token": [k[0] for k in codes], "a_key": [k[1] for k in codes],
                                "_code": list(codes.values())}, schema_overrides={"_code": pl.Int64})
        code_parts.append(df.join(mapping, on=["wafer_token", "a_key"], how="left")["_code"].to_numpy())
        xs.append(t.column("x").to_numpy())
        ys.append(t.column("y").to_numpy())
    if code_parts:
        code, x, y = np.concatenate(code_parts), np.concatenate(xs), np.concatenate(ys)
        report.rows = int(len(code))
        order = np.lexsort((y, x, code))
        c, xx, yy = code[order], x[order], y[order]
        same = (c[1:] == c[:-1]) & (xx[1:] == xx[:-1]) & (yy[1:] == yy[:-1])
        report.duplicated = int(same.sum())
        names = {v: k for k, v in codes.items()}
        report.duplicate_examples = [(*names[int(c[i])], int(xx[i]), int(yy[i])) for i in np.flatnonzero(same)[:5]]
        counts = pl.DataFrame({"_code": code}).group_by("_code").len()
        rows = counts.with_columns(
            pl.col("_code").replace_strict({v: k[0] for k, v in codes.items()}, return_dtype=pl.String).alias("wafer_token"),
            pl.col("_code").replace_strict({v: k[1] for k, v in codes.items()}, return_dtype=pl.String).alias("unit_key"),
        ).select("wafer_token", "unit_key", pl.col("len").cast(pl.Int64).alias("rows"))
    else:
        rows = pl.DataFrame(schema={"wafer_token": pl.String, "unit_key": pl.String, "rows": pl.Int64})
    expected = events.select("wafer_token", "unit_key", (pl.col("dies") + pl.col("b_only_dies")).alias("expected"))
    joined = expected.join(rows, on=["wafer_token", "unit_key"], how="full", coalesce=True).with_columns(
        pl.col("expected").fill_null(0), pl.col("rows").fill_null(0))
    wrong = joined.filter(pl.col("expected") != pl.col("rows"))
    report.missing_events = wrong.filter(pl.col("rows") < pl.col("expected")).height
    report.extra_events = wrong.filter(pl.col("rows") > pl.col("expected")).height
    report.count_examples = wrong.head(5).rows()
    return report


def die_rows_record(report: DieRowsReport) -> dict:
    """The verdict as it is kept in a manifest's totals (JSON)."""
    return {"rows": report.rows, "duplicated": report.duplicated,
            "duplicate_examples": [list(e) for e in report.duplicate_examples],
            "missing_events": report.missing_events, "extra_events": report.extra_events,
            "count_examples": [list(e) for e in report.count_examples], "missing_parts": report.missing_parts}


def die_rows_verdict(store: ObjectStore, manifest: DayManifest, events: pl.DataFrame) -> DieRowsReport:
    """The die-row checks of a committed day. The commit that made the day recorded them,
    computed from its parts read back from the store; a part is written once under a
    name of its run and never changed, so while every part the manifest names is still
    listed, that verdict stands, and a run with nothing to do does not read the day's
    die table again. A part gone (deleted by hand, a lifecycle rule) means reading all."""
    recorded = manifest.totals.get(DIE_ROWS_VERDICT)
    parts = manifest.tables.get("failmap_dies", [])
    if recorded is not None:
        folders = {key.rsplit("/", 1)[0] + "/" for key in parts}
        listed = {o.key for folder in folders for o in store.list(folder)}
        if set(parts) <= listed:
            return DieRowsReport(
                rows=recorded["rows"], duplicated=recorded["duplicated"],
                duplicate_examples=[tuple(e) for e in recorded["duplicate_examples"]],
                missing_events=recorded["missing_events"], extra_events=recorded["extra_events"],
                count_examples=[tuple(e) for e in recorded["count_examples"]],
                missing_parts=list(recorded.get("missing_parts", [])))
    return check_die_rows(store, manifest, events)


def missing_wafer_files(store: ObjectStore, manifest: DayManifest, events: pl.DataFrame, *,
                        json_key, png_key) -> tuple[int, int, list, list]:
    """(PNG, JSON, latest events without their JSON, ... without their PNG): every wafer's
    latest event has its JSON, and its PNG unless the map was too large to draw."""
    present = {o.key for prefix in {k.rsplit("/", 1)[0] + "/" for k in manifest.wafer_files} for o in store.list(prefix)}
    latest = events.filter(pl.col("latest"))
    no_json = [t for t in latest["wafer_token"].to_list() if json_key(t) not in present]
    no_png = [t for t, ok in latest.select("wafer_token", "png_written").iter_rows() if ok and png_key(t) not in present]
    pngs = sum(1 for k in present if k.startswith("png/") and k in manifest.wafer_files)   # contract PNGs
    jsons = sum(1 for k in present if k.endswith(".json") and k in manifest.wafer_files)
    return pngs, jsons, no_json, no_png
