"""Read-only source over FTP (``ftp://host[:port]/path``), with the stdlib's ftplib.

Listings use MLSD and stats MLST (RFC 3659): machine-readable type, size and a UTC
modification time, where LIST's output is meant for people (its time has minutes at
best, and no year for recent files). A server without MLST is refused with a clear
message rather than guessed at. Passive mode, binary transfers.

Names: the control connection is decoded as Latin-1, which maps every byte to one
character, and names are then decoded as UTF-8 by us; a name that is not UTF-8 is left
out of listings (it could not be a key) instead of failing the whole folder, as
ftplib's strict UTF-8 decoding would. Paths we send are encoded back the same way.
CR and LF, which would end an FTP command, cannot be in a key (``check_key``).

Credentials: ``FAILMAP_FTP_USER`` / ``FAILMAP_FTP_PASSWORD`` (anonymous when no user).
FTP sends them in clear text: use it on the tester network only, SFTP elsewhere.
"""

from __future__ import annotations

import calendar
import ftplib
import socket
import ssl
from dataclasses import dataclass, field
from typing import BinaryIO

from failmap_assets.storage.remote_listing import RemoteEntry
from failmap_assets.storage.remote_store import LoginRefused, RemoteObjectStore, RemoteOptions

_BLOCK = 256 * 1024


class NoMachineListings(RuntimeError):
    """The server lacks MLSD / MLST."""


def _wire(text: str) -> str:
    # UTF-8 bytes as Latin-1 characters: ftplib encodes them back to the same bytes
    return text.encode("utf-8").decode("latin-1")


def _unwire(text: str) -> str | None:
    try:
        return text.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return None


def _mtime_ns(modify: str) -> int | None:
    """``YYYYMMDDHHMMSS[.fff]`` (UTC, RFC 3659) in nanoseconds since the epoch."""
    whole, _, fraction = modify.partition(".")
    if len(whole) != 14 or not whole.isdigit() or (fraction and not fraction.isdigit()):
        return None
    try:
        seconds = calendar.timegm((int(whole[:4]), int(whole[4:6]), int(whole[6:8]),
                                   int(whole[8:10]), int(whole[10:12]), int(whole[12:14]), 0, 0, 0))
    except (ValueError, OverflowError):
        return None
    return seconds * 1_000_000_000 + int((fraction + "000000000")[:9])


def _entry(name: str, facts: dict[str, str]) -> RemoteEntry | None:
    """A file or folder from MLSD / MLST facts; None for links, ``.``/``..`` and the unreadable."""
    kind = facts.get("type", "").lower()
    if kind == "dir":
        return RemoteEntry(name, True)
    if kind != "file":  # cdir, pdir, OS.unix=slink:...: not ours to list
        return None
    mtime = _mtime_ns(facts.get("modify", ""))
    size = facts.get("size", "")
    if mtime is None or not size.isdigit():
        return None  # no version to pin it by
    return RemoteEntry(name, False, int(size), mtime)


def _facts(text: str) -> dict[str, str]:
    out = {}
    for fact in text.split(";"):
        key, sep, value = fact.partition("=")
        if sep:
            out[key.strip().lower()] = value
    return out


class _FtpSession:
    def __init__(self, host: str, port: int, user: str, password: str, timeout: float, location: str) -> None:
        self.ftp = ftplib.FTP(timeout=timeout, encoding="latin-1")
        try:
            self.ftp.connect(host, port)
            try:
                self.ftp.login(_wire(user or "anonymous"), _wire(password))
            except ftplib.error_perm as exc:
                # the reply names neither the user nor the password; ours names the variables
                raise LoginRefused(f"FTP login to {location} as {user or 'anonymous'!r} refused ({exc}): check "
                                   "FAILMAP_FTP_USER and FAILMAP_FTP_PASSWORD") from None
            features = self._features()
            if "MLST" not in features:
                raise NoMachineListings(f"{location}: the FTP server does not offer MLSD/MLST (RFC 3659), which "
                                        "listing needs (size and a second-resolution UTC time per file)")
            if "UTF8" in features:
                try:
                    self.ftp.sendcmd("OPTS UTF8 ON")
                except ftplib.Error:
                    pass  # the server sends UTF-8 anyway, or bytes we decode as far as we can
            self.ftp.sendcmd("OPTS MLST type;size;modify;")
            self.ftp.voidcmd("TYPE I")
        except BaseException:
            self.close()
            raise

    def _features(self) -> set[str]:
        try:
            reply = self.ftp.sendcmd("FEAT")
        except ftplib.error_perm:
            return set()
        return {line.strip().split(" ")[0].upper() for line in reply.splitlines()[1:-1] if line.strip()}

    def listdir(self, path: str) -> list[RemoteEntry]:
        lines: list[str] = []
        try:
            self.ftp.retrlines(f"MLSD {_wire(path)}", lines.append)
        except ftplib.error_perm as exc:
            # 550 "no such file", or 501 which RFC 3659 gives for MLSD of a non-folder
            if str(exc)[:3] in ("550", "501"):
                raise FileNotFoundError(f"no folder {path!r}") from None
            raise
        out = []
        for line in lines:
            facts, _, wired = line.partition(" ")
            name = _unwire(wired)
            if name is None or name in (".", ".."):
                continue
            entry = _entry(name, _facts(facts))
            if entry is not None:
                out.append(entry)
        return out

    def stat(self, path: str) -> RemoteEntry | None:
        try:
            reply = self.ftp.sendcmd(f"MLST {_wire(path)}")
        except ftplib.error_perm as exc:
            if str(exc).startswith("550"):
                return None
            raise
        lines = reply.splitlines()
        if len(lines) < 3:
            raise ftplib.error_proto(f"unexpected MLST reply {reply[:200]!r}")
        facts, _, _ = lines[1].strip().partition(" ")
        entry = _entry(path, _facts(facts))
        return None if entry is None or entry.is_dir else entry

    def download(self, path: str, sink: BinaryIO) -> None:
        try:
            self.ftp.retrbinary(f"RETR {_wire(path)}", sink.write, blocksize=_BLOCK)
        except ftplib.error_perm as exc:
            if str(exc).startswith("550") and self.stat(path) is None:
                raise FileNotFoundError(f"no file {path!r}") from None
            raise

    def close(self) -> None:
        try:
            self.ftp.quit()
        except (ftplib.Error, OSError, EOFError):
            self.ftp.close()


@dataclass(frozen=True)
class FtpCredentials:
    user: str = ""
    password: str = field(default="", repr=False)


class FtpObjectStore(RemoteObjectStore):
    scheme = "ftp"

    def __init__(self, host: str, port: int, root: str, credentials: FtpCredentials,
                 options: RemoteOptions = RemoteOptions()) -> None:
        super().__init__(f"ftp://{host}:{port}{root if root.startswith('/') else '/' + root}", root, options)
        self.host, self.port = host, port
        self._credentials = credentials

    def _connect(self) -> _FtpSession:
        c = self._credentials
        return _FtpSession(self.host, self.port, c.user, c.password, self.options.timeout, self.location)

    def _is_transient(self, exc: BaseException) -> bool:
        if isinstance(exc, ssl.SSLCertVerificationError):
            return False
        # 4xx replies ("421 too many connections", "425 can't open data connection"),
        # a garbled reply, a lost or timed-out connection
        return isinstance(exc, (ftplib.error_temp, ftplib.error_reply, ftplib.error_proto, OSError, EOFError,
                                socket.timeout))
