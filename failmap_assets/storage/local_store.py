"""ObjectStore over a local folder: each key is a file below the root.

Safety: keys are untrusted. ``check_key`` refuses anything that is not a plain
relative path of ordinary names (see its docstring), and every file-system call
walks from an open descriptor of the root one name at a time with
``O_NOFOLLOW``, so neither ``..`` nor a symlink planted anywhere below the root
can make us read or write outside it. We refuse symlinks below the root rather
than resolve them and compare paths: a resolve-then-open check leaves a window
in which the link can be swapped, the descriptor walk does not. (The root path
itself is trusted configuration and may be a symlink; it is resolved once.)

Listing is in UTF-8 byte order of the keys, like S3. A directory ``d`` sorts as
``d/`` among its siblings, which makes a depth-first walk come out in key order
(``a-c`` < ``a/b`` < ``a0``), and whole directories are skipped when no key in
them can match the prefix or sort after ``start_after``.

ETags are NOT content hashes: they are the MD5 of ``inode:size:mtime_ns``, so
listing a million files needs one ``lstat`` each and no reads, and ``put``,
``head`` and ``list`` always agree. Every ``put`` gets a new inode (it renames a
fresh temp file), so a rewrite changes the ETag even when the file system's
clock has not ticked. Copying the folder elsewhere changes every ETag, which
makes consumers see the objects as new once. Content types are not stored.

Conditional writes hold an exclusive ``flock`` on a lock file beside the target
(``.~tmp-lock-<hash of the name>``, never listed) while they check the condition and
rename, so they are atomic among conditional writers of any process on this host
(and on file systems whose flock is shared between hosts). An unconditional ``put``
takes no lock: it may land between another writer's check and its rename, as an
unconditional PUT may on S3. Create-if-absent links the new file into place, which
fails if anything got there first, unconditional writers included.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import secrets
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from failmap_assets.storage.object_store import (
    ObjectInfo,
    ObjectStore,
    PreconditionFailed,
    UnsafeKey,
    check_aware,
    check_conditions,
    listing_wants,
)

#: Name prefix of in-progress writes; such files are never listed, and keys may not use it.
TEMP_PREFIX = ".~tmp-"
#: Lock files of conditional writes: temp files too, so never listed and cleaned up alike.
LOCK_PREFIX = f"{TEMP_PREFIX}lock-"
#: S3's own key limit; keeps keys portable between the two backends.
MAX_KEY_BYTES = 1024
#: NAME_MAX on Linux file systems.
MAX_NAME_BYTES = 255

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK so that opening a FIFO planted under the root cannot hang us; it has
# no effect on reading regular files, the only kind we go on to read.
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_LOCK_FLAGS = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_FORBIDDEN_CHARS = frozenset(chr(c) for c in range(0x20)) | {"\x7f", "\\"}


def _check_chars(key: str, what: str) -> None:
    if not isinstance(key, str):
        raise UnsafeKey(f"{what} must be a str, not {type(key).__name__}")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise UnsafeKey(f"{what} {key[:100]!r} is not valid Unicode (lone surrogate)") from None
    if size > MAX_KEY_BYTES:
        raise UnsafeKey(f"{what} {key[:100]!r}... is {size} bytes long, over {MAX_KEY_BYTES}")
    bad = _FORBIDDEN_CHARS.intersection(key)
    if bad:
        raise UnsafeKey(f"{what} {key[:100]!r} contains forbidden characters {sorted(bad)!r}")


def _check_name(name: str, key: str) -> None:
    if name in ("", ".", ".."):
        raise UnsafeKey(f"key {key[:100]!r} has an empty, '.' or '..' segment (or starts with '/')")
    if name.startswith(TEMP_PREFIX):
        raise UnsafeKey(f"key {key[:100]!r} uses the reserved temp-file prefix {TEMP_PREFIX!r}")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise UnsafeKey(f"key {key[:100]!r} has a segment longer than {MAX_NAME_BYTES} bytes")


def check_key(key: str) -> list[str]:
    """The ``/``-separated names of a safe key, or UnsafeKey.

    Safe means: a non-empty str of valid Unicode, at most 1024 UTF-8 bytes, no
    control characters and no backslash (a path separator elsewhere), no leading
    ``/``, no empty, ``.`` or ``..`` segment, no segment over 255 bytes and none
    starting with the temp-file prefix. Spaces and any other Unicode are fine.
    """
    _check_chars(key, "key")
    names = key.split("/")
    for name in names:
        _check_name(name, key)
    return names


def _is_listable_name(name: str) -> bool:
    """Whether a directory entry can be (part of) a key; others are left out of listings,
    since ``get`` would refuse them anyway."""
    if name.startswith(TEMP_PREFIX) or name in (".", ".."):
        return False
    try:
        name.encode("utf-8")  # undecodable file names arrive as lone surrogates
    except UnicodeEncodeError:
        return False
    return _FORBIDDEN_CHARS.isdisjoint(name)


def _info(key: str, st: os.stat_result) -> ObjectInfo:
    tag = f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}".encode()
    seconds, nanos = divmod(st.st_mtime_ns, 1_000_000_000)
    modified = datetime.fromtimestamp(seconds, UTC) + timedelta(microseconds=nanos // 1000)
    return ObjectInfo(key=key, size=st.st_size, etag=hashlib.md5(tag, usedforsecurity=False).hexdigest(),
                      last_modified=modified)


def _epoch_ns(when: datetime) -> int:
    return (when - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1000


def _open_subdir(dir_fd: int, name: str, *, create: bool = False) -> int:
    """Descriptor of directory ``name`` inside ``dir_fd``, never following a symlink.

    Raises UnsafeKey for a symlink, NotADirectoryError for a file, FileNotFoundError
    when missing (unless ``create``)."""
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        if not create:
            raise
    except NotADirectoryError:
        _raise_if_symlink(dir_fd, name)
        raise
    with suppress(FileExistsError):  # a concurrent put may have made it first
        os.mkdir(name, dir_fd=dir_fd)
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except NotADirectoryError:
        _raise_if_symlink(dir_fd, name)
        raise


def _raise_if_symlink(dir_fd: int, name: str) -> None:
    with suppress(FileNotFoundError):
        if stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
            raise UnsafeKey(f"{name!r} is a symlink; symlinks below the store root are refused")


class LocalObjectStore(ObjectStore):
    """Objects as files below ``root``; see the module docstring for the rules."""

    def __init__(self, root: str | Path) -> None:
        self.root = os.path.realpath(os.fspath(root))
        self.location = self.root

    def __repr__(self) -> str:
        return f"LocalObjectStore({self.root!r})"

    # -- descriptor walking -------------------------------------------------------------

    def _open_root(self, *, create: bool = False) -> int:
        try:
            return os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            if not create:
                raise FileNotFoundError(errno.ENOENT, "store folder does not exist", self.root) from None
        os.makedirs(self.root, exist_ok=True)
        return os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    @contextmanager
    def _dir(self, names: list[str], *, create: bool = False) -> Iterator[int]:
        """Descriptor of the folder ``root/names[0]/.../names[-1]``, closed on exit."""
        fd = self._open_root(create=create)
        try:
            for name in names:
                child = _open_subdir(fd, name, create=create)
                os.close(fd)
                fd = child
            yield fd
        finally:
            os.close(fd)

    # -- reads --------------------------------------------------------------------------

    def head(self, key: str) -> ObjectInfo | None:
        names = check_key(key)
        try:
            with self._dir(names[:-1]) as dir_fd:
                st = os.stat(names[-1], dir_fd=dir_fd, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if stat.S_ISLNK(st.st_mode):
            raise UnsafeKey(f"key {key!r} is a symlink; symlinks below the store root are refused")
        return _info(key, st) if stat.S_ISREG(st.st_mode) else None

    def _open_object(self, key: str) -> tuple[int, os.stat_result]:
        """A read descriptor of the object's file and its fstat."""
        names = check_key(key)
        try:
            with self._dir(names[:-1]) as dir_fd:
                fd = os.open(names[-1], _READ_FLAGS, dir_fd=dir_fd)
        except (FileNotFoundError, NotADirectoryError):
            raise FileNotFoundError(errno.ENOENT, "no such object", f"{self.root}/{key}") from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a symlink
                raise UnsafeKey(f"key {key!r} is a symlink; symlinks below the store root are refused") from None
            raise
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # a folder (a prefix, not an object), FIFO, ...
            os.close(fd)
            raise FileNotFoundError(errno.ENOENT, "no such object", f"{self.root}/{key}")
        return fd, st

    def open(self, key: str) -> BinaryIO:
        return os.fdopen(self._open_object(key)[0], "rb")

    def get(self, key: str, *, if_match: str | None = None) -> bytes:
        """With ``if_match``, the etag is computed from the open descriptor, so the bytes
        read are those of the version checked (a later put renames a new file in and
        leaves this one as it was)."""
        fd, before = self._open_object(key)
        with os.fdopen(fd, "rb") as f:
            if if_match is not None and _info(key, before).etag != if_match:
                raise PreconditionFailed(f"get of {key!r} in {self.root}: if_match {if_match!r} does not hold, "
                                         "the object has been replaced")
            data = f.read()
            if if_match is None:
                return data
            after = os.fstat(fd)
        # Our puts never write in place, but another program may: its writes show in size or mtime
        if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
            raise PreconditionFailed(f"get of {key!r} in {self.root}: if_match {if_match!r} does not hold, "
                                     "the file was rewritten in place while being read")
        return data

    # -- writes -------------------------------------------------------------------------

    def put(self, key: str, data: bytes, content_type: str | None = None, *,
            if_match: str | None = None, if_none_match: bool = False) -> ObjectInfo:
        """Write ``data`` to a temp file beside the target, fsync it, then rename it over
        the target. ``content_type`` is accepted for interface parity and not stored.
        Conditional writes do so under the target's lock (see the module docstring)."""
        check_conditions(if_match, if_none_match)
        names = check_key(key)
        with self._dir(names[:-1], create=True) as dir_fd:
            if if_match is None and not if_none_match:
                with _temp_file(dir_fd, data, time.time_ns()) as (temp, st):
                    os.replace(temp, names[-1], src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            else:
                with _name_lock(dir_fd, names[-1]):
                    st = self._put_locked(dir_fd, names[-1], key, data, if_match)
        return _info(key, st)

    def _put_locked(self, dir_fd: int, name: str, key: str, data: bytes, if_match: str | None) -> os.stat_result:
        """A conditional put, under the name's lock; the new file's stat."""
        current = _object_stat(dir_fd, name, key)
        if if_match is None:
            if current is not None:
                raise PreconditionFailed(f"put of {key!r} in {self.root}: if_none_match does not hold, "
                                         "the object exists")
            with _temp_file(dir_fd, data, time.time_ns()) as (temp, st):
                try:
                    # link, unlike rename, refuses to replace what an unconditional put just wrote
                    os.link(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
                except FileExistsError:
                    raise PreconditionFailed(f"put of {key!r} in {self.root}: if_none_match does not hold, "
                                             "the object exists") from None
                finally:
                    os.unlink(temp, dir_fd=dir_fd)
            return st
        if current is None or _info(key, current).etag != if_match:
            raise PreconditionFailed(f"put of {key!r} in {self.root}: if_match {if_match!r} does not hold, "
                                     + ("no such object" if current is None else "the object has been replaced"))
        # A later mtime than the version replaced: the etag can never come back, even
        # when this file gets the inode of one freed before
        with _temp_file(dir_fd, data, max(time.time_ns(), current.st_mtime_ns + 1)) as (temp, st):
            os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        return st

    def delete(self, key: str) -> None:
        """Remove the file. Emptied folders are kept: removing them could race a
        concurrent put that has just created one; listings ignore empty folders."""
        names = check_key(key)
        try:
            with self._dir(names[:-1]) as dir_fd:
                if stat.S_ISLNK(os.stat(names[-1], dir_fd=dir_fd, follow_symlinks=False).st_mode):
                    raise UnsafeKey(f"key {key!r} is a symlink; symlinks below the store root are refused")
                os.unlink(names[-1], dir_fd=dir_fd)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return  # missing, or a folder (a prefix, not an object): nothing to delete

    def remove_stale_temporaries(self, prefix: str, older_than: datetime) -> list[str]:
        """Remove ``.~tmp-*`` files (temp files and lock files of writers that died) last
        modified before ``older_than``, in every folder below ``prefix``; lock files only
        when nobody holds them. Returns their paths relative to the root."""
        check_aware(older_than, "older_than")
        dirs, _ = self._prefix_dirs(prefix)
        removed: list[str] = []
        with ExitStack() as cleanup:
            try:
                top = cleanup.enter_context(self._dir(dirs))
            except (NotADirectoryError, UnsafeKey):
                return removed
            except FileNotFoundError as exc:
                if exc.filename == self.root:
                    raise  # a missing store folder is a configuration error, like a missing bucket
                return removed
            _clean_tree(top, "".join(f"{name}/" for name in dirs), prefix, _epoch_ns(older_than), removed)
        return removed

    # -- listing ------------------------------------------------------------------------

    def _prefix_dirs(self, prefix: str) -> tuple[list[str], str]:
        """Split ``prefix`` into the folder names it fully spells and the partial last name."""
        if not prefix:
            return [], ""
        _check_chars(prefix, "prefix")
        *dirs, partial = prefix.split("/")
        for name in dirs:
            _check_name(name, prefix)
        return dirs, partial

    def list(self, prefix: str = "", start_after: str | None = None, limit: int | None = None) -> Iterator[ObjectInfo]:
        dirs, _ = self._prefix_dirs(prefix)  # validate now, not at the first next()
        return self._list(prefix, dirs, start_after, limit)

    def _list(self, prefix: str, dirs: list[str], start_after: str | None,
              limit: int | None) -> Iterator[ObjectInfo]:
        if limit is not None and limit <= 0:
            return

        def wanted(key: str, is_dir: bool) -> bool:
            return listing_wants(key, is_dir, prefix, start_after)

        root_fd = self._open_root()
        try:
            fd = root_fd
            for name in dirs:  # start in the deepest folder the prefix names, not at the root
                fd = _open_subdir(fd, name)
                os.close(root_fd)
                root_fd = fd
            entries = _sorted_entries(root_fd, "".join(f"{name}/" for name in dirs), wanted)
        except (FileNotFoundError, NotADirectoryError, UnsafeKey):
            os.close(root_fd)
            return  # nothing there, or a symlink (which is never an object)
        except BaseException:
            os.close(root_fd)
            raise
        count = 0
        # An explicit stack of (folder fd, iterator over its wanted entries) rather than
        # recursion: keys may be up to 512 levels deep.
        stack = [(root_fd, iter(entries))]
        try:
            while stack:
                dir_fd, pending = stack[-1]
                for key, name, is_dir in pending:
                    if is_dir:
                        try:
                            child = _open_subdir(dir_fd, name)
                        except (FileNotFoundError, NotADirectoryError, UnsafeKey):
                            continue  # removed, or swapped for a symlink, since the scan
                        stack.append((child, iter(())))  # so that ``finally`` closes it
                        stack[-1] = (child, iter(_sorted_entries(child, key, wanted)))
                        break
                    try:
                        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                    except FileNotFoundError:
                        continue  # deleted since the scan
                    if not stat.S_ISREG(st.st_mode):
                        continue  # symlinks, FIFOs, ... are not objects
                    yield _info(key, st)
                    count += 1
                    if limit is not None and count >= limit:
                        return
                else:
                    stack.pop()
                    os.close(dir_fd)
        finally:
            for dir_fd, _ in stack:
                os.close(dir_fd)

    def list_prefixes(self, prefix: str = "", delimiter: str = "/") -> list[str]:
        """Folders directly below ``prefix`` that hold at least one object, like S3's
        CommonPrefixes (S3 has no empty folders, so neither do we)."""
        if not delimiter:
            raise ValueError("delimiter must not be empty")
        if delimiter != "/":
            return self._list_prefixes_by_scan(prefix, delimiter)
        dirs, _ = self._prefix_dirs(prefix)
        try:
            with self._dir(dirs) as dir_fd:
                folders = _sorted_entries(dir_fd, "".join(f"{name}/" for name in dirs),
                                          lambda key, is_dir: is_dir and key.startswith(prefix))
                return [key for key, name, _ in folders if _holds_object(dir_fd, name)]
        except (NotADirectoryError, UnsafeKey):
            return []
        except FileNotFoundError as exc:
            if exc.filename == self.root:
                raise  # a missing store folder is a configuration error, like a missing bucket
            return []

    def _list_prefixes_by_scan(self, prefix: str, delimiter: str) -> list[str]:
        # Folders only help with "/"; any other delimiter needs every key below prefix.
        found = set()
        for info in self.list(prefix):
            cut = info.key.find(delimiter, len(prefix))
            if cut >= 0:
                found.add(info.key[: cut + len(delimiter)])
        return sorted(found)


@contextmanager
def _temp_file(dir_fd: int, data: bytes, mtime_ns: int) -> Iterator[tuple[str, os.stat_result]]:
    """A new, fsynced temp file in ``dir_fd`` holding ``data``: its name and stat. The
    body moves it into place; if the body fails, the temp file is removed."""
    temp = f"{TEMP_PREFIX}{secrets.token_hex(8)}"
    fd = os.open(temp, _TEMP_FLAGS, 0o666, dir_fd=dir_fd)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            # The kernel may stamp mtime from a coarse clock (a tick is milliseconds), and
            # a freed inode comes back at once: a stamp in nanoseconds keeps
            # inode:size:mtime, the ETag, from repeating for a rewrite of the same size.
            os.utime(f.fileno(), ns=(mtime_ns, mtime_ns))
            # Without fsync a crash after the rename can leave an empty file
            # where the old one was (delayed allocation), breaking atomicity.
            os.fsync(f.fileno())
            st = os.fstat(f.fileno())  # rename keeps inode, size and mtime: same ETag as head()
        yield temp, st
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(temp, dir_fd=dir_fd)
        raise


def _object_stat(dir_fd: int, name: str, key: str) -> os.stat_result | None:
    """The stat of the object file ``name``, None when there is none; what a put could
    not replace raises as a put would (a folder) or as every call does (a symlink)."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        raise UnsafeKey(f"key {key!r} is a symlink; symlinks below the store root are refused")
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, "a folder, not an object", key)
    return st if stat.S_ISREG(st.st_mode) else None


def _lock_name(name: str) -> str:
    return f"{LOCK_PREFIX}{hashlib.sha1(name.encode(), usedforsecurity=False).hexdigest()[:16]}"


def _is_linked_as(fd: int, dir_fd: int, name: str) -> bool:
    """Whether the open file ``fd`` is still the file called ``name``."""
    try:
        there = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    here = os.fstat(fd)
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


@contextmanager
def _name_lock(dir_fd: int, name: str) -> Iterator[None]:
    """Exclusive flock on the lock file of ``name``, among threads and processes. The
    holder removes the file on release (and so may remove_stale_temporaries), so a
    waiter can wake up holding a file no longer linked: it then starts again."""
    lock = _lock_name(name)
    while True:
        fd = os.open(lock, _LOCK_FLAGS, 0o666, dir_fd=dir_fd)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if _is_linked_as(fd, dir_fd, lock):
                break
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
    try:
        yield
    finally:
        with suppress(FileNotFoundError):
            os.unlink(lock, dir_fd=dir_fd)  # before the unlock, or a waiter could lock a file we remove
        os.close(fd)


def _clean_tree(top_fd: int, top_key: str, prefix: str, cutoff_ns: int, removed: list[str]) -> None:
    """_clean_folder on ``top_fd`` and every folder below it, depth first, holding one
    descriptor per level (never one per folder: a folder may have thousands)."""
    stack = [(top_fd, top_key, iter(_clean_folder(top_fd, top_key, prefix, cutoff_ns, removed)))]
    try:
        while stack:
            dir_fd, dir_key, pending = stack[-1]
            name = next(pending, None)
            if name is None:
                stack.pop()
                if stack:  # the top folder is the caller's to close
                    os.close(dir_fd)
                continue
            try:
                child = _open_subdir(dir_fd, name)
            except (FileNotFoundError, NotADirectoryError, UnsafeKey):
                continue  # removed, or swapped for a symlink, since the scan
            key = f"{dir_key}{name}/"
            stack.append((child, key, iter(())))  # so that ``finally`` closes it
            stack[-1] = (child, key, iter(_clean_folder(child, key, prefix, cutoff_ns, removed)))
    finally:
        for dir_fd, _, _ in stack[1:]:
            os.close(dir_fd)


def _clean_folder(dir_fd: int, dir_key: str, prefix: str, cutoff_ns: int, removed: list[str]) -> list[str]:
    """Remove the stale temporaries of one folder whose keys start with ``prefix``
    (appending their keys to ``removed``); the subfolders that may hold more."""
    subfolders = []
    with os.scandir(dir_fd) as it:
        entries = [(entry.name, entry.is_file(follow_symlinks=False), entry.is_dir(follow_symlinks=False))
                   for entry in it]
    for name, is_file, is_dir in entries:
        key = dir_key + name
        if name.startswith(TEMP_PREFIX):
            if is_file and key.startswith(prefix) and _remove_if_stale(dir_fd, name, cutoff_ns):
                removed.append(key)
        elif is_dir and _is_listable_name(name) and (f"{key}/".startswith(prefix) or prefix.startswith(f"{key}/")):
            subfolders.append(name)
    return sorted(subfolders)


def _remove_if_stale(dir_fd: int, name: str, cutoff_ns: int) -> bool:
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(st.st_mode) or st.st_mtime_ns >= cutoff_ns:
        return False
    if name.startswith(LOCK_PREFIX):
        return _remove_idle_lock(dir_fd, name)
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return False
    return True


def _remove_idle_lock(dir_fd: int, name: str) -> bool:
    """Remove a lock file nobody holds; leave a held one alone."""
    try:
        fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        return False
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # swapped for a symlink since the stat
            return False
        raise
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # a conditional write holds it
        if not _is_linked_as(fd, dir_fd, name):
            return False
        os.unlink(name, dir_fd=dir_fd)
        return True
    finally:
        os.close(fd)


def _sorted_entries(dir_fd: int, dir_key: str,
                    wanted: Callable[[str, bool], bool]) -> list[tuple[str, str, bool]]:
    """The wanted entries of a folder as (key, name, is folder), in key order. A folder
    ``d`` has the key ``dir_key + "d/"``, which is where all its keys sort among its
    siblings. Only names and d_type are read here, nothing is stat'ed, and unwanted
    entries are dropped before sorting (a folder may hold a great many)."""
    out = []
    with os.scandir(dir_fd) as it:
        for entry in it:
            if not _is_listable_name(entry.name):
                continue
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                continue
            key = f"{dir_key}{entry.name}/" if is_dir else dir_key + entry.name
            if wanted(key, is_dir):
                out.append((key, entry.name, is_dir))
    # str order is code-point order, which equals UTF-8 byte order (S3's order)
    out.sort(key=lambda item: item[0])
    return out


def _holds_object(dir_fd: int, name: str) -> bool:
    """Whether folder ``name`` has a regular file anywhere below it; stops at the first."""
    try:
        fd = _open_subdir(dir_fd, name)
    except (FileNotFoundError, NotADirectoryError, UnsafeKey):
        return False
    pending = [fd]
    try:
        while pending:
            fd = pending.pop()
            try:
                with os.scandir(fd) as it:
                    for entry in it:
                        if not _is_listable_name(entry.name):
                            continue
                        if entry.is_file(follow_symlinks=False):
                            return True
                        if entry.is_dir(follow_symlinks=False):
                            with suppress(FileNotFoundError, NotADirectoryError, UnsafeKey):
                                pending.append(_open_subdir(fd, entry.name))
            finally:
                os.close(fd)
        return False
    finally:
        for fd in pending:
            os.close(fd)
