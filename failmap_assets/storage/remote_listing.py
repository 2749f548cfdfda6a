"""The one listing rule of remote file-server sources (FTP, SFTP): names to keys,
size + mtime to an etag, and when a file is complete enough to be listed.

**Names are untrusted.** A remote folder entry becomes the key ``<folder key><name>``
only if that key passes the local store's ``check_key`` (no ``..``, no ``/`` or ``\\``
inside a name, no control characters, valid Unicode, at most 1024 bytes); any other
entry is left out of listings, as the local store leaves out names it cannot serve.
Keys are therefore relative POSIX paths below the source's root path.

**Identity.** A file server has no content hash: a file's version is its size and
modification time, ``"<scheme>-<size>-<mtime_ns>"``. Servers report mtimes in whole
seconds (SFTP v3, most MLSD), so a rewrite of the same size within the same second
keeps its etag; a tester writes a new file per test, so that case is not one we meet.

**Settled files only.** Testers write STDF files in place, over minutes, and a reader
cannot tell a half-written file from a whole one by its name. A file is *settled*, and
listed, once its mtime is at least ``settle`` seconds older than the moment its folder
was listed (by this machine's clock), with one more second for whole-second mtimes:
every write moves the mtime, so a file being written never is. Until then it is left
out of every listing (sensors, day runs, the reconcile sweep): skipped, never rejected,
and listed by the first listing after it settles, as a new object. ``head`` and ``get``
see files as they are. Should a file change after it was listed all the same (a writer
that paused longer than ``settle``), its etag changes: a pinned read refuses it
(``PreconditionFailed``) and the next run reads the new version, as for a re-upload.
``FAILMAP_REMOTE_SETTLE_SECONDS=0`` turns the rule off. The rule needs the server's clock not to lag this machine's by more than ``settle``
(a lagging clock makes a growing file look old); a clock ahead only delays files.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from failmap_assets.storage.local_store import check_key
from failmap_assets.storage.object_store import ObjectInfo, UnsafeKey

#: Added to the settle time: an mtime truncated to the second may be up to 1 s early.
MTIME_SLACK_NS = 1_000_000_000


@dataclass(frozen=True)
class RemoteEntry:
    """One folder entry as a server reported it."""

    name: str
    is_dir: bool
    size: int = 0
    mtime_ns: int = 0


def child_key(folder_key: str, name: object) -> str | None:
    """The key of entry ``name`` of the folder ``folder_key`` (``""`` or ``"a/b/"``), or
    None when the name cannot be part of a safe key."""
    if not isinstance(name, str) or not name or "/" in name:
        return None
    key = folder_key + name
    try:
        check_key(key)
    except UnsafeKey:
        return None
    return key


def remote_etag(scheme: str, size: int, mtime_ns: int) -> str:
    return f"{scheme}-{size}-{mtime_ns}"


def object_info(scheme: str, key: str, size: int, mtime_ns: int) -> ObjectInfo:
    seconds, nanos = divmod(mtime_ns, 1_000_000_000)
    modified = datetime.fromtimestamp(seconds, UTC) + timedelta(microseconds=nanos // 1000)
    return ObjectInfo(key=key, size=size, etag=remote_etag(scheme, size, mtime_ns), last_modified=modified)


def is_settled(mtime_ns: int, listed_at_ns: int, settle_seconds: float) -> bool:
    """Whether a file whose folder was listed at ``listed_at_ns`` (this machine's clock,
    taken before the request) has been left alone for ``settle_seconds``; 0 turns the
    rule off (a server whose writers rename complete files into place)."""
    if settle_seconds <= 0:
        return True
    return listed_at_ns - mtime_ns >= int(settle_seconds * 1_000_000_000) + MTIME_SLACK_NS
