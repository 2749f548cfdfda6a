"""One object-store interface over S3-compatible servers and local folders.

Keys are ``/``-separated, relative to the store's root (an ``s3://bucket/prefix``
or a local folder). Listing is lexicographic by key with S3 ``StartAfter``
semantics, so the sensors can resume from a cursor and never list a whole bucket.
Keys are untrusted: backends must refuse any key that would escape the root.

Conditional requests (create-if-absent, compare-and-swap, version-pinned reads) are
what a commit manifest and a lease are built on. Not every S3-compatible server
honours them (``rclone serve s3`` ignores the headers), so code that relies on them
calls ``check_conditional_writes`` first instead of assuming.
"""

from __future__ import annotations

import abc
import secrets
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO


@dataclass(frozen=True)
class ObjectInfo:
    key: str                 # relative to the store root
    size: int
    etag: str                # without surrounding quotes
    last_modified: datetime  # timezone-aware, UTC


class UnsafeKey(ValueError):
    """A key that could escape the store root or is otherwise unusable as a name."""


class PreconditionFailed(Exception):
    """A conditional write or read whose condition did not hold."""


def read_with_etag(store: "ObjectStore", key: str, attempts: int = 5) -> tuple[bytes, str] | None:
    """A small object's bytes and the ETag they belong to (a GET conditional on the ETag a
    HEAD just gave, repeated while a writer replaces it between the two); None when there
    is no such object. A ``PreconditionFailed`` when it kept changing for ``attempts``."""
    for _ in range(attempts):
        info = store.head(key)
        if info is None:
            return None
        try:
            return store.get(key, if_match=info.etag), info.etag
        except (PreconditionFailed, FileNotFoundError):
            continue  # replaced (or removed) between HEAD and GET: read the new one
    raise PreconditionFailed(f"{key} kept changing while it was read")


class ConditionalWritesUnsupported(RuntimeError):
    """The store ignores conditional requests (found by ``check_conditional_writes``)."""


#: Where the probe of ``check_conditional_writes`` writes, below the store root.
PROBE_PREFIX = ".failmap-probe/"
# Creates the per-store probe locks; held only for that, never during a probe.
_probe_locks_guard = threading.Lock()


def check_conditions(if_match: str | None, if_none_match: bool) -> None:
    """ValueError for the one combination no backend can honour."""
    if if_match is not None and if_none_match:
        raise ValueError("give if_match or if_none_match, not both")
    if if_match is not None and (not isinstance(if_match, str) or not if_match):
        raise ValueError(f"if_match must be a non-empty etag string, got {if_match!r}")


def listing_wants(key: str, is_dir: bool, prefix: str, start_after: str | None) -> bool:
    """Whether a folder walk listing ``prefix`` after ``start_after`` needs ``key``: a
    file when it matches; a folder "d/" (every key below it starts with it and sorts
    after it) only if it can meet the prefix, and unless it sorts entirely before
    start_after (start_after neither inside it nor before it). The one rule of the
    stores that walk folders (local, FTP, SFTP)."""
    if not is_dir:
        return key.startswith(prefix) and (start_after is None or key > start_after)
    if not (key.startswith(prefix) or prefix.startswith(key)):
        return False
    return start_after is None or key > start_after or start_after.startswith(key)


def check_aware(when: datetime, what: str) -> None:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got {when!r}")


class ObjectStore(abc.ABC):
    """Operations every backend provides (see storage/local_store.py, storage/s3_store.py)."""

    #: human-readable location, e.g. ``s3://bucket/prefix`` or ``/abs/folder``; never credentials
    location: str

    @abc.abstractmethod
    def list(self, prefix: str = "", start_after: str | None = None, limit: int | None = None) -> Iterator[ObjectInfo]:
        """Objects whose key starts with ``prefix`` and sorts strictly after ``start_after``,
        in lexicographic (UTF-8 byte) order, paginating transparently; at most ``limit``.
        (SeaweedFS orders ``a/b`` before ``a!``: see storage/s3_store.py.)"""

    @abc.abstractmethod
    def list_prefixes(self, prefix: str = "", delimiter: str = "/") -> list[str]:
        """Common prefixes one level below ``prefix`` (``20260111/`` day folders), sorted.
        Every prefix that holds an object is there; a server that keeps emptied folders
        (SeaweedFS) may also list a prefix whose objects were all deleted."""

    @abc.abstractmethod
    def head(self, key: str) -> ObjectInfo | None:
        """Metadata of one object, or None when it does not exist."""

    @abc.abstractmethod
    def get(self, key: str, *, if_match: str | None = None) -> bytes:
        """The whole object. Raises FileNotFoundError when missing. With ``if_match``
        (an etag from ``list`` or ``head``), PreconditionFailed when the object has been
        replaced since: the bytes returned are always those of that version."""

    @abc.abstractmethod
    def open(self, key: str) -> BinaryIO:
        """A streaming, readable binary file object; the caller closes it."""

    @abc.abstractmethod
    def put(self, key: str, data: bytes, content_type: str | None = None, *,
            if_match: str | None = None, if_none_match: bool = False) -> ObjectInfo:
        """Write atomically: readers see the old object or the whole new one, never a part.

        ``if_none_match=True`` writes only if no object exists at ``key`` (create-if-absent);
        ``if_match=etag`` only if the current object has that etag (compare-and-swap).
        Otherwise PreconditionFailed, and nothing is written. Both at once: ValueError.
        The etag returned is the one ``head`` and ``list`` report for the new object."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove one object; missing is not an error."""

    def remove_stale_temporaries(self, prefix: str, older_than: datetime) -> list[str]:
        """Remove what writers that died left below ``prefix`` (temp files, incomplete
        multipart uploads) begun before ``older_than``; returns what was removed."""
        check_aware(older_than, "older_than")
        return []

    def check_conditional_writes(self) -> None:
        """ConditionalWritesUnsupported unless this store really honours conditional
        requests. Probes once per store object (a few requests below ``.failmap-probe/``)
        and remembers the verdict; other errors (network, permissions) are not remembered."""
        verdict = getattr(self, "_conditional_verdict", None)
        if verdict is None:
            with _probe_locks_guard:
                lock = self.__dict__.setdefault("_conditional_lock", threading.Lock())
            with lock:  # one probe at a time per store; the others wait for its verdict
                verdict = getattr(self, "_conditional_verdict", None)
                if verdict is None:
                    verdict = self._conditional_verdict = self._probe_conditional_requests()
        if verdict:
            raise ConditionalWritesUnsupported(
                f"{self.location} ignores conditional requests ({verdict}); a manifest or lease here "
                "needs an S3 store that honours If-None-Match and If-Match on PutObject (and If-Match "
                "on GetObject), as AWS S3, MinIO and SeaweedFS do")

    def _probe_conditional_requests(self) -> str:
        """What the store got wrong, or "" when every condition held."""
        key = f"{PROBE_PREFIX}{secrets.token_hex(8)}"
        first = self.put(key, b"probe", if_none_match=True)
        try:
            wrong = "0" * 32 if first.etag != "0" * 32 else "1" * 32
            attempts = {
                "a second If-None-Match: * PUT of an existing key succeeded":
                    lambda: self.put(key, b"probe: overwritten", if_none_match=True),
                "a PUT with a wrong If-Match etag succeeded":
                    lambda: self.put(key, b"probe: swapped", if_match=wrong),
                "a GET with a wrong If-Match etag succeeded":
                    lambda: self.get(key, if_match=wrong),
            }
            for problem, attempt in attempts.items():
                try:
                    attempt()
                except PreconditionFailed:
                    continue
                return problem
            try:  # a store that refused everything would pass so far, and no swap could ever succeed
                self.put(key, b"probe: swapped", if_match=first.etag)
            except PreconditionFailed:
                return "a PUT with the current If-Match etag was refused"
            return ""
        finally:
            self.delete(key)

    def get_many(self, keys: Iterable[str], max_workers: int = 16) -> Iterator[tuple[str, bytes | BaseException]]:
        """GET many objects on a bounded thread pool, yielding (key, bytes or the error)
        as each completes. At most ``2 * max_workers`` downloads are in flight."""
        from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

        it = iter(keys)
        with ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="objget") as pool:
            pending = {}
            for key in it:
                pending[pool.submit(self.get, key)] = key
                if len(pending) >= 2 * max_workers:
                    break
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    key = pending.pop(fut)
                    exc = fut.exception()
                    yield key, (exc if exc is not None else fut.result())
                    nxt = next(it, None)
                    if nxt is not None:
                        pending[pool.submit(self.get, nxt)] = nxt
