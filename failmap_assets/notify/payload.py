"""The completion document: one fab day of one pipeline, as a finished run left it.

Counts and yield are the day's figures the run's materializations recorded
(``defs/metadata.py``): the whole day after the run, plus what the run itself
processed. A run that committed nothing (it failed early) has ``counts`` and
``yield_pct`` null. The body is compact, key-sorted JSON: the signature covers
exactly these bytes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

SCHEMA = "failmap.day_run.v1"

# where a pipeline's day figures are recorded, per pipeline
DAY_ASSET = {"failmap": "failmap_dies", "stdf": "stdf_tables"}
REJECTS_ASSET = {"failmap": "failmap_rejects", "stdf": "stdf_rejects"}
PIPELINE_OF_ASSET = {asset: pipeline for pipeline, asset in DAY_ASSET.items()}

ERROR_CHARS = 1000


def counts(pipeline: str, metadata: Mapping[str, Mapping[str, object]]) -> dict | None:
    """The day's counts from the run's materialization metadata (asset -> entries);
    None when the run materialized nothing of the pipeline."""
    day = metadata.get(DAY_ASSET[pipeline])
    if day is None:
        return None
    rejects = metadata.get(REJECTS_ASSET[pipeline], {})
    return {
        # units: a fail map with its B partner, or an STDF file
        "units_processed": day.get("run_processed"),
        "units_already_done": day.get("run_already_done"),
        "units_failed": day.get("run_failed"),
        "wafers": day.get("wafers"),
        "test_events": day.get("test_events"),
        "dies": day.get("dies"),
        "rejects": day.get("rejects", rejects.get("rejects")),
        "warnings": rejects.get("warnings"),
    }


def run_url(ui_url: str, run_id: str) -> str | None:
    return f"{ui_url.rstrip('/')}/runs/{run_id}" if ui_url else None


def error_summary(parts: list[str], secrets: list[str]) -> str:
    """What went wrong, short, with every secret value blanked out."""
    text = "\n".join(p.strip() for p in parts if p and p.strip()) or "the run failed"
    for secret in sorted(set(secrets), key=len, reverse=True):
        if secret:
            text = text.replace(secret, "***")
    return text if len(text) <= ERROR_CHARS else text[: ERROR_CHARS - 1] + "…"


def document(*, day: str, pipeline: str, succeeded: bool, run_id: str, job: str, finished_at: str | None,
             metadata: Mapping[str, Mapping[str, object]], ui_url: str = "", error: str | None = None) -> dict:
    day_figures = metadata.get(DAY_ASSET[pipeline], {})
    doc = {
        "schema": SCHEMA,
        "event": "day_run.succeeded" if succeeded else "day_run.failed",
        "status": "succeeded" if succeeded else "failed",
        "day": day,
        "pipeline": pipeline,
        "run_id": run_id,
        "job": job,
        "finished_at": finished_at,
        "counts": counts(pipeline, metadata),
        # a day without dies has no yield (never 0 %), as in the UI
        "yield_pct": day_figures.get("yield_pct"),
        "error": None if succeeded else (error or "the run failed"),
    }
    url = run_url(ui_url, run_id)
    if url:
        doc["run_url"] = url
    return doc


def encode(doc: Mapping) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
