"""One run's session with a day: hold the lease, read the commit, write a new one, clean up.

Every run of a day (sensor, backfill, schedule, UI, CLI, any machine) goes through
this protocol, and it is the only code that decides what the day's files are:

1. take the day's lease (``day_lease.py``): one writer at a time;
2. read the manifest (``storage/day_manifest.py``): the committed state;
3. the caller writes its new files under names carrying this session's ``tag``
   (never a name another commit uses) and PNG / JSON, each atomically;
4. ``commit``: check the lease is still ours, then replace the manifest with a
   compare-and-swap on the version read in step 2: at that moment the new state
   becomes the day's, all of it;
5. only then delete what the new manifest no longer names in the day's folders
   (superseded files, files of crashed runs, temp files of dead writers), so after a
   successful run a plain glob over a table's folder sees exactly the day's rows.

A crash or a failed write anywhere before step 4 leaves the old day in place; the
next run redoes the work and its commit removes the leftovers. Between a crash and
that run, readers that go through the manifest (``failmap sql``, ``read_day_table``)
see the old day; a plain glob may also see the dead run's files.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import polars as pl

from failmap_assets.pipeline.day_lease import DayLease, LeaseOptions
from failmap_assets.storage.day_manifest import DayManifest, commit_manifest, read_manifest
from failmap_assets.storage.layout import (
    day_prefixes,
    lease_key,
    manifest_key,
    run_tag,
    state_file,
    stem_pipeline,
    wafer_dirs,
)
from failmap_assets.storage.object_store import ObjectStore
from failmap_assets.storage.parquet_io import read_table, write_table

#: a temp file or multipart upload older than this belongs to a writer that died
STALE_TEMP_AGE = timedelta(minutes=15)


class DaySession:
    def __init__(self, store: ObjectStore, pipeline: str, day: date, run_id: str, *,
                 lease: LeaseOptions, log: Callable[[str], None] = print,
                 stdf_tables: tuple[str, ...] = ()) -> None:
        self.store, self.pipeline, self.day, self.run_id, self.log = store, pipeline, day, run_id, log
        self.lease = DayLease(store, pipeline, day, run_id, lease, log)
        self.prefixes = day_prefixes(pipeline, day, stdf_tables)
        self.manifest: DayManifest | None = None
        self.etag: str | None = None
        self.generation = 1
        self.tag = ""
        self.committed: DayManifest | None = None

    def __enter__(self) -> DaySession:
        self.lease.acquire()
        try:
            self.manifest, self.etag = read_manifest(self.store, self.pipeline, self.day)
        except BaseException:
            self.lease.release()
            raise
        self.generation = (self.manifest.generation if self.manifest else 0) + 1
        self.tag = run_tag(self.generation, self.run_id, secrets.token_hex(3))
        return self

    def __exit__(self, *exc) -> None:
        self.lease.release()

    # ----- reading the committed state ---------------------------------------------------
    def state_table(self, kind: str) -> pl.DataFrame | None:
        """A committed state table (units, events, rejects), or None."""
        if self.manifest is None or kind not in self.manifest.state:
            return None
        return read_table(self.store, self.manifest.state[kind])

    # ----- writing ------------------------------------------------------------------------
    def write_state(self, kind: str, df: pl.DataFrame) -> str:
        key = state_file(self.pipeline, self.day, kind, self.tag)
        write_table(self.store, key, df)
        return key

    def check(self) -> None:
        """Before writing anything visible (PNG, JSON): still the day's writer?"""
        self.lease.check()

    def files_on_disk(self) -> dict[str, str]:
        """Every file in the day's folders that this pipeline accounts for, with its ETag
        (its own wafer files only: the other pipeline shares the PNG / JSON folders)."""
        reserved = {manifest_key(self.pipeline, self.day), lease_key(self.pipeline, self.day)}
        found = {}
        for prefix in self.prefixes:
            found.update((o.key, o.etag) for o in self.store.list(prefix) if o.key not in reserved)
        for prefix in wafer_dirs(self.day):
            for o in self.store.list(prefix):
                stem = o.key[len(prefix):].rsplit(".", 1)[0]
                if "/" not in stem and stem_pipeline(stem) == self.pipeline:
                    found[o.key] = o.etag
        return found

    def out_of_step(self) -> tuple[list[str], set[str]]:
        """What a run must repair even when nothing is new: files the manifest does not
        name (left by a crashed run), and wafer files that are not the version the
        manifest recorded (a crashed run drew them before it could commit)."""
        disk = self.files_on_disk()
        live = self.manifest.live_files() if self.manifest else set()
        garbage = sorted(k for k in disk if k not in live)
        recorded = self.manifest.wafer_files if self.manifest else {}
        stale = {k for k, etag in recorded.items() if disk.get(k) != etag}
        return garbage, stale

    def garbage(self, keep: set[str]) -> list[str]:
        return sorted(k for k in self.files_on_disk() if k not in keep)

    def unchanged_commit(self, inputs: str, force: bool = False) -> DayManifest | None:
        """The day's commit when it was computed from exactly ``inputs`` (and the run is
        not forced): nothing to recompute, only a crashed run's leftovers to remove. None
        when the day must be computed again."""
        if self.manifest is None or force or self.manifest.inputs != inputs:
            return None
        self.collect_garbage(self.manifest.live_files())
        return self.manifest

    def commit(self, manifest: DayManifest) -> DayManifest:
        """Make ``manifest`` the day's (see the module docstring), then remove what it no
        longer names. Raises ManifestConflict / LeaseLost when this run lost the day."""
        manifest.generation = self.generation
        manifest.run_id = self.run_id
        manifest.committed_at = datetime.now(UTC).isoformat()
        self.lease.check()
        self.etag = commit_manifest(self.store, manifest, self.etag)
        self.manifest = self.committed = manifest
        self.collect_garbage(manifest.live_files())
        return manifest

    def collect_garbage(self, keep: set[str]) -> int:
        self.lease.check()
        removed = 0
        for key in self.garbage(keep):
            self.store.delete(key)
            removed += 1
        removed += self.remove_stale_temporaries(log=False)
        if removed:
            self.log(f"removed {removed} superseded or left-over file(s) of {self.pipeline} {self.day}")
        return removed

    def remove_stale_temporaries(self, *, log: bool = True) -> int:
        """Remove the temp files / multipart uploads of writers that died (older than
        STALE_TEMP_AGE) in the day's folders. Every run does this, also one that has
        nothing to commit: a killed run's temporaries must not wait for the day's next
        commit, which a finished day never gets."""
        self.lease.check()
        cutoff = datetime.now(UTC) - STALE_TEMP_AGE
        removed = sum(len(self.store.remove_stale_temporaries(prefix, cutoff))
                      for prefix in [*self.prefixes, *wafer_dirs(self.day)])
        if removed and log:
            self.log(f"removed {removed} left-over temporary file(s) of {self.pipeline} {self.day}")
        return removed


def inputs_digest(*frames: pl.DataFrame) -> str:
    """What a commit was computed from: the listings (and, for fail maps, the pairs, which
    carry the pairing rules' decisions). Equal digests and nothing to process: nothing to
    commit. Every column counts, ``last_modified`` too: an object put again with the same
    bytes keeps its ETag on S3 (the MD5) but not its time, and the committed listing must
    show the object as it is."""
    h = hashlib.sha256()
    for df in frames:
        cols = sorted(df.columns)
        h.update(df.select(cols).sort(cols, nulls_last=True).write_csv().encode())
    return h.hexdigest()
