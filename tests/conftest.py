"""Session-wide fixtures: the real S3 server (tests/support/s3_server.py) and a Numba
cache warmed by `failmap warm` (tests/support/numba_cache.py); the order in which the
workers get the test files (tests/support/file_order.py: the long ones first)."""
from tests.support.numba_cache import warm_numba_cache  # noqa: F401
from tests.support.s3_server import s3_server, s3_env  # noqa: F401
from tests.support.file_servers import file_server, ftp_server, sftp_server  # noqa: F401
from tests.support.file_order import pytest_configure, pytest_collection_modifyitems  # noqa: F401
