"""An ObjectStore wrapper for failure injection: it counts a run's writes and fails the
N-th PUT or DELETE, and lets a test act between a listing and a GET (delete or replace
the object, make the read fail)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import BinaryIO

from failmap_assets.storage.object_store import ObjectInfo, ObjectStore


class InjectedFault(OSError):
    """The write this test made fail."""


class FaultyStore(ObjectStore):
    """Delegates everything to ``inner``.

    ``fail_put`` / ``fail_delete``: the 1-based number of the PUT / DELETE to fail (with
    InjectedFault, before the inner store sees it); ``puts`` / ``deletes`` record every
    key in call order, the failed one included. ``before_get(key)`` runs before every
    GET; ``after_put(key)`` after every successful PUT. The conditional-writes probe
    goes to the inner store directly, so it is not counted among the run's writes.
    """

    def __init__(self, inner: ObjectStore, *, fail_put: int | None = None, fail_delete: int | None = None,
                 before_get: Callable[[str], None] | None = None,
                 after_put: Callable[[str], None] | None = None) -> None:
        self.inner = inner
        self.location = inner.location
        self.fail_put, self.fail_delete = fail_put, fail_delete
        self.before_get, self.after_put = before_get, after_put
        self.puts: list[str] = []
        self.deletes: list[str] = []
        self.failed: str | None = None      # the key whose write was made to fail
        self._lock = threading.Lock()

    def put(self, key: str, data: bytes, content_type: str | None = None, *,
            if_match: str | None = None, if_none_match: bool = False) -> ObjectInfo:
        with self._lock:
            self.puts.append(key)
            fail = len(self.puts) == self.fail_put
            if fail:
                self.failed = key
        if fail:
            raise InjectedFault(f"injected: PUT #{self.fail_put} ({key}) failed")
        info = self.inner.put(key, data, content_type, if_match=if_match, if_none_match=if_none_match)
        if self.after_put is not None:
            self.after_put(key)
        return info

    def delete(self, key: str) -> None:
        with self._lock:
            self.deletes.append(key)
            fail = len(self.deletes) == self.fail_delete
            if fail:
                self.failed = key
        if fail:
            raise InjectedFault(f"injected: DELETE #{self.fail_delete} ({key}) failed")
        self.inner.delete(key)

    def get(self, key: str, *, if_match: str | None = None) -> bytes:
        if self.before_get is not None:
            self.before_get(key)
        return self.inner.get(key, if_match=if_match)

    def open(self, key: str) -> BinaryIO:
        if self.before_get is not None:
            self.before_get(key)
        return self.inner.open(key)

    def list(self, prefix: str = "", start_after: str | None = None, limit: int | None = None) -> Iterator[ObjectInfo]:
        return self.inner.list(prefix, start_after, limit)

    def list_prefixes(self, prefix: str = "", delimiter: str = "/") -> list[str]:
        return self.inner.list_prefixes(prefix, delimiter)

    def head(self, key: str) -> ObjectInfo | None:
        return self.inner.head(key)

    def remove_stale_temporaries(self, prefix: str, older_than: datetime) -> list[str]:
        return self.inner.remove_stale_temporaries(prefix, older_than)

    def check_conditional_writes(self) -> None:
        self.inner.check_conditional_writes()
