"""Session-wide fixtures. The real S3 server fixture lives in tests/s3_server.py."""
from tests.support.s3_server import s3_server, s3_env  # noqa: F401
