"""Run a day's STDF objects: parse once, write the Parquet tables and the wafer maps.

Incremental like the fail-map runner: the processed ledger (pipeline ``stdf``) keys
each object by (key, etag); a re-uploaded file is parsed again and its outputs are
replaced (its Parquet file names derive from the key, not the content).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timezone

import polars as pl
import pyarrow as pa

from failmap_assets.pipeline import processed_ledger as ledger_mod
from failmap_assets.maps.coordinates import wafer_json
from failmap_assets.maps.render import MapTooLarge, render_wafer_png
from failmap_assets.storage.layout import file_id_of, json_key, png_key, stdf_table_key
from failmap_assets.storage.parquet_io import write_table
from failmap_assets.wafer.rejects import Rejected
from failmap_assets.storage.object_store import ObjectStore
from failmap_assets.stdf.tables import TABLES, parse_stdf
from failmap_assets.stdf.wafer_maps import wafer_maps

PIPELINE = "stdf"


@dataclass
class StdfDayReport:
    files_total: int = 0
    files_done: int = 0
    files_already_done: int = 0
    parts: int = 0
    tests: int = 0
    results: int = 0
    bytes_in: int = 0
    wafers: int = 0
    seconds: float = 0.0
    yield_by_wafer: dict[str, float] = field(default_factory=dict)
    rejects: list[dict] = field(default_factory=list)


def run_stdf_day(
    listing: pl.DataFrame,
    *,
    day: date,
    source: ObjectStore,
    out: ObjectStore,
    retest_rule: str,
    pixels_per_die: int,
    run_id: str,
    force: bool = False,
    workers: int = 2,
    log: Callable[[str], None] = print,
) -> StdfDayReport:
    started = time.monotonic()
    report = StdfDayReport(files_total=listing.height)
    ledger = ledger_mod.load(out, PIPELINE, day)
    units = listing.select(
        pl.col("key").alias("a_key"), pl.col("etag").alias("a_etag"),
        pl.lit(None, pl.String).alias("b_key"), pl.lit(None, pl.String).alias("b_etag"),
    )
    todo = ledger_mod.units_to_do(units, ledger, force=force)
    report.files_already_done = units.height - todo.height
    now = datetime.now(timezone.utc)
    rows: list[dict] = []
    rejects: list[dict] = []
    lock = threading.Lock()

    def one(key: str, etag: str) -> tuple[dict, list[dict], int]:
        data = source.get(key)
        return *_parse_and_write(key, etag, data), len(data)

    def _parse_and_write(key: str, etag: str, data: bytes) -> tuple[dict, list[dict]]:
        issues: list[dict] = []
        try:
            parsed = parse_stdf(data, file_id=file_id_of(key), name=key.rsplit("/", 1)[-1])
        except Rejected as exc:
            issues.append(_reject(key, etag, exc.reason, exc.detail, "error", now, run_id))
            return _ledger_row(key, etag, "rejected", [], 0, now, run_id), issues
        # Corrupt data inside a V4 file: everything before it is kept and used; the
        # report says at which byte and why the rest was lost.
        issues.extend(_reject(key, etag, i.reason, str(i), i.severity, now, run_id) for i in parsed.issues)
        mir = parsed.tables["files"].to_pylist()[0] if parsed.tables["files"].num_rows else {}
        fid = file_id_of(key)
        written: list[str] = []
        for table in TABLES:
            t = parsed.tables[table]
            tkey = stdf_table_key(table, day, mir.get("part_typ"), mir.get("test_cod"), fid)
            if t.num_rows == 0:
                out.delete(tkey)
                continue
            write_table(out, tkey, t.append_column("source_key", pa.repeat(pa.scalar(key, pa.string()), t.num_rows)))
            written.append(tkey)
        tokens = []
        for wafer in wafer_maps(parsed, retest_rule=retest_rule):
            token = f"{wafer.lot or 'lot'}_W{wafer.wafer or '0'}-stdf"
            source_info = {"a_key": key, "a_etag": etag, "b_key": None, "b_etag": None}
            try:
                out.put(png_key(day, token), render_wafer_png(wafer, pixels_per_die=pixels_per_die), content_type="image/png")
                written.append(png_key(day, token))
            except MapTooLarge as exc:  # no PNG; the JSON (png.written false) and tables are kept
                issues.append(_reject(key, etag, "png_too_large", f"wafer {token}: no PNG written: {exc}", "warning", now, run_id))
            out.put(json_key(day, token), wafer_json(wafer, wafer_token=token, source=source_info, companion=None,
                                                     pixels_per_die=pixels_per_die), content_type="application/json")
            tokens.append(token)
            written.append(json_key(day, token))
            if wafer.die_count:
                with lock:
                    report.yield_by_wafer[token] = float(wafer.is_pass().mean())
        t = parsed.tables
        with lock:  # counters are shared by the worker threads
            report.parts += t["parts"].num_rows
            report.tests += t["tests"].num_rows
            report.results += t["ptr_results"].num_rows + t["mpr_results"].num_rows + t["ftr_results"].num_rows
            report.wafers += len(tokens)
        return _ledger_row(key, etag, "ok", tokens, t["parts"].num_rows, now, run_id, written), issues

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="stdf") as pool:
        futures = [pool.submit(one, r["a_key"], r["a_etag"]) for r in todo.iter_rows(named=True)]
        for i, fut in enumerate(futures, 1):
            try:
                row, issues, nbytes = fut.result()
            except Exception as exc:  # noqa: BLE001 - one unreadable object must not stop the day
                log(f"could not read an STDF object: {type(exc).__name__}: {exc}; it stays to do")
                continue
            rows.append(row)
            rejects.extend(issues)
            report.bytes_in += nbytes
            report.files_done += 1
            log(f"progress {i}/{len(futures)} STDF files")

    new_ledger = pl.DataFrame(rows, schema=ledger_mod.LEDGER_SCHEMA)
    for stale in ledger_mod.stale_outputs(ledger, new_ledger):
        log(f"removing {stale}: its source was re-uploaded and no longer produces it")
        out.delete(stale)
    ledger_mod.save(out, PIPELINE, day, ledger_mod.merge(ledger, new_ledger))
    new_rejects = pl.DataFrame(rejects, schema=ledger_mod.REJECT_SCHEMA)
    old_rejects = ledger_mod.load_rejects(out, PIPELINE, day)
    ledger_mod.save_rejects(out, PIPELINE, day, ledger_mod.merge_rejects(old_rejects, new_rejects, new_ledger["a_key"].to_list()))
    report.rejects = rejects
    report.seconds = time.monotonic() - started
    return report


def _ledger_row(key, etag, outcome, tokens, parts, now, run_id, outputs=()) -> dict:
    return {
        "a_key": key, "a_etag": etag, "b_key": None, "b_etag": None, "outcome": outcome, "part_file": None,
        "wafer_tokens": tokens, "outputs": list(outputs), "dies": parts, "processed_at": now, "run_id": run_id,
    }


def _reject(key, etag, reason, detail, severity, now, run_id) -> dict:
    return {
        "key": key, "etag": etag, "bucket": "stdf", "member": None, "reason": reason, "detail": detail,
        "line": None, "severity": severity, "a_key": key, "first_seen": now, "run_id": run_id,
    }
