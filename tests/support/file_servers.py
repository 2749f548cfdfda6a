"""Real FTP (pyftpdlib) and SFTP (asyncssh) servers on 127.0.0.1 for the tests of
ftp:// and sftp:// sources: one process each per session, started on a port the
kernel picks (the server prints it), stopped by the PID we started (SIGTERM, then
SIGKILL) and killed with pytest should pytest die. Each serves a folder the tests
write into directly, as a tester writes into its own disk.

The SFTP server has a fresh ed25519 host key; ``known_hosts`` holds it (as
``[127.0.0.1]:port``), ``other_known_hosts`` holds a different key for the same
address. The user logs in with a password or with ``key_file``.
"""

from __future__ import annotations

import os
import secrets
import select
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.processes import stop_process
from tests.support.processes import dying_with_parent
from tests.support.testdata import REPO

USER = "tester"
READY_TIMEOUT_S = 20.0


@dataclass
class FileServer:
    scheme: str
    port: int
    root: Path
    user: str
    password: str = field(repr=False)
    known_hosts: Path | None = None
    other_known_hosts: Path | None = None
    key_file: Path | None = None

    def url(self, path: str) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/{path}"


def _start(module: str, args: list[str], env: dict[str, str], log: Path) -> tuple[subprocess.Popen, int]:
    with open(log, "wb") as err:
        proc = subprocess.Popen(dying_with_parent([sys.executable, "-m", module, *args]), cwd=REPO,
                                env={**os.environ, **env}, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=err)
    deadline = time.monotonic() + READY_TIMEOUT_S
    line = b""
    while time.monotonic() < deadline and proc.poll() is None:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            line = proc.stdout.readline()  # type: ignore[union-attr]
            break
    if not line.startswith(b"PORT "):
        stop_process(proc)
        pytest.fail(f"{module} did not start (exit {proc.returncode}):\n{log.read_text(errors='replace')[-3000:]}",
                    pytrace=False)
    return proc, int(line.split()[1])


@pytest.fixture(scope="session")
def ftp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FileServer]:
    work = tmp_path_factory.mktemp("ftp")
    root = work / "root"
    root.mkdir()
    password = secrets.token_urlsafe(12)
    proc, port = _start("tests.support.ftp_server_main", [str(root), USER], {"FTP_TEST_PASSWORD": password},
                        work / "server.log")
    try:
        yield FileServer("ftp", port, root, USER, password)
    finally:
        stop_process(proc)


def _new_key(path: Path) -> str:
    """A new ed25519 private key in OpenSSH format at ``path``; its public key line."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                       serialization.NoEncryption()))
    path.chmod(0o600)
    return key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


@pytest.fixture(scope="session")
def sftp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FileServer]:
    work = tmp_path_factory.mktemp("sftp")
    root = work / "root"
    root.mkdir()
    host_public = _new_key(work / "host_key")
    (work / "authorized_keys").write_text(_new_key(work / "client_key") + "\n")
    password = secrets.token_urlsafe(12)
    proc, port = _start("tests.support.sftp_server_main",
                        [str(root), USER, str(work / "host_key"), str(work / "authorized_keys")],
                        {"SFTP_TEST_PASSWORD": password}, work / "server.log")
    try:
        (work / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_public}\n")
        other = _new_key(work / "other_key")
        (work / "other_known_hosts").write_text(f"[127.0.0.1]:{port} {other}\n")
        yield FileServer("sftp", port, root, USER, password, known_hosts=work / "known_hosts",
                         other_known_hosts=work / "other_known_hosts", key_file=work / "client_key")
    finally:
        stop_process(proc)


@pytest.fixture(params=["ftp", "sftp"])
def file_server(request: pytest.FixtureRequest) -> FileServer:
    return request.getfixturevalue(f"{request.param}_server")


def server_env(server: FileServer, monkeypatch: pytest.MonkeyPatch, *, settle: float = 30.0) -> None:
    """The server's credentials (and host keys) in the environment, as production gets them."""
    for name in [k for k in os.environ if k.startswith(("FAILMAP_FTP_", "FAILMAP_SFTP_", "FAILMAP_REMOTE_"))]:
        monkeypatch.delenv(name)
    prefix = "FAILMAP_FTP_" if server.scheme == "ftp" else "FAILMAP_SFTP_"
    monkeypatch.setenv(prefix + "USER", server.user)
    monkeypatch.setenv(prefix + "PASSWORD", server.password)
    if server.known_hosts is not None:
        monkeypatch.setenv("FAILMAP_SFTP_KNOWN_HOSTS", str(server.known_hosts))
    monkeypatch.setenv("FAILMAP_REMOTE_SETTLE_SECONDS", str(settle))


def fresh_folder(server: FileServer) -> tuple[Path, str]:
    """A new, empty folder on the server: its local path and its location URL."""
    name = f"t-{uuid.uuid4().hex[:12]}"
    (server.root / name).mkdir()
    return server.root / name, server.url(name)
