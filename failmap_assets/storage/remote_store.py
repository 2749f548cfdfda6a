"""Read-only ObjectStore over a file server (FTP in ftp_store.py, SFTP in sftp_store.py).

A backend supplies sessions (one logged-in connection each) that can list a folder,
stat a file and download it; this class turns them into the ObjectStore contract:

* ``list`` walks the folders below the prefix depth-first in key order (a folder
  ``d`` sorts as ``d/``, as in the local store), starting in the deepest folder the
  prefix names and skipping folders that cannot hold a wanted key, so a day's listing
  costs one request per folder of that day, never a walk of the server. It yields only
  *settled* files (``remote_listing.py``), with keys and etags made there.
* ``get`` stats, downloads and stats again: the bytes are returned only when size and
  mtime did not move during the read (``PreconditionFailed`` with ``if_match``, which
  is checked against the first stat; without it, another attempt); a file gone before
  or during the read is ``FileNotFoundError``.
* ``put`` and ``delete`` raise ``ReadOnlyStore``: sources are read, never written.

Sessions are pooled, at most ``max_connections`` at a time (tester servers often
allow few per user), and each request is retried on transient failures (connection
lost, timeout, a 4xx FTP reply such as "too many connections") with a fresh session
and exponential backoff. A refused login or host key is not retried. Credentials live
in the backend's session factory only; ``location`` and every message name the
scheme, host, port and path, never a user or password.
"""

from __future__ import annotations

import abc
import io
import logging
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol, TypeVar

from failmap_assets.storage.local_store import check_key
from failmap_assets.storage.object_store import ObjectInfo, ObjectStore, PreconditionFailed, UnsafeKey, listing_wants
from failmap_assets.storage.remote_listing import RemoteEntry, child_key, is_settled, object_info, remote_etag

log = logging.getLogger(__name__)
T = TypeVar("T")

#: ``open`` keeps a download in memory up to this size, then in a temp file.
SPOOL_BYTES = 16 * 1024 * 1024


class ReadOnlyStore(PermissionError):
    """A write to a source that is only ever read (FTP, SFTP)."""


class LoginRefused(PermissionError):
    """The server refused the configured user and password or key."""


class HostKeyRefused(PermissionError):
    """The SFTP server's host key is not the one known_hosts holds for it."""


class _ChangedWhileRead(Exception):
    """Size or mtime moved during a download (a writer is still at it)."""


# Answers, not failures: another try would get the same (LoginRefused, HostKeyRefused and
# ReadOnlyStore are PermissionErrors)
_PERMANENT = (FileNotFoundError, PermissionError, PreconditionFailed, UnsafeKey)


class RemoteSession(Protocol):
    def listdir(self, path: str) -> list[RemoteEntry]:
        """The folder's entries (files and folders only); FileNotFoundError when missing."""

    def stat(self, path: str) -> RemoteEntry | None:
        """The regular file at ``path``, or None (missing, a folder, a link)."""

    def download(self, path: str, sink: BinaryIO) -> None:
        """Stream the file into ``sink``; FileNotFoundError when missing."""

    def close(self) -> None: ...


@dataclass(frozen=True)
class RemoteOptions:
    settle_seconds: float = 30.0
    max_connections: int = 4
    attempts: int = 4          # tries per request, the first included
    timeout: float = 30.0      # connect and per-read timeout, seconds
    backoff: float = 0.25      # first pause between tries; doubles each time


class RemoteObjectStore(ObjectStore):
    """Files below ``root`` on a file server; keys are relative to it."""

    scheme: str = ""   # etag prefix and URL scheme, "ftp" or "sftp"

    def __init__(self, location: str, root: str, options: RemoteOptions) -> None:
        if any(ord(c) < 0x20 or c == "\x7f" for c in root):
            raise ValueError(f"the path of {location!r} contains control characters")
        self.location = location
        # "" is the login folder; "/" stays the server's root
        self.root = "" if root in ("", ".") else (root.rstrip("/") or "/")
        self.options = options
        self._idle: list[RemoteSession] = []
        self._idle_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(options.max_connections)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location!r})"

    # -- what a backend provides --------------------------------------------------------

    @abc.abstractmethod
    def _connect(self) -> RemoteSession:
        """A new logged-in session; LoginRefused / HostKeyRefused when refused."""

    @abc.abstractmethod
    def _is_transient(self, exc: BaseException) -> bool:
        """Whether another try on a fresh session may succeed."""

    # -- sessions and retries -----------------------------------------------------------

    def _path(self, rel: str) -> str:
        rel = rel.rstrip("/")
        if not rel:
            return self.root or "."
        if not self.root:
            return rel
        return f"/{rel}" if self.root == "/" else f"{self.root}/{rel}"

    def _call(self, what: str, op: Callable[[RemoteSession], T]) -> T:
        """``op`` on a pooled session, retried on transient failures with a fresh one."""
        attempts = max(1, self.options.attempts)
        for attempt in range(1, attempts + 1):
            with self._slots:
                with self._idle_lock:
                    session = self._idle.pop() if self._idle else None
                try:
                    if session is None:
                        session = self._connect()
                    result = op(session)
                except BaseException as exc:
                    transient = isinstance(exc, Exception) and not isinstance(exc, _PERMANENT) and (
                        isinstance(exc, _ChangedWhileRead) or self._is_transient(exc))
                    broken = transient and not isinstance(exc, _ChangedWhileRead)
                    self._release(session, broken=broken or not isinstance(exc, Exception))
                    if not transient:
                        raise
                    if attempt == attempts:
                        raise ConnectionError(f"{what} on {self.location} failed {attempts} times, "
                                              f"last: {type(exc).__name__}: {exc}") from exc
                    log.info("%s on %s: %s: %s; trying again", what, self.location, type(exc).__name__, exc)
                else:
                    self._release(session, broken=False)
                    return result
            time.sleep(min(5.0, self.options.backoff * 2 ** (attempt - 1)))
        raise AssertionError("unreachable")

    def _release(self, session: RemoteSession | None, *, broken: bool) -> None:
        if session is None:
            return
        if broken:
            try:
                session.close()
            except Exception:  # noqa: BLE001 - a dead connection may fail to close; it is dropped either way
                pass
            return
        with self._idle_lock:
            self._idle.append(session)

    def close(self) -> None:
        """Log out of every idle session (sessions in use are closed when returned)."""
        with self._idle_lock:
            idle, self._idle = self._idle, []
        for session in idle:
            self._release(session, broken=True)

    # -- listing ------------------------------------------------------------------------

    def _prefix_folders(self, prefix: str) -> list[str]:
        """The folder names ``prefix`` fully spells (its last, partial name is a string prefix)."""
        if not isinstance(prefix, str):
            raise UnsafeKey(f"prefix must be a str, not {type(prefix).__name__}")
        if not prefix:
            return []
        *folders, partial = prefix.split("/")
        for part in ("/".join(folders), partial):
            if part:
                check_key(part)
        return folders

    def _entries(self, folder_key: str, wanted: Callable[[str, bool], bool]) -> list[tuple[str, RemoteEntry, int]]:
        """The folder's wanted entries as (sort key, entry, when listed), in key order."""
        listed_at = time.time_ns()  # before the request: a file written meanwhile counts as young
        raw = self._call(f"listing {folder_key or '/'}", lambda s: s.listdir(self._path(folder_key)))
        out, unsafe = [], []
        for entry in raw:
            key = child_key(folder_key, entry.name)
            if key is None:
                unsafe.append(entry.name)
                continue
            sort_key = f"{key}/" if entry.is_dir else key
            if wanted(sort_key, entry.is_dir):
                out.append((sort_key, entry, listed_at))
        if unsafe:
            log.warning("%s: %d name(s) in %r cannot be keys and are not listed, e.g. %r",
                        self.location, len(unsafe), folder_key or "/", unsafe[0][:100])
        out.sort(key=lambda item: item[0])  # code-point order is UTF-8 byte order
        return out

    def _top_entries(self, folders: list[str], wanted: Callable[[str, bool], bool]):
        start = "".join(f"{name}/" for name in folders)
        try:
            return start, self._entries(start, wanted)
        except FileNotFoundError:
            if not start:  # a missing root is a configuration error, like a missing bucket
                raise FileNotFoundError(f"the folder {self.root or '(login folder)'} does not exist on "
                                        f"{self.location}") from None
            return start, None

    def list(self, prefix: str = "", start_after: str | None = None, limit: int | None = None) -> Iterator[ObjectInfo]:
        folders = self._prefix_folders(prefix)  # validate now, not at the first next()
        return self._walk(prefix, folders, start_after, limit)

    def _walk(self, prefix: str, folders: list[str], start_after: str | None,
              limit: int | None) -> Iterator[ObjectInfo]:
        if limit is not None and limit <= 0:
            return

        def wanted(key: str, is_dir: bool) -> bool:
            return listing_wants(key, is_dir, prefix, start_after)

        _, top = self._top_entries(folders, wanted)
        if top is None:
            return
        count = 0
        stack = [iter(top)]
        while stack:
            for key, entry, listed_at in stack[-1]:
                if entry.is_dir:
                    try:
                        stack.append(iter(self._entries(key, wanted)))
                    except FileNotFoundError:
                        continue  # removed since its parent was listed
                    break
                if not is_settled(entry.mtime_ns, listed_at, self.options.settle_seconds):
                    continue  # still being written, or just finished: a later listing has it
                yield object_info(self.scheme, key, entry.size, entry.mtime_ns)
                count += 1
                if limit is not None and count >= limit:
                    return
            else:
                stack.pop()

    def list_prefixes(self, prefix: str = "", delimiter: str = "/") -> list[str]:
        """Folders directly below ``prefix``; an emptied folder may be among them (the
        contract allows it, and finding out would cost a walk of each)."""
        if not delimiter:
            raise ValueError("delimiter must not be empty")
        if delimiter != "/":
            found = set()
            for info in self.list(prefix):
                cut = info.key.find(delimiter, len(prefix))
                if cut >= 0:
                    found.add(info.key[: cut + len(delimiter)])
            return sorted(found)
        folders = self._prefix_folders(prefix)
        _, top = self._top_entries(folders, lambda key, is_dir: is_dir and key.startswith(prefix))
        return [key for key, _, _ in top or ()]

    # -- reads --------------------------------------------------------------------------

    def head(self, key: str) -> ObjectInfo | None:
        check_key(key)
        entry = self._call(f"stat of {key!r}", lambda s: s.stat(self._path(key)))
        return None if entry is None else object_info(self.scheme, key, entry.size, entry.mtime_ns)

    def _read(self, key: str, if_match: str | None, new_sink: Callable[[], BinaryIO]) -> BinaryIO:
        check_key(key)
        path = self._path(key)

        def attempt(session: RemoteSession) -> BinaryIO:
            before = session.stat(path)
            if before is None:
                raise self._missing(key)
            if if_match is not None and remote_etag(self.scheme, before.size, before.mtime_ns) != if_match:
                raise PreconditionFailed(f"get of {key!r} in {self.location}: if_match {if_match!r} does not hold, "
                                         "the file has changed")
            sink = new_sink()
            try:
                session.download(path, sink)
                after = session.stat(path)
                if after is None:
                    raise self._missing(key)
                if (after.size, after.mtime_ns) != (before.size, before.mtime_ns) or sink.tell() != after.size:
                    if if_match is not None:
                        raise PreconditionFailed(f"get of {key!r} in {self.location}: if_match {if_match!r} does "
                                                 "not hold, the file changed while being read")
                    raise _ChangedWhileRead(f"{key!r} changed while being read")
            except BaseException:
                sink.close()
                raise
            sink.seek(0)
            return sink

        return self._call(f"download of {key!r}", attempt)

    def _missing(self, key: str) -> FileNotFoundError:
        return FileNotFoundError(f"no object {key!r} in {self.location}")

    def get(self, key: str, *, if_match: str | None = None) -> bytes:
        with self._read(key, if_match, io.BytesIO) as sink:
            return sink.read()

    def open(self, key: str) -> BinaryIO:
        """The whole file, downloaded first (into memory up to 16 MiB, else a temp file)."""
        return self._read(key, None, lambda: tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES))  # type: ignore[arg-type,return-value]

    # -- writes: never ------------------------------------------------------------------

    def _read_only(self, what: str, key: str) -> ReadOnlyStore:
        return ReadOnlyStore(f"{what} of {key!r}: {self.location} is a read-only source (FTP and SFTP locations "
                             "are only read); outputs go to FAILMAP_OUTPUT, an s3:// location or a folder")

    def put(self, key: str, data: bytes, content_type: str | None = None, *,
            if_match: str | None = None, if_none_match: bool = False) -> ObjectInfo:
        raise self._read_only("put", key)

    def delete(self, key: str) -> None:
        raise self._read_only("delete", key)
