"""Each product's pattern index: versions written whole, switched in one step, collected.

The content of a product's index is a function of the committed day signatures
(``state/patterns/date=.../``, ``pipeline/patterns_day.py``) and nothing else: its
rows are the product's classified test events of every committed day (not
``too_small``), sorted by (day, source, wafer token, object key), with their
embeddings as float16. A rebuild starts from the serving version and replaces only the
rows of the days whose commit changed since (a re-materialized day replaces that day's
rows, a day whose commit disappeared loses them), so it gives exactly what a build
from scratch gives, whatever the history of runs.

An index holds signatures of one ``SIGNATURE_VERSION`` only: embeddings of two
versions are not comparable. A day signed by another version (the code changed and
the day was not re-materialized yet) is left out and listed as stale, so the UI says
which days to re-run; an index built by another version is rebuilt from the days.

Layout (``storage/layout.py``), per product::

    patterns/index/<product>/current.json         the pointer: which version serves, the history
    patterns/index/<product>/<version>/embeddings.npy   float16 N x D (the content)
    patterns/index/<product>/<version>/cells.npz        the search cells (index.VectorIndex.cells)
    patterns/index/<product>/<version>/rows.parquet     one row per indexed test event (ROW_COLUMNS)
    patterns/index/<product>/<version>/stats.json       what the version holds and how it was built

A rebuild writes a new version folder under a fresh name (never one a pointer names),
then replaces ``current.json`` with a compare-and-swap on the ETag it read: that PUT
is the switch. A rebuild that fails or dies before it leaves the previous version
serving (the pointer was never touched); one that finds the pointer changed since it
read it (another rebuild won) is refused, removes its own folder and raises
``IndexConflict``. After a switch, versions beyond the last ``KEEP_VERSIONS`` of the
history are deleted, and so are folders no pointer ever named once they are older
than ``STALE_VERSION_AGE`` (a dead rebuild's; a younger one may be a live rebuild's).
"""

from __future__ import annotations

import io
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl

from failmap_assets.patterns import anomaly
from failmap_assets.patterns.index import INDEX_FORMAT, VectorIndex
from failmap_assets.patterns.signature import SIGNATURE_VERSION
from failmap_assets.storage.committed_tables import named_table_files
from failmap_assets.storage.day_manifest import DayManifest, read_manifest
from failmap_assets.storage.layout import (
    PATTERN_INDEX_ROOT,
    PATTERNS_PIPELINE,
    day_of_state_dir,
    pattern_index_dir,
    pattern_index_pointer,
    pattern_index_version_dir,
    pipeline_state_dir,
)
from failmap_assets.storage.object_store import ObjectStore, PreconditionFailed, read_with_etag

POINTER_FORMAT = 1
#: Versions kept after a switch (the serving one included): what a roll-back can go to.
KEEP_VERSIONS = 3
#: Entries of the rebuild history the pointer carries.
HISTORY = 50
#: A version folder no pointer names, older than this, belongs to a rebuild that died.
STALE_VERSION_AGE = timedelta(minutes=15)
#: Rows scored leave-one-out for the version's quality figure.
QUALITY_SAMPLE = 512
QUALITY_K = 5
UNKNOWN_PRODUCT = "unknown"

#: One row per indexed test event.
ROW_COLUMNS = {
    "day": pl.Date, "source": pl.String, "wafer_token": pl.String, "object_key": pl.String, "lot": pl.String,
    "wafer": pl.String, "product": pl.String, "step": pl.String, "file_time": pl.Datetime("us"),
    "label": pl.String, "confidence": pl.Float64, "normal": pl.Boolean,
}
ROW_ORDER = ["day", "source", "wafer_token", "object_key"]


class IndexConflict(RuntimeError):
    """Another rebuild switched the product's index since this one read the pointer."""


@dataclass
class IndexVersion:
    """A loaded version: its rows (in index order), float16 embeddings and search index."""

    product: str
    version: str
    stats: dict
    rows: pl.DataFrame
    embeddings: np.ndarray      # float16 (N, D): the content; the index holds them as float32
    index: VectorIndex

    @property
    def calibration(self) -> anomaly.Calibration:
        return anomaly.Calibration.from_dict(self.stats.get("calibration", {"threshold": None, "bank_size": 0,
                                                                            "sample": 0}))

    def mask(self, *, step: str | None = None, before: date | None = None, normal: bool = False) -> np.ndarray:
        """Rows of a step, of days before ``before``, of the memory bank (all that apply)."""
        keep = np.ones(self.rows.height, bool)
        if step is not None:
            keep &= (self.rows["step"] == step).fill_null(False).to_numpy()
        if before is not None:
            keep &= (self.rows["day"] < before).to_numpy()
        if normal:
            keep &= self.rows["normal"].to_numpy()
        return keep


@dataclass
class SignatureDays:
    """The committed signature days of this code's signature version: each one's commit
    and which products it holds; ``stale``: days signed by another version (day -> it)."""

    manifests: dict[date, DayManifest] = field(default_factory=dict)
    stale: dict[date, str] = field(default_factory=dict)

    def commits(self) -> dict[str, str]:
        return {d.isoformat(): f"{m.generation}:{m.run_id}" for d, m in sorted(self.manifests.items())}

    def products(self) -> set[str]:
        return {p for m in self.manifests.values() for p in m.totals.get("products", [])}


@dataclass
class RebuildReport:
    product: str
    rebuilt: bool = False
    version: str | None = None
    previous: str | None = None
    changed_days: list[str] = field(default_factory=list)
    stats: dict = field(default_factory=dict)
    collected: list[str] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)   # the pointer's, newest first
    stale_days: list[str] = field(default_factory=list)   # signed by another version: left out


def product_of(value: str | None) -> str:
    return value if value else UNKNOWN_PRODUCT


# ----- reading ----------------------------------------------------------------------------

def committed_signature_days(store: ObjectStore) -> SignatureDays:
    days = SignatureDays()
    for prefix in store.list_prefixes(pipeline_state_dir(PATTERNS_PIPELINE)):
        day = day_of_state_dir(prefix, PATTERNS_PIPELINE)
        if day is None:
            continue
        manifest, _ = read_manifest(store, PATTERNS_PIPELINE, day)
        if manifest is None:
            continue
        signed = signature_version_of(manifest)
        if signed == SIGNATURE_VERSION:
            days.manifests[day] = manifest
        else:
            days.stale[day] = signed
    return days


def signature_version_of(manifest: DayManifest) -> str:
    """The signature version a day's commit was signed with ("unknown" if it does not say)."""
    return str(manifest.totals.get("signature_version", "unknown"))


def index_signature_version(version: IndexVersion) -> str:
    """The signature version an index version holds ("unknown": built before versions were recorded)."""
    return str(version.stats.get("signature_version", "unknown"))


def read_pointer(store: ObjectStore, product: str) -> tuple[dict | None, str | None]:
    """The product's pointer and its ETag, or (None, None) before its first version."""
    key = pattern_index_pointer(product)
    try:
        found = read_with_etag(store, key)
    except PreconditionFailed:
        raise IndexConflict(f"{key} kept changing while it was read") from None
    if found is None:
        return None, None
    doc = json.loads(found[0])
    if doc.get("format") != POINTER_FORMAT:
        raise ValueError(f"{key}: unknown pointer format {doc.get('format')!r}")
    return doc, found[1]


def indexed_products(store: ObjectStore) -> list[str]:
    """Products that have a serving index (their pointer's own name for them)."""
    found = []
    for prefix in store.list_prefixes(PATTERN_INDEX_ROOT):
        try:
            doc = json.loads(store.get(f"{prefix}current.json"))
        except FileNotFoundError:
            continue   # a folder of versions whose first switch has not happened
        found.append(doc["product"])
    return sorted(found)


def load_version(store: ObjectStore, product: str, version: str) -> IndexVersion:
    base = pattern_index_version_dir(product, version)
    stats = json.loads(store.get(f"{base}stats.json"))
    embeddings = np.load(io.BytesIO(store.get(f"{base}embeddings.npy")), allow_pickle=False)
    cells = np.load(io.BytesIO(store.get(f"{base}cells.npz")), allow_pickle=False)
    rows = pl.read_parquet(io.BytesIO(store.get(f"{base}rows.parquet")))
    if rows.height != len(embeddings):
        raise ValueError(f"{base}: {rows.height} rows but {len(embeddings)} embeddings")
    index = VectorIndex.from_cells(embeddings, cells["centroids"], cells["cell"])
    return IndexVersion(product, version, stats, rows, embeddings, index)


def load_index(store: ObjectStore, product: str) -> IndexVersion | None:
    """The serving version of the product's index, or None before its first build.
    A version collected between reading the pointer and its files: read the pointer again."""
    for _ in range(3):
        pointer, _ = read_pointer(store, product)
        if pointer is None:
            return None
        try:
            return load_version(store, product, pointer["version"])
        except FileNotFoundError:
            continue
    raise IndexConflict(f"the index of {product!r} kept switching while it was read")


def day_signature_rows(store: ObjectStore, manifest: DayManifest) -> pl.DataFrame:
    """A committed day's signatures (every file its manifest names)."""
    files = named_table_files(manifest).get("wafer_signatures", [])
    frames = [pl.read_parquet(io.BytesIO(store.get(k))) for k in files]
    return pl.concat(frames, how="vertical_relaxed") if frames else pl.DataFrame()


def index_rows(signatures: pl.DataFrame, day: date, product: str) -> tuple[pl.DataFrame, np.ndarray]:
    """The product's indexable rows of a day's signatures (too-small wafers left out)
    and their float16 embeddings, in index order."""
    if signatures.is_empty():
        return pl.DataFrame(schema=ROW_COLUMNS), np.empty((0, 0), np.float16)
    from failmap_assets.patterns.signature import TOO_SMALL   # the other helper's contract

    frame = signatures.filter((pl.col("product").fill_null(UNKNOWN_PRODUCT) == product)
                              & (pl.col("label") != TOO_SMALL))
    if frame.height == 0:   # the product's wafers of the day are all too small
        return pl.DataFrame(schema=ROW_COLUMNS), np.empty((0, 0), np.float16)
    frame = frame.with_columns(pl.lit(day).alias("day")).sort(ROW_ORDER, nulls_last=True)
    normal = anomaly.is_normal(frame["label"].to_numpy(), frame["confidence"].to_numpy())
    rows = frame.with_columns(pl.Series("normal", normal, pl.Boolean)).select(list(ROW_COLUMNS)).cast(ROW_COLUMNS)
    return rows, np.asarray(frame["embedding"].to_numpy(), np.float32).reshape(frame.height, -1).astype(np.float16)


# ----- building ---------------------------------------------------------------------------

def build_stats(rows: pl.DataFrame, index: VectorIndex, product: str) -> dict:
    """Label mix, memory bank, anomaly calibration and a leave-one-out neighbour quality
    figure: per label, the mean share of a sampled row's 5 nearest other rows with its
    label, then the mean over labels (knn5_loo)."""
    labels = rows["label"].to_numpy()
    bank = rows["normal"].to_numpy()
    calibration = anomaly.calibrate(index, bank)
    knn = None
    if rows.height > QUALITY_K:
        sample = np.linspace(0, rows.height - 1, min(QUALITY_SAMPLE, rows.height)).astype(np.int64)
        found, _ = index.search_many(index.vectors(sample), QUALITY_K + 1)
        shares: dict[str, list[float]] = {}
        for q, row in enumerate(sample):
            others = [r for r in found[q] if r >= 0 and r != row][:QUALITY_K]
            shares.setdefault(labels[row], []).append(float(np.mean(labels[others] == labels[row])))
        knn = round(float(np.mean([np.mean(v) for v in shares.values()])), 4)
    counts = rows.group_by("label").len().sort("label")
    return {
        "product": product, "rows": rows.height, "dim": index.dim,
        "days": rows["day"].n_unique(),
        "labels": dict(zip(counts["label"].to_list(), counts["len"].to_list())),
        "normal_bank": int(bank.sum()), "calibration": calibration.as_dict(), "knn5_loo": knn,
        "index_memory_bytes": index.nbytes(),
    }


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def _npz(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _parquet(frame: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.write_parquet(buf, compression="zstd", statistics=False)
    return buf.getvalue()


def version_files(rows: pl.DataFrame, embeddings: np.ndarray, index: VectorIndex) -> dict[str, bytes]:
    """A version's files besides its stats, as they are stored."""
    return {"embeddings.npy": _npy(embeddings), "rows.parquet": _parquet(rows), "cells.npz": _npz(**index.cells())}


def rebuild_product(store: ObjectStore, product: str, days: SignatureDays, *, run_id: str,
                    read_day: Callable[[date], pl.DataFrame], force: bool = False,
                    log: Callable[[str], None] = print) -> RebuildReport:
    """Bring the product's index up to date with the committed signature days (see the
    module docstring); ``read_day`` gives a committed day's signatures (shared by the
    products of one round, so each day is read once)."""
    started = time.monotonic()
    report = RebuildReport(product)
    pointer, etag = read_pointer(store, product)
    previous = load_index(store, product) if pointer is not None else None
    if previous is not None and previous.version != pointer["version"]:   # switched meanwhile
        raise IndexConflict(f"the index of {product!r} switched while this rebuild read it")
    report.previous = pointer["version"] if pointer else None
    report.stale_days = [d.isoformat() for d in sorted(days.stale)]
    if previous is not None and index_signature_version(previous) != SIGNATURE_VERSION:
        log(f"pattern index {product}: {previous.version} holds signature version "
            f"{index_signature_version(previous)}, this code signs {SIGNATURE_VERSION}: rebuilt from the days")
        previous = None   # nothing of it is comparable: start from the committed days
    seen = dict(previous.stats.get("day_commits", {})) if previous else {}
    now = days.commits()
    changed = sorted(d for d in set(seen) | set(now) if seen.get(d) != now.get(d))
    held = set(previous.rows["day"].cast(pl.String).unique().to_list()) if previous else set()
    touching = [d for d in changed if d in held or product in days.manifests.get(
        date.fromisoformat(d), DayManifest(PATTERNS_PIPELINE, date.min)).totals.get("products", [])]
    report.changed_days = touching
    if previous is not None and not touching and not force:
        report.version, report.stats, report.history = previous.version, previous.stats, pointer["history"]
        log(f"pattern index {product}: {previous.version} already holds every committed day")
        return report

    # previous rows of unchanged days, then the changed days read again
    if previous is not None:
        kept = ~previous.rows["day"].cast(pl.String).is_in(touching).to_numpy()
        parts_rows, parts_emb = [previous.rows.filter(pl.Series(kept))], [previous.embeddings[kept]]
    else:
        parts_rows, parts_emb = [], []
    for d in touching:
        if date.fromisoformat(d) in days.manifests:
            r, e = index_rows(read_day(date.fromisoformat(d)), date.fromisoformat(d), product)
            if r.height:
                parts_rows.append(r)
                parts_emb.append(e)
    parts_emb = [e for e in parts_emb if e.size]
    rows = pl.concat([pl.DataFrame(schema=ROW_COLUMNS), *parts_rows]) if parts_rows else \
        pl.DataFrame(schema=ROW_COLUMNS)
    if rows.height == 0:
        log(f"pattern index {product}: no classified wafers; nothing to serve")
        return report
    embeddings = np.concatenate(parts_emb)
    order = rows.with_row_index("_i").sort(ROW_ORDER, nulls_last=True)["_i"].to_numpy()
    rows, embeddings = rows[order], np.ascontiguousarray(embeddings[order])
    index = VectorIndex.build(embeddings.astype(np.float32))

    generation = (pointer["generation"] if pointer else 0) + 1
    version = f"v{generation:06d}-{secrets.token_hex(4)}"
    base = pattern_index_version_dir(product, version)
    stats = build_stats(rows, index, product)
    files = version_files(rows, embeddings, index)
    stats.update({
        "format": INDEX_FORMAT, "version": version, "generation": generation, "run_id": run_id,
        "signature_version": SIGNATURE_VERSION, "stale_days": report.stale_days,
        "built_at": datetime.now(UTC).isoformat(), "changed_days": touching,
        "day_commits": now, "stored_bytes": sum(len(b) for b in files.values()),
    })
    store.check_conditional_writes()   # the switch below is a compare-and-swap
    for name, data in files.items():
        store.put(f"{base}{name}", data)
    stats["build_seconds"] = round(time.monotonic() - started, 3)
    store.put(f"{base}stats.json", json.dumps(stats, indent=1).encode(), "application/json")
    history = [_history_entry(stats), *(pointer["history"] if pointer else [])][:HISTORY]
    switch(store, product, {"format": POINTER_FORMAT, "product": product, "version": version,
                            "generation": generation, "switched_at": datetime.now(UTC).isoformat(),
                            "history": history}, etag, own_version=version)
    log(f"pattern index {product}: switched to {version} ({rows.height} wafer(s), {len(touching)} changed day(s))")
    report.rebuilt, report.version, report.stats, report.history = True, version, stats, history
    report.collected = collect_versions(store, product, log=log)
    return report


def _history_entry(stats: dict) -> dict:
    return {k: stats.get(k) for k in ("version", "generation", "built_at", "rows", "stored_bytes",
                                      "index_memory_bytes", "build_seconds", "knn5_loo", "normal_bank",
                                      "labels", "changed_days")}


def switch(store: ObjectStore, product: str, pointer: dict, expected_etag: str | None, *,
           own_version: str | None = None) -> str:
    """Replace the pointer if it is still the version read (the one-step switch); on a
    conflict remove ``own_version``'s folder (no pointer will ever name it) and raise."""
    key = pattern_index_pointer(product)
    data = json.dumps(pointer, indent=1).encode()
    try:
        if expected_etag is None:
            return store.put(key, data, "application/json", if_none_match=True).etag
        return store.put(key, data, "application/json", if_match=expected_etag).etag
    except PreconditionFailed as exc:
        if own_version is not None:
            for o in list(store.list(pattern_index_version_dir(product, own_version))):
                store.delete(o.key)
        raise IndexConflict(f"another rebuild switched the index of {product!r} first; this one's version "
                            f"{own_version} was removed") from exc


def roll_back(store: ObjectStore, product: str, log: Callable[[str], None] = print) -> str:
    """Serve the newest earlier version still kept (one compare-and-swap); returns it."""
    pointer, etag = read_pointer(store, product)
    if pointer is None:
        raise ValueError(f"{product!r} has no pattern index")
    for entry in pointer["history"]:
        version = entry["version"]
        if version != pointer["version"] and store.head(f"{pattern_index_version_dir(product, version)}stats.json"):
            switch(store, product, {**pointer, "version": version, "switched_at": datetime.now(UTC).isoformat(),
                                    "history": [{**entry, "rolled_back_from": pointer["version"]},
                                                *pointer["history"]][:HISTORY]}, etag)
            log(f"pattern index {product}: rolled back from {pointer['version']} to {version}")
            return version
    raise ValueError(f"{product!r} keeps no earlier version to roll back to")


def collect_versions(store: ObjectStore, product: str, *, keep: int = KEEP_VERSIONS,
                     log: Callable[[str], None] = print) -> list[str]:
    """Delete the versions the pointer's history no longer keeps (beyond ``keep``) and
    stale folders no pointer named; returns the versions removed."""
    pointer, _ = read_pointer(store, product)
    if pointer is None:
        return []
    kept, named = {pointer["version"]}, set()
    for entry in pointer["history"]:
        named.add(entry["version"])
        if len(kept) < keep:
            kept.add(entry["version"])
    base = pattern_index_dir(product)
    cutoff = datetime.now(UTC) - STALE_VERSION_AGE
    folders: dict[str, list] = {}
    for o in store.list(base):
        rest = o.key[len(base):]
        if "/" in rest:
            folders.setdefault(rest.split("/", 1)[0], []).append(o)
    removed = []
    for name, objects in sorted(folders.items()):
        if name in kept:
            continue
        if name not in named and max(o.last_modified for o in objects) > cutoff:
            continue   # perhaps a rebuild still writing: not ours to judge yet
        for o in objects:
            store.delete(o.key)
        removed.append(name)
    if removed:
        log(f"pattern index {product}: removed version(s) {', '.join(removed)}")
    return removed


@dataclass
class RoundReport:
    products: dict[str, RebuildReport] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    stale_days: dict[str, str] = field(default_factory=dict)   # day -> the other signature version


def rebuild_indexes(store: ObjectStore, *, run_id: str, products: list[str] | None = None, force: bool = False,
                    log: Callable[[str], None] = print) -> RoundReport:
    """Rebuild every product whose committed days changed (or ``products``). A product
    whose rebuild fails keeps its serving version and is reported in ``failed``; the
    others go on. Raises at the end when any failed, so the round shows as failed."""
    started = time.monotonic()
    days = committed_signature_days(store)
    cache: dict[date, pl.DataFrame] = {}

    def read_day(day: date) -> pl.DataFrame:
        if day not in cache:
            cache[day] = day_signature_rows(store, days.manifests[day])
        return cache[day]

    wanted = sorted(set(products) if products else days.products() | set(indexed_products(store)))
    report = RoundReport(stale_days={d.isoformat(): v for d, v in sorted(days.stale.items())})
    if days.stale:
        log(f"pattern index: {len(days.stale)} day(s) signed by another signature version than this code's "
            f"({SIGNATURE_VERSION}) left out until wafer_signatures is re-materialized for them: "
            f"{', '.join(report.stale_days)}")
    for product in wanted:
        try:
            report.products[product] = rebuild_product(store, product, days, run_id=run_id, read_day=read_day,
                                                       force=force, log=log)
        except Exception as exc:  # noqa: BLE001 - one product's failure must not stop the others
            report.failed[product] = f"{type(exc).__name__}: {exc}"
            log(f"pattern index {product}: rebuild failed, the previous version keeps serving ({exc})")
    report.seconds = time.monotonic() - started
    return report
