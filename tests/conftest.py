"""Session-wide fixtures. The real S3 server fixture lives in tests/s3_server.py."""
