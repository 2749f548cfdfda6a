"""A day's wafer signatures, and its wafers' similar earlier wafers and anomaly scores,
each committed like every day (``day_commit.py``: lease, files under the run's tag,
the manifest last with a compare-and-swap).

Signatures (``state/patterns/date=.../``): every test event the day's fail-map and
STDF commits name (the dies ``summary_day.read_inputs`` reads: industry formats
included), drawn on its die grid (``-1`` no die, ``0`` pass, ``1`` fail), turned by its
flat and scaled by its die size where the file gives one (else by the outline of its
dies), through ``patterns/signature.py``. The commit records the pipeline commits it
read: a run finding the same commits has nothing to do.

Matches (``state/pattern_matches/date=.../``): per test event of the day's committed
signatures, its ``k`` most similar *earlier* wafers of its product (the product's
serving pattern index, days before this one, plus the day's own events tested before
it; never the same physical wafer) and its anomaly score against the product's earlier
normal wafers (``patterns/anomaly.py``). The commit records the signatures' commit and
each index version's content of the earlier days, so a re-run that finds them
unchanged has nothing to do.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl

from failmap_assets.patterns import anomaly
from failmap_assets.patterns.geometry import infer_die_aspect
from failmap_assets.patterns.signature import RASTER_SIZE, SIGNATURE_VERSION, TOO_SMALL, wafer_signature
from failmap_assets.patterns.tables import (
    ANOMALY_COLUMNS,
    PATTERNS_DAY_VERSION,
    SIGNATURE_COLUMNS,
    SIMILAR_COLUMNS,
    schema_of,
)
from failmap_assets.pipeline import day_state as st
from failmap_assets.pipeline.day_commit import DaySession
from failmap_assets.pipeline.day_lease import LeaseOptions
from failmap_assets.pipeline.pattern_index import (
    IndexVersion,
    day_signature_rows,
    index_signature_version,
    load_index,
    product_of,
    signature_version_of,
)
from failmap_assets.pipeline.summary_day import READ_ATTEMPTS, SOURCE_PIPELINES, SummaryInputs, read_inputs
from failmap_assets.storage.day_manifest import DayManifest, read_manifest
from failmap_assets.storage.layout import MATCHES_PIPELINE, PATTERNS_PIPELINE, state_dir, table_file
from failmap_assets.storage.object_store import ObjectStore, UnsafeKey
from failmap_assets.storage.parquet_io import read_table, write_table

#: A die grid larger than this (cells) is not drawn: its coordinates are not a wafer's.
MAX_GRID_CELLS = 4096 * 4096
SIMILAR_K = 10
_FLAT_NOTCH = {"D": "down", "U": "up", "L": "left", "R": "right"}
_EVENT = ["source", "wafer_token", "object_key"]
_SHAPE = {"source": pl.String, "wafer_token": pl.String, "object_key": pl.String, "flat": pl.String,
          "die_width_mm": pl.Float64, "die_height_mm": pl.Float64}


@dataclass
class PatternsDayReport:
    committed: bool = False
    generation: int = 0
    seconds: float = 0.0
    totals: dict | None = None
    manifest: DayManifest | None = None


# ----- signatures ---------------------------------------------------------------------------

def wafer_grid(x: np.ndarray, y: np.ndarray, passed: np.ndarray) -> np.ndarray | None:
    """The die grid of one test event (rows = y down, columns = x), or None when its
    coordinates span more than MAX_GRID_CELLS."""
    if not len(x):
        return np.full((1, 1), -1, np.int8)
    x0, y0 = int(x.min()), int(y.min())
    w, h = int(x.max()) - x0 + 1, int(y.max()) - y0 + 1
    if w * h > MAX_GRID_CELLS:
        return None
    grid = np.full((h, w), -1, np.int8)
    grid[y - y0, x - x0] = np.where(passed, 0, 1).astype(np.int8)
    return grid


def _shapes(store: ObjectStore, day: date) -> tuple[pl.DataFrame, dict]:
    """Each test event's flat and die size from the pipelines' committed events state,
    with the commits read (to check they are the ones the dies came from)."""
    frames, commits = [pl.DataFrame(schema=_SHAPE)], {}
    for pipeline in SOURCE_PIPELINES:
        manifest, _ = read_manifest(store, pipeline, day)
        commits[pipeline] = None if manifest is None else manifest.provenance()
        if manifest is None or "events" not in manifest.state:
            continue
        key = manifest.state["events"]
        if not key.startswith(state_dir(pipeline, day)):
            raise UnsafeKey(f"the {pipeline} manifest of {day} names {key[:200]!r} as its events, outside its state")
        events = st.conform(read_table(store, key), st.EVENTS_SCHEMA)
        frames.append(events.select(pl.lit(pipeline).alias("source"), "wafer_token",
                                    pl.col("unit_key").alias("object_key"), "flat", "die_width_mm",
                                    "die_height_mm").cast(_SHAPE))
    return pl.concat(frames).unique(_EVENT, keep="first"), commits


def read_signature_inputs(store: ObjectStore, day: date,
                          log: Callable[[str], None] = print) -> tuple[SummaryInputs, pl.DataFrame]:
    """The day's committed events and dies (as the summaries read them) and each event's shape,
    all from the same pipeline commits."""
    for _ in range(READ_ATTEMPTS):
        shapes, commits = _shapes(store, day)
        inputs = read_inputs(store, day, log)
        if inputs.commits == commits:
            return inputs, shapes
        log(f"{day}: a pipeline recommitted the day while it was read; reading its new commit")
    raise RuntimeError(f"{day} kept being recommitted while its signatures were computed; run again")


def signatures_table(inputs: SummaryInputs, shapes: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """One row per test event (SIGNATURE_COLUMNS) and how many events were not drawn
    (coordinates spanning more than MAX_GRID_CELLS)."""
    events = inputs.events.join(shapes, on=_EVENT, how="left").sort(_EVENT, nulls_last=True)
    dies = inputs.dies.partition_by(_EVENT, as_dict=True, maintain_order=True)
    rows, skipped = [], 0
    for e in events.iter_rows(named=True):
        d = dies.get((e["source"], e["wafer_token"], e["object_key"]))
        x = d["x"].to_numpy() if d is not None else np.empty(0, np.int32)
        y = d["y"].to_numpy() if d is not None else np.empty(0, np.int32)
        passed = d["pass"].fill_null(False).to_numpy() if d is not None else np.empty(0, bool)
        grid = wafer_grid(x, y, passed)
        if grid is None:
            skipped += 1
            continue
        flat = e["flat"] if e["flat"] in _FLAT_NOTCH else "D"
        known = bool(e["die_width_mm"] and e["die_height_mm"])
        if known:
            aspect = float(e["die_width_mm"]) / float(e["die_height_mm"])
        else:   # the outline of the dies is round on the wafer: its rows/columns ratio, in the notch-down frame
            aspect = infer_die_aspect(grid)
            aspect = 1.0 / aspect if flat in ("L", "R") else aspect
        sig = wafer_signature(grid, die_aspect=aspect, notch=_FLAT_NOTCH[flat])
        rows.append({
            **{k: e[k] for k in ("source", "wafer_token", "object_key", "lot", "wafer", "insertion", "product",
                                 "step", "file_time", "latest")},
            "flat": flat, "die_aspect": aspect, "die_aspect_known": known, "label": sig.label,
            "confidence": float(sig.confidence), "evidence": sig.evidence, "dies": int(sig.dies),
            "fail_dies": int(sig.fail_dies), "embedding": np.asarray(sig.embedding, np.float32),
            "raster": np.asarray(sig.raster, np.float32).reshape(-1),
        })
    schema = schema_of(SIGNATURE_COLUMNS)
    if not rows:
        return pl.DataFrame(schema=schema), skipped
    frame = pl.DataFrame({k: [r[k] for r in rows] for k in schema if k not in ("embedding", "raster")},
                         schema={k: v for k, v in schema.items() if k not in ("embedding", "raster")})
    frame = frame.with_columns(
        pl.Series("embedding", np.stack([r["embedding"] for r in rows]), schema["embedding"]),
        pl.Series("raster", [r["raster"] for r in rows], schema["raster"]),
    )
    return frame.select(list(schema)), skipped


def signature_totals(frame: pl.DataFrame, skipped: int) -> dict:
    counts = frame.group_by("label").len().sort("label") if frame.height else None
    labels = dict(zip(counts["label"].to_list(), counts["len"].to_list())) if counts is not None else {}
    return {
        "test_events": frame.height, "labels": labels, "too_small": labels.get(TOO_SMALL, 0),
        "not_drawn": skipped, "products": sorted({product_of(p) for p in frame["product"].to_list()}),
        "rows": {"wafer_signatures": frame.height}, "signature_version": SIGNATURE_VERSION,
        "raster_size": RASTER_SIZE,
    }


def run_signatures_day(*, day: date, out: ObjectStore, run_id: str, force: bool = False,
                       lease: LeaseOptions | None = None, log: Callable[[str], None] = print) -> PatternsDayReport:
    """Bring the day's signatures up to date with the pipelines' commits."""
    started = time.monotonic()
    report = PatternsDayReport()
    with DaySession(out, PATTERNS_PIPELINE, day, run_id, lease=lease or LeaseOptions(), log=log) as session:
        inputs, shapes = read_signature_inputs(out, day, log)
        digest = hashlib.sha256(json.dumps({"signature": SIGNATURE_VERSION, "day": PATTERNS_DAY_VERSION,
                                            "commits": inputs.commits}, sort_keys=True).encode()).hexdigest()
        committed = session.unchanged_commit(digest, force)
        if committed is not None:
            log(f"{day}: signatures already describe these commits; no commit")
            report.manifest, report.totals, report.generation = committed, committed.totals, committed.generation
        else:
            frame, skipped = signatures_table(inputs, shapes)
            key = table_file("wafer_signatures", day, session.tag)
            write_table(out, key, frame)
            manifest = DayManifest(pipeline=PATTERNS_PIPELINE, day=day, tables={"wafer_signatures": [key]},
                                   inputs=digest, totals={**signature_totals(frame, skipped),
                                                          "signed": inputs.commits})
            session.commit(manifest)
            log(f"{day}: committed signatures generation {manifest.generation}: {frame.height} test event(s)")
            report.committed, report.manifest, report.totals = True, manifest, manifest.totals
            report.generation = manifest.generation
    report.seconds = time.monotonic() - started
    return report


# ----- similar wafers and anomaly ------------------------------------------------------------

def _earlier_content(version: IndexVersion | None, day: date) -> dict:
    """What a day's matches read of a product's index: the commits of the days before it
    and the flag threshold."""
    if version is None:
        return {}
    commits = {d: c for d, c in version.stats.get("day_commits", {}).items() if d < day.isoformat()}
    held = set(version.rows["day"].cast(pl.String).unique().to_list())
    return {"days": {d: c for d, c in commits.items() if d in held},
            "threshold": version.calibration.threshold, "format": version.stats.get("format"),
            "signature_version": index_signature_version(version)}


def _physical(frame: pl.DataFrame) -> np.ndarray:
    """One id per physical wafer: source, lot and wafer where known, else the wafer token."""
    return frame.select(pl.when(pl.col("lot").is_not_null() & pl.col("wafer").is_not_null())
                        .then(pl.concat_str([pl.col("source"), pl.lit("\0"), pl.col("lot"), pl.lit("\0"),
                                             pl.col("wafer")]))
                        .otherwise(pl.concat_str([pl.col("source"), pl.lit("\0t\0"), pl.col("wafer_token")]))
                        ).to_series().to_numpy()


def match_product(day: date, sigs: pl.DataFrame, version: IndexVersion | None, k: int,
                  no_index: str = "no_index") -> tuple[list[dict], list[dict]]:
    """Similar-wafer rows and anomaly rows of one product's test events of the day
    (``no_index``: the reason a missing ``version`` gives)."""
    similar, scores = [], []
    classified = sigs.filter(pl.col("label") != TOO_SMALL)
    emb = np.asarray(classified["embedding"].to_numpy(), np.float32).reshape(classified.height, -1) \
        if classified.height else np.empty((0, 0), np.float32)
    me = _physical(classified) if classified.height else np.empty(0, object)
    times = classified["file_time"].to_list()
    cands: list[list[tuple[float, str, dict]]] = [[] for _ in range(classified.height)]
    vname = version.version if version is not None else None
    if version is not None and classified.height and len(version.index):
        before = version.mask(before=day)
        extra = 8   # room for the same physical wafer's earlier events, left out below
        rows, sims = version.index.search_many(emb, k + extra, mask=before)
        theirs = _physical(version.rows)
        for q in range(classified.height):
            for r, s in zip(rows[q], sims[q]):
                if r >= 0 and theirs[r] != me[q]:
                    cands[q].append((float(s), "index", {**version.rows.row(int(r), named=True), "_v": vname}))
    if classified.height > 1:   # the day's own events tested earlier
        own = emb @ emb.T
        ordered = classified.rows(named=True)
        for q in range(classified.height):
            for j in np.argsort(-own[q], kind="stable"):
                if j != q and me[j] != me[q] and times[j] is not None and times[q] is not None and times[j] < times[q]:
                    cands[q].append((float(own[q, j]), "day", {**ordered[j], "day": day, "_v": None}))
                    if len(cands[q]) >= 2 * k + 8:
                        break
    for q, e in enumerate(classified.iter_rows(named=True)):
        best = sorted(cands[q], key=lambda c: (-c[0], str(c[2]["day"]), c[2]["source"], c[2]["wafer_token"],
                                               c[2]["object_key"]))[:k]
        for rank, (s, _, n) in enumerate(best, 1):
            similar.append({
                "day": day, **{c: e[c] for c in ("source", "wafer_token", "object_key", "lot", "wafer", "product",
                                                  "step", "label")},
                "rank": rank,
                **{f"similar_{c}": n[c] for c in ("day", "source", "wafer_token", "object_key", "lot", "wafer",
                                                  "product", "step", "label", "file_time")},
                "similarity": s, "distance": 1.0 - s, "index_version": n["_v"],
            })
    # anomaly: against the product's earlier normal wafers
    bank = version.mask(before=day, normal=True) if version is not None else None
    calibration = version.calibration if version is not None else None
    values = np.full(classified.height, np.nan)
    if version is not None and classified.height and bank.any():
        values = anomaly.knn_scores(version.index, emb, bank, k=calibration.k)
    flags = anomaly.flag(values, calibration) if calibration is not None else np.zeros(len(values), bool)
    by_event = {(e["source"], e["wafer_token"], e["object_key"]): q
                for q, e in enumerate(classified.select(_EVENT).iter_rows(named=True))}
    for e in sigs.iter_rows(named=True):
        q = by_event.get((e["source"], e["wafer_token"], e["object_key"]))
        if q is None:
            reason, value, flagged = TOO_SMALL, None, False
        elif version is None:
            reason, value, flagged = no_index, None, False
        elif not np.isfinite(values[q]):
            reason, value, flagged = "no_earlier_normal_wafers", None, False
        else:
            reason, value, flagged = None, float(values[q]), bool(flags[q])
        scores.append({
            "day": day, **{c: e[c] for c in ("source", "wafer_token", "object_key", "lot", "wafer", "product", "step",
                                              "label", "confidence")},
            "anomaly_score": value, "threshold": calibration.threshold if calibration else None,
            "anomalous": flagged, "bank_size": int(bank.sum()) if bank is not None else 0,
            "index_version": vname, "reason": reason,
        })
    return similar, scores


def run_matches_day(*, day: date, out: ObjectStore, run_id: str, k: int = SIMILAR_K, force: bool = False,
                    lease: LeaseOptions | None = None, log: Callable[[str], None] = print) -> PatternsDayReport:
    """Bring the day's similar wafers and anomaly scores up to date with its committed
    signatures and its products' serving indexes."""
    started = time.monotonic()
    report = PatternsDayReport()
    with DaySession(out, MATCHES_PIPELINE, day, run_id, lease=lease or LeaseOptions(), log=log) as session:
        signed, _ = read_manifest(out, PATTERNS_PIPELINE, day)
        sigs = day_signature_rows(out, signed) if signed is not None else pl.DataFrame()
        if sigs.is_empty():
            sigs = pl.DataFrame(schema=schema_of(SIGNATURE_COLUMNS))
        sigs = sigs.with_columns(pl.col("product").fill_null("unknown").alias("_product"))
        products = sorted(set(sigs["_product"].to_list()))
        versions = {p: load_index(out, p) for p in products}
        # embeddings of two signature versions are not comparable: an index of another
        # version than the day's signatures is not searched (until one of them is re-run)
        signed_with = signature_version_of(signed) if signed is not None else SIGNATURE_VERSION
        other_version = {p for p, v in versions.items()
                         if v is not None and index_signature_version(v) != signed_with}
        if other_version:
            log(f"{day}: signatures of version {signed_with}, index(es) of another version for "
                f"{', '.join(sorted(other_version))}: not searched; re-run the stale side")
        digest = hashlib.sha256(json.dumps({
            "day": PATTERNS_DAY_VERSION, "k": k,
            "signatures": None if signed is None else [signed.generation, signed.run_id],
            "indexes": {p: _earlier_content(v, day) for p, v in versions.items()},
        }, sort_keys=True).encode()).hexdigest()
        committed = session.unchanged_commit(digest, force)
        if committed is not None:
            log(f"{day}: similar wafers and anomaly scores already describe these signatures and indexes")
            report.manifest, report.totals, report.generation = committed, committed.totals, committed.generation
        else:
            similar, scores = [], []
            for p in products:
                if p in other_version:
                    s, a = match_product(day, sigs.filter(pl.col("_product") == p), None, k,
                                         no_index="signature_version_differs")
                else:
                    s, a = match_product(day, sigs.filter(pl.col("_product") == p), versions[p], k)
                similar += s
                scores += a
            frames = {"similar_wafers": pl.DataFrame(similar, schema=schema_of(SIMILAR_COLUMNS)),
                      "wafer_anomaly": pl.DataFrame(scores, schema=schema_of(ANOMALY_COLUMNS))}
            tables = {n: [table_file(n, day, session.tag)] for n in frames}
            for n, f in frames.items():
                write_table(out, tables[n][0], f)
            flagged = frames["wafer_anomaly"].filter(pl.col("anomalous"))
            manifest = DayManifest(pipeline=MATCHES_PIPELINE, day=day, tables=tables, inputs=digest, totals={
                "rows": {n: f.height for n, f in frames.items()}, "test_events": sigs.height,
                "anomalous": flagged.height, "anomalous_wafers": flagged["wafer_token"].to_list()[:20],
                "scored": int(frames["wafer_anomaly"]["anomaly_score"].is_not_null().sum()),
                "index_versions": {p: v.version if v else None for p, v in versions.items()},
            })
            session.commit(manifest)
            log(f"{day}: committed pattern matches generation {manifest.generation}: "
                f"{frames['similar_wafers'].height} similar-wafer row(s), {flagged.height} anomalous")
            report.committed, report.manifest, report.totals = True, manifest, manifest.totals
            report.generation = manifest.generation
    report.seconds = time.monotonic() - started
    return report

