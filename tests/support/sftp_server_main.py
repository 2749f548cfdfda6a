"""An SFTP server (asyncssh) on 127.0.0.1 for the tests, run as its own process by
tests/support/file_servers.py: ROOT is the SFTP root (chroot), one user logs in with
the password in SFTP_TEST_PASSWORD or a key of AUTHORIZED_KEYS; no shell, no exec.
Prints ``PORT <n>`` once it listens."""

from __future__ import annotations

import asyncio
import os
import sys

import asyncssh


def main(root: str, user: str, host_key: str, authorized_keys: str) -> None:
    password = os.environ["SFTP_TEST_PASSWORD"]

    class Server(asyncssh.SSHServer):
        def begin_auth(self, username: str) -> bool:
            return True  # authentication required

        def password_auth_supported(self) -> bool:
            return True

        def validate_password(self, username: str, given: str) -> bool:
            return username == user and given == password

    async def serve() -> None:
        server = await asyncssh.listen(
            "127.0.0.1", 0, server_host_keys=[host_key], authorized_client_keys=authorized_keys,
            server_factory=Server, sftp_factory=lambda chan: asyncssh.SFTPServer(chan, chroot=root),
            allow_scp=False)
        print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
        await asyncio.Future()

    asyncio.run(serve())


if __name__ == "__main__":
    main(*sys.argv[1:5])
