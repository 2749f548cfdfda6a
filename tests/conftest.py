"""Session-wide fixtures: the real S3 server (tests/support/s3_server.py) and a Numba
cache warmed by `failmap warm` (tests/support/numba_cache.py)."""
from tests.support.numba_cache import warm_numba_cache  # noqa: F401
from tests.support.s3_server import s3_server, s3_env  # noqa: F401
from tests.support.file_servers import file_server, ftp_server, sftp_server  # noqa: F401
