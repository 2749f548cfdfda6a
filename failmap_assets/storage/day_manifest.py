"""The day's manifest: one small JSON object per pipeline and day, written last.

A run writes every file of its result under new names first (tables, parts, state),
then replaces the manifest with one conditional PUT (compare-and-swap on the
manifest's ETag). That PUT is the commit: readers that go through the manifest see
the old day or the new one, never a mix; a run that dies before it, or whose PUT
fails, leaves the old day in place, and its files are garbage the next commit
removes. A second writer cannot commit over a day it did not read: its PUT names
an ETag that is no longer current and is refused.

The manifest also carries what the sensors need to decide, without a run, whether a
day has anything new: the hashes of every object version the commit accounted for
(``seen``), those that still need a run (``open``: pending A files, read errors),
when the next pending object falls due, and the day's totals for the UI.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime

from failmap_assets.storage.layout import manifest_key
from failmap_assets.storage.object_store import ObjectStore, PreconditionFailed, read_with_etag
from failmap_assets.storage.versions import decode_hashes, encode_hashes

MANIFEST_FORMAT = 1


class ManifestConflict(RuntimeError):
    """Another run committed the day since this run read its manifest."""


@dataclass
class DayManifest:
    pipeline: str
    day: date
    generation: int = 0
    run_id: str = ""
    committed_at: str = ""                                     # ISO 8601, UTC
    tables: dict[str, list[str]] = field(default_factory=dict)  # table -> its live files
    state: dict[str, str] = field(default_factory=dict)         # units / events / rejects -> file
    wafer_files: dict[str, str] = field(default_factory=dict)   # PNG / JSON of the day's wafers -> ETag written
    seen: set[int] = field(default_factory=set)                 # object versions accounted for
    own: set[int] = field(default_factory=set)                  # ... of which in the day's own folders
    open: set[int] = field(default_factory=set)                 # ... of which still need a run
    next_due: str | None = None                                 # fab time a pending object falls due
    inputs: str = ""                                            # digest of what the commit was computed from
    totals: dict = field(default_factory=dict)                  # the day's figures (UI, webhooks)

    def provenance(self) -> dict:
        """Which commit this is (what downstream tables record they were computed from)."""
        return {"generation": self.generation, "run_id": self.run_id, "committed_at": self.committed_at}

    def live_files(self) -> set[str]:
        """Every object key the commit names (what garbage collection keeps)."""
        files = {f for fs in self.tables.values() for f in fs}
        files.update(self.state.values())
        files.update(self.wafer_files)
        return files

    def needs_run(self, version_hash: int, fab_now: datetime | None = None) -> bool:
        """Whether an object version still needs a run of this day: it was never
        accounted for, or it is open (a pending A, a failed read) and, when ``fab_now``
        is given, already due."""
        if version_hash not in self.seen:
            return True
        return version_hash in self.open and (fab_now is None or self.due(fab_now))

    def due(self, fab_now: datetime) -> bool:
        """Whether an open object of the day has fallen due (a pending A past its grace,
        a failed read to retry)."""
        return self.next_due is not None and datetime.fromisoformat(self.next_due) <= fab_now

    def encode(self) -> bytes:
        return json.dumps(
            {
                "format": MANIFEST_FORMAT,
                "pipeline": self.pipeline,
                "day": self.day.isoformat(),
                "generation": self.generation,
                "run_id": self.run_id,
                "committed_at": self.committed_at,
                "tables": {k: sorted(v) for k, v in sorted(self.tables.items())},
                "state": dict(sorted(self.state.items())),
                "wafer_files": dict(sorted(self.wafer_files.items())),
                "seen": encode_hashes(self.seen),
                "own": encode_hashes(self.own),
                "open": encode_hashes(self.open),
                "next_due": self.next_due,
                "inputs": self.inputs,
                "totals": self.totals,
            },
            indent=1,
            sort_keys=False,
        ).encode()

    @classmethod
    def decode(cls, data: bytes) -> "DayManifest":
        try:
            d = json.loads(data)
            if d.get("format") != MANIFEST_FORMAT:
                raise ValueError(f"unknown manifest format {d.get('format')!r}")
            return cls(
                pipeline=d["pipeline"],
                day=date.fromisoformat(d["day"]),
                generation=int(d["generation"]),
                run_id=d["run_id"],
                committed_at=d["committed_at"],
                tables={k: list(v) for k, v in d["tables"].items()},
                state=dict(d["state"]),
                wafer_files=dict(d["wafer_files"]),
                seen=decode_hashes(d["seen"]),
                own=decode_hashes(d["own"]) if "own" in d else set(),
                open=decode_hashes(d["open"]),
                next_due=d.get("next_due"),
                inputs=d.get("inputs", ""),
                totals=d.get("totals", {}),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"unreadable day manifest ({exc})") from exc


def read_manifest(store: ObjectStore, pipeline: str, day: date) -> tuple[DayManifest | None, str | None]:
    """The day's committed manifest and its ETag (the version a commit must replace),
    or (None, None) when the day was never committed."""
    key = manifest_key(pipeline, day)
    try:
        found = read_with_etag(store, key)
    except PreconditionFailed:
        raise ManifestConflict(f"the manifest {key} kept changing while it was read") from None
    if found is None:
        return None, None
    return DayManifest.decode(found[0]), found[1]


def commit_manifest(store: ObjectStore, manifest: DayManifest, expected_etag: str | None) -> str:
    """Replace the day's manifest if it is still the version ``expected_etag`` (None: if
    there is none yet); returns the new ETag. ManifestConflict when another run won."""
    key = manifest_key(manifest.pipeline, manifest.day)
    try:
        if expected_etag is None:
            info = store.put(key, manifest.encode(), "application/json", if_none_match=True)
        else:
            info = store.put(key, manifest.encode(), "application/json", if_match=expected_etag)
    except PreconditionFailed as exc:
        raise ManifestConflict(
            f"another run committed {manifest.pipeline} {manifest.day} while this one worked; "
            "this run's files are left for the next run to remove"
        ) from exc
    return info.etag


def committed_files(store: ObjectStore, pipeline: str, day: date, table: str) -> list[str]:
    """The files of ``table`` the day's commit names (empty when the day has none):
    what a reader that must never see a half-written day reads."""
    manifest, _ = read_manifest(store, pipeline, day)
    if manifest is None:
        return []
    if table in manifest.tables:
        return list(manifest.tables[table])
    return [manifest.state[table]] if table in manifest.state else []
