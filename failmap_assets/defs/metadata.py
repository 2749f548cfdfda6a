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
    bins = totals.get("bins") or []
    total = sum(n for _, n in bins) or 1
    rows, cumulative = [], 0
    for bin_no, count in bins:
        cumulative += count
        rows.append((bin_no, count, f"{100 * count / total:.2f}%", f"{100 * cumulative / total:.2f}%"))
    return {"bin_pareto": MetadataValue.md(markdown_table(rows, ["bin", "dies", "share", "cumulative"]))}


def rejects_by_reason(totals: dict) -> dict:
    rows = totals.get("rejects_by_reason") or []
    return {
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
