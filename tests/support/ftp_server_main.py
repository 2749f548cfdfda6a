"""An FTP server (pyftpdlib) on 127.0.0.1 for the tests, run as its own process by
tests/support/file_servers.py: serves ROOT read-only to one user, whose password comes
in the environment (FTP_TEST_PASSWORD), and prints ``PORT <n>`` once it listens."""

from __future__ import annotations

import logging
import os
import sys

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer


def main(root: str, user: str) -> None:
    logging.basicConfig(level=logging.WARNING)
    authorizer = DummyAuthorizer()
    authorizer.add_user(user, os.environ["FTP_TEST_PASSWORD"], root, perm="elr")  # cd, list, retrieve
    handler = type("Handler", (FTPHandler,), {"authorizer": authorizer, "banner": "failmap test FTP",
                                           "auth_failed_timeout": 0.1})  # pyftpdlib's default pause is 3 s)
    server = FTPServer(("127.0.0.1", 0), handler)  # port 0: the kernel picks a free one, no race
    print(f"PORT {server.socket.getsockname()[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
