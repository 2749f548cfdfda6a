"""The processed ledger: which (key, etag) a sensor has already requested a run for.

Pure: no Dagster import. The ledger answers one question while a sensor re-lists an
open day folder: "did I already request this exact object version?". An entry is a
64-bit BLAKE2b hash of the length-prefixed key and the etag (collision odds for the ~10^4..10^5 entries of
a few open days: ~10^-10); one set per open day, pruned to the objects still
listed after every complete pass over the day, and dropped when the day closes.

Where it is stored, and why not inside the sensor cursor
--------------------------------------------------------
Exactly-once hangs on one atomic commit: Dagster writes a tick's run requests and
its cursor in the same tick row before submitting any run (``set_run_requests``),
and a crashed daemon resumes the reserved requests instead of re-evaluating. So
whatever defines "already requested" must change only when the cursor changes.

The obvious place, the cursor itself, is too expensive: Dagster copies the cursor
into *every* tick row, and keeps SUCCESS ticks forever and SKIPPED ticks for 7
days by default. At 8 bytes per entry, a busy day of 30k objects times three open
days is ~1 MB of base64 per tick, every 30 s, per sensor. So the ledger bodies live
in the instance's key-value table (``instance.daemon_cursor_storage``, the table
Dagster's own asset daemon keeps its cursors in: same database, same backups, same
lifecycle as the cursor), and the cursor only *references* them:

* each day's ledger is written under a content-addressed key
  ``<namespace>/ledger/<day>/<digest>`` (split into <= 48,000-character chunks, the
  MySQL TEXT limit being 64 KiB); nothing ever overwrites a value another cursor
  may still reference;
* the cursor (a few hundred bytes) names, per open day, the digest and chunk count
  of its ledger. A tick that fails after writing new ledger values but before its
  cursor is committed leaves them unreferenced: the committed cursor still points
  at the old versions, so the retried tick sees exactly the old state;
* values superseded by a tick are listed in that tick's cursor as garbage and
  blanked by the *next* tick, i.e. only once the cursor that stopped referencing
  them is committed.

Run manifests (the full list of (key, etag) a run request covers, for the run's
``failmap/manifest`` tag) are written to the same table under
``<namespace>/manifest/<run_key>``; they are kept like the runs themselves.
"""

from __future__ import annotations

import base64
import hashlib
import json
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Protocol

from failmap_assets.storage.versions import decode_hashes, encode_hashes, entry_hash

__all__ = ["decode_hashes", "encode_hashes", "entry_hash"]  # the ledger's entries, defined with object versions

CHUNK_CHARS = 48_000


def objects_digest(entries: Iterable[tuple[str, str]]) -> str:
    """Order-independent digest of a set of (key, etag): stable run keys and tags."""
    h = hashlib.sha256()
    for key, etag in sorted(set(entries)):
        k = key.encode("utf-8", "surrogatepass")
        e = etag.encode("utf-8", "surrogatepass")
        h.update(len(k).to_bytes(4, "little") + k + len(e).to_bytes(4, "little") + e)
    return h.hexdigest()


class KeyValueStore(Protocol):
    """What ``DagsterInstance.daemon_cursor_storage`` offers (a dict-backed fake in tests)."""

    def get_cursor_values(self, keys: set[str]) -> Mapping[str, str]: ...

    def set_cursor_values(self, pairs: Mapping[str, str]) -> None: ...


class DictKeyValueStore:
    """In-memory KeyValueStore for pure tests."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    def get_cursor_values(self, keys: set[str]) -> Mapping[str, str]:
        return {k: self.data[k] for k in keys if k in self.data}

    def set_cursor_values(self, pairs: Mapping[str, str]) -> None:
        self.data.update(pairs)


class LedgerCorrupt(RuntimeError):
    """A ledger value the cursor references is missing or does not match its digest."""


@dataclass(frozen=True)
class Manifest:
    sensor: str
    day: str
    gen: int
    objects: list[tuple[str, str]]               # (key, etag) this run covers
    partners: list[tuple[str, str, str]] = field(default_factory=list)  # (key, etag, their day)


def _split(text: str) -> list[str]:
    return [text[i : i + CHUNK_CHARS] for i in range(0, len(text), CHUNK_CHARS)] or [""]


@dataclass
class LedgerStore:
    """Ledger and manifest values of one sensor in a KeyValueStore; writes are staged
    and sent in one ``flush()`` (one statement for the SQL storages)."""

    kv: KeyValueStore
    namespace: str  # e.g. "failmap/sensors/bucket_a_sensor"
    _pending: dict[str, str] = field(default_factory=dict)
    _cache: dict[str, str] = field(default_factory=dict)

    # ----- ledgers -------------------------------------------------------------
    def _ledger_keys(self, day: date, ref: str) -> list[str]:
        digest, _, n = ref.partition(".")
        base = f"{self.namespace}/ledger/{day:%Y%m%d}/{digest}"
        return [f"{base}.{i}" for i in range(int(n))]

    def load(self, day: date, ref: str | None) -> set[int]:
        """The ledger of ``day`` referenced by ``ref`` (None: empty)."""
        if ref is None:
            return set()
        keys = self._ledger_keys(day, ref)
        found = {k: self._pending.get(k) or self._cache.get(k) for k in keys}
        if not all(found.values()):
            found.update(self.kv.get_cursor_values({k for k, v in found.items() if not v}))
        missing = [k for k in keys if not found.get(k)]
        if missing:
            raise LedgerCorrupt(
                f"ledger value {missing[0]} referenced by the sensor cursor is missing from the instance "
                "key-value store; was the Dagster storage restored without the cursor? Reset the sensor "
                "cursor to re-scan (runs are idempotent per (key, etag))."
            )
        text = "".join(found[k] for k in keys)
        digest = ref.partition(".")[0]
        if hashlib.sha256(text.encode("ascii")).hexdigest()[:20] != digest:
            raise LedgerCorrupt(f"ledger value for day {day} does not match its digest {digest}")
        return decode_hashes(text)

    def stage(self, day: date, hashes: Iterable[int]) -> str | None:
        """Stage a new ledger for ``day``; returns its reference (None when empty)."""
        hashes = set(hashes)
        if not hashes:
            return None
        text = encode_hashes(hashes)
        digest = hashlib.sha256(text.encode("ascii")).hexdigest()[:20]
        chunks = _split(text)
        ref = f"{digest}.{len(chunks)}"
        for key, chunk in zip(self._ledger_keys(day, ref), chunks):
            self._pending[key] = chunk
        return ref

    def release(self, garbage: Sequence[str], still_referenced: Iterable[tuple[date, str]]) -> None:
        """Blank superseded ledger values (``"<YYYYMMDD>/<ref>"`` strings) unless a
        current reference or a staged write uses them."""
        keep: set[str] = set(self._pending)
        for day, ref in still_referenced:
            keep.update(self._ledger_keys(day, ref))
        for item in garbage:
            day_text, _, ref = item.partition("/")
            day = date(int(day_text[:4]), int(day_text[4:6]), int(day_text[6:8]))
            for key in self._ledger_keys(day, ref):
                if key not in keep:
                    self._pending[key] = ""

    # ----- manifests -----------------------------------------------------------
    def manifest_key(self, run_key: str) -> str:
        return f"{self.namespace}/manifest/{run_key}"

    def stage_manifest(self, run_key: str, manifest: Manifest) -> str:
        payload = {
            "sensor": manifest.sensor,
            "day": manifest.day,
            "gen": manifest.gen,
            "objects": [list(o) for o in manifest.objects],
            "partners": [list(p) for p in manifest.partners],
        }
        raw = json.dumps(payload, separators=(",", ":")).encode("utf-8", "surrogatepass")
        text = base64.b64encode(zlib.compress(raw, 6)).decode("ascii")
        chunks = _split(text)
        base = self.manifest_key(run_key)
        self._pending[base] = f"{len(chunks)}:{chunks[0]}"
        for i, chunk in enumerate(chunks[1:], start=1):
            self._pending[f"{base}.{i}"] = chunk
        return base

    def load_manifest(self, key: str) -> Manifest:
        head = self._pending.get(key) or self.kv.get_cursor_values({key}).get(key)
        if not head:
            raise KeyError(key)
        n_text, _, first = head.partition(":")
        n = int(n_text)
        rest_keys = [f"{key}.{i}" for i in range(1, n)]
        rest = self.kv.get_cursor_values(set(rest_keys)) if rest_keys else {}
        text = first + "".join(self._pending.get(k) or rest[k] for k in rest_keys)
        payload = json.loads(zlib.decompress(base64.b64decode(text)).decode("utf-8", "surrogatepass"))
        return Manifest(
            sensor=payload["sensor"],
            day=payload["day"],
            gen=payload["gen"],
            objects=[tuple(o) for o in payload["objects"]],
            partners=[tuple(p) for p in payload["partners"]],
        )

    # ----- write ---------------------------------------------------------------
    @property
    def pending(self) -> Mapping[str, str]:
        return self._pending

    def flush(self) -> int:
        """Write every staged value; returns the number of values written.

        Dagster's SQL ``set_cursor_values`` runs one multi-row INSERT and, if *any* key
        already exists, falls back to an UPDATE of the existing keys only, silently
        dropping the new ones. So: blanks (keys that exist, or need not) go in one
        UPDATE-style call; new values are checked for presence first and inserted in
        one call; and the inserted keys are read back, any missing one (a concurrent
        writer made the insert fall back) being written on its own. Three or four
        statements per tick instead of one per key: each is a commit."""
        if not self._pending:
            return 0
        pending = dict(self._pending)
        self._pending.clear()
        blanks = {k: v for k, v in pending.items() if v == ""}
        values = {k: v for k, v in pending.items() if v != ""}
        present = set(self.kv.get_cursor_values(set(values))) if values else set()
        inserts = {k: v for k, v in values.items() if k not in present}
        updates = {**blanks, **{k: v for k, v in values.items() if k in present}}
        if inserts:
            self.kv.set_cursor_values(inserts)
            landed = set(self.kv.get_cursor_values(set(inserts)))
            for key in set(inserts) - landed:
                self.kv.set_cursor_values({key: inserts[key]})
        if updates:
            self.kv.set_cursor_values(updates)
        return len(pending)

    def prefetch(self, refs: Iterable[tuple[date, str | None]]) -> None:
        """Read the ledgers of several days in one query (``load`` then hits the cache)."""
        keys: set[str] = set()
        for day, ref in refs:
            if ref is not None:
                keys.update(self._ledger_keys(day, ref))
        if keys:
            self._cache.update(self.kv.get_cursor_values(keys))
