"""A committed day as plain values, read through its manifest, for comparing two days:
every table's rows as a multiset, the state tables, the PNG / JSON bytes, and the
manifest's figures. Columns that say *when* or *which run* (first_seen, processed_at,
run ids, file names carrying a run's tag) are left out: two runs over the same
objects must agree on everything else."""

from __future__ import annotations

import io
from datetime import date

import polars as pl

from failmap_assets.pipeline.day_commit import DaySession
from failmap_assets.pipeline.day_lease import LeaseOptions
from failmap_assets.stdf.tables import TABLES
from failmap_assets.storage.day_manifest import DayManifest, read_manifest
from failmap_assets.storage.object_store import ObjectStore

#: per table or state kind, the columns that may differ between two runs over the same objects
VARIES = {
    "failmap_rejects": ("first_seen",),
    "stdf_rejects": ("first_seen",),
    "state:rejects": ("first_seen", "run_id"),
    "state:units": ("processed_at", "run_id", "files"),
}


def rows(df: pl.DataFrame | None, drop: tuple[str, ...] = ()) -> list[str]:
    """The rows of ``df`` as a sorted list (a multiset), columns in name order."""
    if df is None:
        return []
    df = df.drop([c for c in drop if c in df.columns])
    return sorted(repr(r) for r in df.select(sorted(df.columns)).rows())


def read_files(store: ObjectStore, keys: list[str]) -> pl.DataFrame | None:
    if not keys:
        return None
    return pl.concat([pl.read_parquet(io.BytesIO(store.get(k))) for k in keys], how="diagonal_relaxed")


def day_view(store: ObjectStore, pipeline: str, day: date) -> dict:
    """The committed day (AssertionError when there is none, or when a wafer file on
    disk is not the version the manifest recorded)."""
    manifest, _ = read_manifest(store, pipeline, day)
    assert manifest is not None, f"{pipeline} {day} has no commit"
    return view_of(store, manifest)


def view_of(store: ObjectStore, manifest: DayManifest) -> dict:
    view: dict = {
        "totals": manifest.totals, "seen": sorted(manifest.seen), "open": sorted(manifest.open),
        "next_due": manifest.next_due, "inputs": manifest.inputs,
    }
    for table, files in sorted(manifest.tables.items()):
        view[f"table:{table}"] = rows(read_files(store, files), VARIES.get(table, ()))
    for kind, key in sorted(manifest.state.items()):
        view[f"state:{kind}"] = rows(read_files(store, [key]), VARIES.get(f"state:{kind}", ()))
    wafer_files = {}
    for key, etag in sorted(manifest.wafer_files.items()):
        info = store.head(key)
        assert info is not None and info.etag == etag, f"{key}: not the version the commit recorded"
        wafer_files[key] = store.get(key)
    view["wafer_files"] = wafer_files
    return view


def diff(a: dict, b: dict) -> list[str]:
    """What differs between two views (for assertion messages)."""
    out = []
    for k in sorted(set(a) | set(b)):
        if a.get(k) != b.get(k):
            if isinstance(a.get(k), list) and isinstance(b.get(k), list):
                only_a = sorted(set(a[k]) - set(b[k]))[:2]
                only_b = sorted(set(b[k]) - set(a[k]))[:2]
                out.append(f"{k}: {len(a[k])} vs {len(b[k])} rows; only left {only_a}; only right {only_b}")
            elif isinstance(a.get(k), dict) and isinstance(b.get(k), dict):
                keys = sorted(x for x in set(a[k]) | set(b[k]) if a[k].get(x) != b[k].get(x))
                out.append(f"{k}: differ at {keys[:5]}")
            else:
                out.append(f"{k}: {str(a.get(k))[:200]} vs {str(b.get(k))[:200]}")
    return out


def files_on_disk(store: ObjectStore, pipeline: str, day: date) -> set[str]:
    """Every file of the pipeline in the day's folders (as garbage collection sees them)."""
    session = DaySession(store, pipeline, day, "inspect", lease=LeaseOptions(),
                         stdf_tables=tuple(TABLES) if pipeline == "stdf" else ())
    return set(session.files_on_disk())


def assert_clean(store: ObjectStore, pipeline: str, day: date) -> None:
    """After a successful run a plain glob sees exactly the commit: no file of a failed
    or crashed run is left in the day's folders, none the commit names is missing."""
    manifest, _ = read_manifest(store, pipeline, day)
    assert manifest is not None
    disk = files_on_disk(store, pipeline, day)
    live = manifest.live_files()
    assert disk == live, f"left over: {sorted(disk - live)[:5]}; missing: {sorted(live - disk)[:5]}"
