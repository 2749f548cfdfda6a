"""Read-only source over SFTP (``sftp://host[:port]/path``), with paramiko.

paramiko rather than asyncssh: the stores are called from worker threads
(``get_many``) and paramiko's client is synchronous, so each pooled session is a plain
SSH connection with one SFTP channel, no event loop to run beside Dagster's.

Host keys are checked: the server's key must be in the known_hosts file
(``FAILMAP_SFTP_KNOWN_HOSTS``, default ``~/.ssh/known_hosts``; entries for another
port are written ``[host]:port``, as ``ssh-keyscan -p PORT host`` prints them). An
unknown or changed key refuses the connection, naming the key's fingerprint to check.
``FAILMAP_SFTP_INSECURE_ACCEPT_ANY_HOST_KEY=1`` accepts any key, which lets anyone on
the network path impersonate the server: for a first test only.

Credentials: ``FAILMAP_SFTP_USER`` with ``FAILMAP_SFTP_PASSWORD`` and/or a private key
file ``FAILMAP_SFTP_KEY_FILE``. Neither an SSH agent nor ``~/.ssh`` keys are tried:
what logs in is what the environment says.
"""

from __future__ import annotations

import logging
import os
import socket
import stat
from dataclasses import dataclass, field
from typing import BinaryIO

from failmap_assets.storage.remote_listing import RemoteEntry
from failmap_assets.storage.remote_store import HostKeyRefused, LoginRefused, RemoteObjectStore, RemoteOptions

log = logging.getLogger(__name__)

_BLOCK = 256 * 1024


def _paramiko():
    try:
        import paramiko
    except ImportError as exc:  # a dependency of the package; missing only in a broken install
        raise ImportError("sftp:// sources need paramiko: pip install paramiko") from exc
    return paramiko


@dataclass(frozen=True)
class SftpCredentials:
    user: str = ""
    password: str = field(default="", repr=False)
    key_file: str = ""
    known_hosts: str = ""                 # "" = ~/.ssh/known_hosts
    accept_any_host_key: bool = False     # insecure opt-out


def _entry(name: str, attr) -> RemoteEntry | None:
    mode = attr.st_mode or 0
    if stat.S_ISDIR(mode):
        return RemoteEntry(name, True)
    if not stat.S_ISREG(mode) or attr.st_size is None or attr.st_mtime is None:
        return None  # links, devices, and files without a version to pin them by
    return RemoteEntry(name, False, int(attr.st_size), int(attr.st_mtime * 1_000_000_000))


def _fingerprint(key) -> str:
    import base64
    import hashlib

    digest = hashlib.sha256(key.asbytes()).digest()
    return f"{key.get_name()} SHA256:{base64.b64encode(digest).decode().rstrip('=')}"


class _SftpSession:
    def __init__(self, host: str, port: int, creds: SftpCredentials, timeout: float, location: str) -> None:
        paramiko = _paramiko()
        self.client = paramiko.SSHClient()
        known_hosts = os.path.expanduser(creds.known_hosts or "~/.ssh/known_hosts")
        if creds.accept_any_host_key:
            self.client.set_missing_host_key_policy(_AcceptAnyKey(location))
        else:
            if os.path.isfile(known_hosts):
                # load_system_host_keys: read, never written back
                self.client.load_system_host_keys(known_hosts)
            self.client.set_missing_host_key_policy(_RefuseUnknownKey(location, known_hosts))
        pkey = None
        if creds.key_file:
            try:
                pkey = paramiko.PKey.from_path(os.path.expanduser(creds.key_file))
            except (OSError, ValueError, paramiko.SSHException) as exc:
                # a configuration error: no retry would read it better
                raise LoginRefused(f"SFTP login to {location}: FAILMAP_SFTP_KEY_FILE {creds.key_file} is not a "
                                   f"private key that can be read without a passphrase ({type(exc).__name__})") from None
        try:
            self.client.connect(
                host, port, username=creds.user or None, password=creds.password or None,
                pkey=pkey, timeout=timeout, banner_timeout=timeout,
                auth_timeout=timeout, channel_timeout=timeout, allow_agent=False, look_for_keys=False)
            self.sftp = self.client.open_sftp()
            self.sftp.get_channel().settimeout(timeout)
        except paramiko.BadHostKeyException as exc:
            self.client.close()
            raise HostKeyRefused(f"{location} offered the host key {_fingerprint(exc.key)}, but {known_hosts} "
                                 f"holds another for it: the server was reinstalled, or this is not the "
                                 "server; refused") from None
        except paramiko.AuthenticationException as exc:
            self.client.close()
            raise LoginRefused(f"SFTP login to {location} as {creds.user or '(no user)'!r} refused "
                               f"({type(exc).__name__}): check FAILMAP_SFTP_USER and FAILMAP_SFTP_PASSWORD "
                               "or FAILMAP_SFTP_KEY_FILE") from None
        except BaseException:
            self.client.close()
            raise

    def listdir(self, path: str) -> list[RemoteEntry]:
        out = []
        for attr in self.sftp.listdir_attr(path):  # FileNotFoundError (ENOENT) when missing
            entry = _entry(attr.filename, attr)
            if entry is not None:
                out.append(entry)
        return out

    def stat(self, path: str) -> RemoteEntry | None:
        try:
            attr = self.sftp.lstat(path)
        except FileNotFoundError:
            return None
        entry = _entry(path, attr)
        return None if entry is None or entry.is_dir else entry

    def download(self, path: str, sink: BinaryIO) -> None:
        with self.sftp.open(path, "rb", bufsize=_BLOCK) as f:
            f.prefetch()  # pipelined reads: one round trip per file, not per block
            while chunk := f.read(_BLOCK):
                sink.write(chunk)

    def close(self) -> None:
        self.client.close()


class _RefuseUnknownKey:
    """paramiko's RejectPolicy, with a message that says what to do."""

    def __init__(self, location: str, known_hosts: str) -> None:
        self.location, self.known_hosts = location, known_hosts

    def missing_host_key(self, client, hostname, key) -> None:
        raise HostKeyRefused(
            f"{self.location}: the host key {_fingerprint(key)} of {hostname} is not in {self.known_hosts} "
            "(FAILMAP_SFTP_KNOWN_HOSTS); check that fingerprint with the server's administrator and add the "
            f"key (ssh-keyscan prints it); refused")


class _AcceptAnyKey:
    def __init__(self, location: str) -> None:
        self.location = location

    def missing_host_key(self, client, hostname, key) -> None:
        log.warning("%s: accepting the unchecked host key %s because FAILMAP_SFTP_INSECURE_ACCEPT_ANY_HOST_KEY "
                    "is set; anyone on the network path could pose as this server", self.location, _fingerprint(key))


class SftpObjectStore(RemoteObjectStore):
    scheme = "sftp"

    def __init__(self, host: str, port: int, root: str, credentials: SftpCredentials,
                 options: RemoteOptions = RemoteOptions()) -> None:
        super().__init__(f"sftp://{host}:{port}{root if root.startswith('/') else '/' + root}", root, options)
        self.host, self.port = host, port
        self._credentials = credentials

    def _connect(self) -> _SftpSession:
        return _SftpSession(self.host, self.port, self._credentials, self.options.timeout, self.location)

    def _is_transient(self, exc: BaseException) -> bool:
        paramiko = _paramiko()
        # a lost or timed-out connection, an SSH-level failure; SFTP status errors
        # (permission denied, ...) are answers
        if isinstance(exc, paramiko.SFTPError):
            return False
        return isinstance(exc, (paramiko.SSHException, OSError, EOFError, socket.timeout))
