"""One object-store interface over S3-compatible servers and local folders.

Keys are ``/``-separated, relative to the store's root (an ``s3://bucket/prefix``
or a local folder). Listing is lexicographic by key with S3 ``StartAfter``
semantics, so the sensors can resume from a cursor and never list a whole bucket.
Keys are untrusted: backends must refuse any key that would escape the root.
"""

from __future__ import annotations

import abc
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


class ObjectStore(abc.ABC):
    """Operations every backend provides (see resources/local_store.py, s3_store.py)."""

    #: human-readable location, e.g. ``s3://bucket/prefix`` or ``/abs/folder``; never credentials
    location: str

    @abc.abstractmethod
    def list(self, prefix: str = "", start_after: str | None = None, limit: int | None = None) -> Iterator[ObjectInfo]:
        """Objects whose key starts with ``prefix`` and sorts strictly after ``start_after``,
        in lexicographic (UTF-8 byte) order, paginating transparently; at most ``limit``.
        (SeaweedFS orders ``a/b`` before ``a!``: see resources/s3_store.py.)"""

    @abc.abstractmethod
    def list_prefixes(self, prefix: str = "", delimiter: str = "/") -> list[str]:
        """Common prefixes one level below ``prefix`` (``20260111/`` day folders), sorted.
        Every prefix that holds an object is there; a server that keeps emptied folders
        (SeaweedFS) may also list a prefix whose objects were all deleted."""

    @abc.abstractmethod
    def head(self, key: str) -> ObjectInfo | None:
        """Metadata of one object, or None when it does not exist."""

    @abc.abstractmethod
    def get(self, key: str) -> bytes:
        """The whole object. Raises FileNotFoundError when missing."""

    @abc.abstractmethod
    def open(self, key: str) -> BinaryIO:
        """A streaming, readable binary file object; the caller closes it."""

    @abc.abstractmethod
    def put(self, key: str, data: bytes, content_type: str | None = None) -> ObjectInfo:
        """Write atomically: readers see the old object or the whole new one, never a part."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove one object; missing is not an error."""

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
