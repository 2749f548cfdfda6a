"""What a materialization shows in the UI: counts, yield, throughput, previews, pareto."""

from __future__ import annotations

import base64

from dagster import MetadataValue

from failmap_assets.pipeline.failmap_day import DayReport


def markdown_table(rows, headers: list[str]) -> str:
    def cell(v) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ") if v is not None else ""

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def run_summary(report: DayReport, *, pending: int) -> dict:
    errors = [r for _, r in report.rejects if r.severity == "error"]
    seconds = max(report.seconds, 1e-9)
    return {
        "units_in_day": report.units_total,
        "units_processed": report.units_done,
        "units_already_done": report.units_skipped_done,
        "units_pending": pending,
        "wafers": report.wafers,
        "wafers_with_b": report.wafers_with_b,
        "dies": report.dies,
        "b_only_dies": report.b_only_dies,
        "retested_dies": report.retests,
        "rejects": len(errors),
        "download_errors": len(report.download_errors),
        "yield": MetadataValue.float(round(report.pass_dies / report.dies, 4) if report.dies else 0.0),
        "seconds": MetadataValue.float(round(report.seconds, 2)),
        "units_per_s": MetadataValue.float(round(report.units_done / seconds, 1)),
        "mb_per_s": MetadataValue.float(round(report.bytes_in / seconds / 1e6, 2)),
        "part_files": len(report.part_files),
    }


def bin_pareto_metadata(report: DayReport, top: int = 12) -> dict:
    total = sum(report.bins.values())
    rows, cumulative = [], 0
    for bin_no, count in report.bins.most_common(top):
        cumulative += count
        rows.append((bin_no, count, f"{100 * count / total:.2f}%", f"{100 * cumulative / total:.2f}%"))
    return {"bin_pareto": MetadataValue.md(markdown_table(rows, ["bin", "dies", "share", "cumulative"]))}


def preview_markdown(report: DayReport) -> MetadataValue:
    if not report.previews:
        return MetadataValue.md("_no wafer processed in this run_")
    parts = [
        f"**{token}**<br/>![{token}](data:image/png;base64,{base64.b64encode(png).decode()})"
        for token, png in report.previews
    ]
    return MetadataValue.md("\n\n".join(parts))
