"""What a materialization shows in the UI: the whole day first, then what this run did.

Day figures come from the day's commit (``DayManifest.totals``), so every
materialization describes the day as it now is, whichever run made it; a day with
no dies has no yield entry at all (the UI would plot 0 % as a crash). Run figures
are prefixed ``run_``.
"""

from __future__ import annotations

import base64

from dagster import MetadataValue, TableColumn, TableSchema


def markdown_table(rows, headers: list[str]) -> str:
    def cell(v) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ") if v is not None else ""

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def day_yield(totals: dict) -> dict:
    """The day's yield as a percentage (a numeric entry Dagster plots per partition);
    nothing when the day has no dies."""
    y = totals.get("yield")
    return {} if y is None else {"yield_pct": MetadataValue.float(round(100 * y, 2))}


def row_count(rows: int) -> dict:
    """The table's row count as Dagster's standard entry (from the day's totals, never a read)."""
    return {"dagster/row_count": MetadataValue.int(int(rows))}


#: How many wafers the worst-wafer table lists.
WORST_WAFERS = 10


def worst_wafers(events) -> dict:
    """The day's lowest-yield wafers (their latest test event), from the day's events:
    token, yield, dies and the failing bin holding most of its dies, with its name where
    the file names it (state of an older version, without verdicts: the largest bin).
    Nothing when the day has no events."""
    if events is None or not events.height:
        return {}
    rows = []
    for e in events.filter(events["latest"] & (events["dies"] > 0)).iter_rows(named=True):
        bins = e["bins"] or []
        verdicts = e.get("bin_pass") or [None] * len(bins)
        names = e.get("bin_names") or [None] * len(bins)
        counts = sorted((-n, b, name) for b, n, ok, name in zip(bins, e["bin_counts"] or [], verdicts, names)
                        if ok is not True)   # a passing bin is no loss
        top = f"{counts[0][1]}{f' {counts[0][2]}' if counts[0][2] else ''} ({-counts[0][0]} dies)" if counts else ""
        rows.append((round(100 * e["pass_dies"] / e["dies"], 2), e["wafer_token"], e["dies"], top))
    rows.sort(key=lambda r: (r[0], r[1]))
    table = [(token, f"{y:.2f}%", dies, top) for y, token, dies, top in rows[:WORST_WAFERS]]
    return {"worst_wafers": MetadataValue.md(markdown_table(table, ["wafer", "yield", "dies", "top loss bin"]))}


def worst_wafers_grid(png: bytes | None) -> dict:
    """The day's worst wafers drawn small (``yield_view/worst_grid.py``), as an image the
    UI shows; nothing when the day has no wafer with dies."""
    if png is None:
        return {}
    return {"worst_wafers_maps": MetadataValue.md(
        f"![worst wafers of the day](data:image/png;base64,{base64.b64encode(png).decode()})")}


def wafer_figures(totals: dict) -> dict:
    return {
        **day_yield(totals),
        "wafers": totals.get("wafers", 0),
        "test_events": totals.get("test_events", 0),
        "dies": totals.get("dies", 0),
        "die_rows": totals.get("die_rows", 0),
        "retested_wafers": totals.get("retested_wafers", 0),
        "rejects": totals.get("rejects", 0),
    }


def table_schema(columns: dict) -> TableSchema:
    """A table's column schema for the UI, from ``{column: (polars type, description)}``."""
    return TableSchema(columns=[TableColumn(name, str(dtype), description=text)
                                for name, (dtype, text) in columns.items()])


def bin_pareto(totals: dict) -> dict:
    """The day's bins: loss bins first with their names (``totals["bin_pareto"]``), or,
    for a commit of an older version without verdicts, the bins by dies."""
    named = totals.get("bin_pareto")
    if named:
        return pareto_markdown([tuple(r) for r in named], total=totals.get("dies", 0))
    bins = totals.get("bins") or []
    total = sum(n for _, n in bins) or 1
    rows, cumulative = [], 0
    for bin_no, count in bins:
        cumulative += count
        rows.append((bin_no, count, f"{100 * count / total:.2f}%", f"{100 * cumulative / total:.2f}%"))
    return {"bin_pareto": MetadataValue.md(markdown_table(rows, ["bin", "dies", "share", "cumulative"]))}


def pareto_markdown(rows: list[tuple], total: int) -> dict:
    """``(bin, name, pass, dies)`` rows, already loss bins first, as the UI's pareto:
    each bin's share of the dies."""
    total = total or sum(r[3] for r in rows) or 1
    table = [(b, name or "", "pass" if passes else "loss", dies, f"{100 * dies / total:.2f}%")
             for b, name, passes, dies in rows]
    return {"bin_pareto": MetadataValue.md(markdown_table(table, ["bin", "name", "kind", "dies", "share"]))}


def window_yield(trend) -> dict:
    """The yield over a trend's window (every product's latest-event dies pooled), as
    ``yield_pct`` first; nothing when the window has no dies."""
    if trend is None or not trend.height:
        return {}
    products = trend.filter(trend["by"] == "product")
    dies = int(products["dies"].sum() or 0)
    return day_yield({"yield": products["pass_dies"].sum() / dies if dies else None})


def trend_pareto(pareto, top: int = 12) -> dict:
    """The window's bins over all its days, in the day pareto's order and form."""
    if pareto is None or not pareto.height:
        return {"bin_pareto": MetadataValue.md("_no dies in the window_")}
    import polars as pl   # only the trends pass frames here

    bins = (pareto.group_by("bin", "pass").agg(pl.col("name").drop_nulls().first(), pl.col("dies").sum())
            .sort(["pass", "dies", "bin"], descending=[False, True, False]))
    return pareto_markdown(list(bins.select("bin", "name", "pass", "dies").head(top).iter_rows()),
                           total=int(bins["dies"].sum()))


def rejects_by_reason(totals: dict) -> dict:
    """Errors (objects that could not be used) and warnings (skipped), most frequent reason first."""
    rows = totals.get("rejects_by_reason") or []
    return {
        **day_yield(totals),
        **row_count(totals.get("rejects", 0) + totals.get("warnings", 0)),  # the table holds both
        "rejects": totals.get("rejects", 0),
        "warnings": totals.get("warnings", 0),
        "by_reason": MetadataValue.md(markdown_table(rows, ["severity", "reason", "objects"])),
    }


def run_figures(*, processed: int, already_done: int, dropped: int, failed: int, seconds: float,
                committed: bool, waited_s: float, bytes_in: int, generation: int) -> dict:
    """What this run did (the day figures above say what the day is)."""
    s = max(seconds, 1e-9)
    return {
        "run_processed": processed,
        "run_already_done": already_done,
        "run_dropped": dropped,
        "run_failed": failed,
        "run_committed": committed,
        "run_generation": generation,
        "run_seconds": MetadataValue.float(round(seconds, 2)),
        "run_waited_for_day_s": MetadataValue.float(round(waited_s, 2)),
        "run_mb_per_s": MetadataValue.float(round(bytes_in / s / 1e6, 2)),
    }


def preview_markdown(previews: list[tuple[str, bytes]]) -> MetadataValue:
    if not previews:
        return MetadataValue.md("_no wafer drawn in this run_")
    parts = [
        f"**{token}**<br/>![{token}](data:image/png;base64,{base64.b64encode(png).decode()})"
        for token, png in previews
    ]
    return MetadataValue.md("\n\n".join(parts))


def delivery_metadata(*, pipeline: str, run_id: str, status: str, signed: bool, deliveries) -> dict:
    """A webhook observation: one row per URL (already redacted), and the totals."""
    rows = [(d.url, d.status if d.status is not None else "", d.attempts, f"{d.seconds:.2f}", d.error or "delivered")
            for d in deliveries]
    return {
        "pipeline": pipeline,
        "run": MetadataValue.dagster_run(run_id),
        "run_status": status,
        "delivered": sum(d.delivered for d in deliveries),
        "not_delivered": sum(not d.delivered for d in deliveries),
        "signed": signed,
        "deliveries": MetadataValue.md(markdown_table(rows, ["url", "status", "attempts", "seconds", "result"])),
    }
