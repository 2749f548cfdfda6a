"""S3 backend failure paths: bad credentials and missing buckets against the real
SeaweedFS server, multipart upload (and its abort), retries and refused conditional
writes against a small fault-injecting HTTP server on 127.0.0.1 (SeaweedFS cannot be
made to throttle), and a server that ignores conditional requests (rclone)."""

from __future__ import annotations

import hashlib
import os
import threading
import traceback
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from failmap_assets.storage.object_store import ConditionalWritesUnsupported, ObjectStore, PreconditionFailed
from failmap_assets.storage.s3_store import MiB, S3ObjectStore, s3_client
from failmap_assets.storage.locations import open_store
from tests.support.rclone_server import BUCKET as RCLONE_BUCKET
from tests.support.rclone_server import rclone_s3  # noqa: F401
from tests.support.s3_server import S3Server


def _store(url: str, **kwargs: Any) -> S3ObjectStore:
    store = open_store(url, endpoint_url=os.environ["FAILMAP_S3_ENDPOINT_URL"], region=os.environ["AWS_REGION"])
    for name, value in kwargs.items():
        setattr(store, name, value)
    return store


# -- credentials and configuration errors, on the real server --------------------------------


@pytest.mark.s3
def test_wrong_secret_fails_without_revealing_any_secret(s3_env: str, s3_server, monkeypatch) -> None:
    _store(f"{s3_env}/p").put("k", b"v")
    wrong = "wrong-" + os.urandom(12).hex()
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", wrong)
    store = _store(f"{s3_env}/p")
    calls = {"list": lambda: list(store.list()), "get": lambda: store.get("k"), "head": lambda: store.head("k"),
             "put": lambda: store.put("k2", b"v"), "list_prefixes": lambda: store.list_prefixes()}
    for name, call in calls.items():
        with pytest.raises(ClientError) as info:
            call()  # head too: a 403 is not "missing"
        text = "".join(traceback.format_exception(info.value)) + repr(info.value)
        assert wrong not in text and s3_server.secret_key not in text, name
        if name == "head":  # a HEAD response has no body to name the error: just 403
            assert "403" in str(info.value)
        else:
            assert "SignatureDoesNotMatch" in text or "AccessDenied" in text, text


@pytest.mark.s3
def test_missing_bucket_is_an_error_not_an_empty_store(s3_env: str) -> None:
    store = _store("s3://no-such-bucket-failmap/x")
    with pytest.raises(ClientError, match="NoSuchBucket"):
        list(store.list())
    with pytest.raises(ClientError, match="NoSuchBucket"):
        store.get("k")


# -- multipart upload, on the real server -----------------------------------------------------


@pytest.mark.s3
def test_large_objects_go_up_in_parts(s3_env: str) -> None:
    store = _store(f"{s3_env}/mp", multipart_threshold=6 * MiB, part_size=5 * MiB)
    data = os.urandom(11 * MiB + 3)
    info = store.put("big.parquet", data, content_type="application/vnd.apache.parquet")
    assert info.size == len(data)
    assert info.etag.endswith("-3")  # three parts: 5 + 5 + 1 MiB
    head = store.head("big.parquet")
    assert (head.size, head.etag) == (len(data), info.etag)
    assert store.get("big.parquet") == data
    small = store.put("small", b"s" * (6 * MiB))  # at the threshold: one PUT
    assert "-" not in small.etag


class _FailSecondPart:
    """Wraps a real client; the second UploadPart dies as if the connection dropped."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.parts = 0
        self.aborted = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def upload_part(self, **kwargs: Any) -> Any:
        self.parts += 1
        if self.parts == 2:
            raise ConnectionResetError("injected: connection reset during part 2")
        return self._client.upload_part(**kwargs)

    def abort_multipart_upload(self, **kwargs: Any) -> Any:
        self.aborted += 1
        return self._client.abort_multipart_upload(**kwargs)


@pytest.mark.s3
def test_failed_multipart_upload_is_aborted_and_the_old_object_stays(s3_env: str, s3_server) -> None:
    plain = _store(f"{s3_env}/mp")
    plain.put("big", b"old version")
    client = _FailSecondPart(plain.client)
    store = S3ObjectStore(plain.bucket, "mp", client, multipart_threshold=5 * MiB, part_size=5 * MiB)
    with pytest.raises(ConnectionResetError):
        store.put("big", os.urandom(11 * MiB))
    assert client.aborted == 1
    assert plain.get("big") == b"old version"
    uploads = s3_server.client().list_multipart_uploads(Bucket=plain.bucket).get("Uploads", [])
    assert [u for u in uploads if u["Key"] == "mp/big"] == []


# -- retries, against a fault-injecting server ----------------------------------------------------


class _FaultyS3(BaseHTTPRequestHandler):
    """Fails the first ``server.failures`` requests with ``server.error``, then answers
    every request with ``server.then`` if set, else serves b"hello" (and takes every PUT)."""

    def _answer(self, with_body: bool, served: bytes = b"hello") -> None:
        self.server.requests += 1  # type: ignore[attr-defined]
        failing = self.server.requests <= self.server.failures  # type: ignore[attr-defined]
        if failing or self.server.then:  # type: ignore[attr-defined]
            status, code = self.server.error if failing else self.server.then  # type: ignore[attr-defined]
            body = f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code><Message>injected</Message></Error>"
            self._send(status, body.encode(), with_body, {"Content-Type": "application/xml"})
        else:
            self._send(200, served, with_body, {"ETag": '"5d41402abc4b2a76b9719d911017c592"',
                                                  "Last-Modified": "Sun, 11 Jan 2026 10:00:00 GMT"})

    def _send(self, status: int, body: bytes, with_body: bool, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802
        self._answer(with_body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(with_body=False)

    def do_PUT(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._answer(with_body=True, served=b"")  # botocore takes a body on a PUT's 200 for an error

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def faulty(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[ThreadingHTTPServer]:
    for name in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "fault-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fault-test-secret")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FaultyS3)
    server.requests, server.failures, server.error = 0, 0, (500, "InternalError")  # type: ignore[attr-defined]
    server.then = None  # type: ignore[attr-defined]
    # short poll so shutdown() returns quickly
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def _faulty_store(server: ThreadingHTTPServer, max_attempts: int) -> S3ObjectStore:
    host, port = server.server_address[:2]
    client = s3_client(f"http://{host}:{port}", "us-east-1", max_pool=4, max_attempts=max_attempts)
    return S3ObjectStore("bucket", "p", client)


def test_server_errors_are_retried(faulty: ThreadingHTTPServer) -> None:
    faulty.failures = 2  # type: ignore[attr-defined]
    assert _faulty_store(faulty, max_attempts=5).get("k") == b"hello"
    assert faulty.requests == 3  # type: ignore[attr-defined]


def test_throttling_is_retried(faulty: ThreadingHTTPServer) -> None:
    faulty.failures, faulty.error = 1, (503, "SlowDown")  # type: ignore[attr-defined]
    info = _faulty_store(faulty, max_attempts=5).head("k")
    assert info is not None and info.etag == "5d41402abc4b2a76b9719d911017c592"
    assert faulty.requests == 2  # type: ignore[attr-defined]


def test_retries_stop_after_max_attempts(faulty: ThreadingHTTPServer) -> None:
    faulty.failures = 100  # type: ignore[attr-defined]
    with pytest.raises(ClientError, match="InternalError") as info:
        _faulty_store(faulty, max_attempts=3).get("k")
    assert faulty.requests == 3  # type: ignore[attr-defined]
    assert "fault-test-secret" not in "".join(traceback.format_exception(info.value))


# -- refused conditional writes, against the fault-injecting server --------------------------------


def test_a_conflicting_conditional_write_is_a_precondition_failure(faulty: ThreadingHTTPServer) -> None:
    # AWS answers 409 ConditionalRequestConflict when another conditional write of the
    # key is under way; not retried (the other may win), refused like a 412
    faulty.failures, faulty.error = 1, (409, "ConditionalRequestConflict")  # type: ignore[attr-defined]
    with pytest.raises(PreconditionFailed, match="'day/_lease'.*if_none_match.*ConditionalRequestConflict"):
        _faulty_store(faulty, max_attempts=5).put("day/_lease", b"me", if_none_match=True)
    assert faulty.requests == 1  # type: ignore[attr-defined]


def test_a_refusal_after_a_retry_says_the_first_attempt_may_have_landed(faulty: ThreadingHTTPServer) -> None:
    faulty.failures, faulty.then = 1, (412, "PreconditionFailed")  # type: ignore[attr-defined]
    with pytest.raises(PreconditionFailed, match="retried 1 time") as info:
        _faulty_store(faulty, max_attempts=5).put("m.json", b"{}", if_match="5d41402abc4b2a76b9719d911017c592")
    assert faulty.requests == 2  # type: ignore[attr-defined]
    assert "fault-test-secret" not in "".join(traceback.format_exception(info.value))


def test_a_conditional_put_that_succeeds_reports_the_servers_etag(faulty: ThreadingHTTPServer) -> None:
    info = _faulty_store(faulty, max_attempts=5).put("m.json", b"{}", if_none_match=True)
    assert info.etag == "5d41402abc4b2a76b9719d911017c592"


# -- a server that ignores conditional requests: the probe must say so -----------------------------


@pytest.fixture
def ignoring_store(rclone_s3: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> S3ObjectStore:
    for name in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", rclone_s3.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", rclone_s3.secret_key)
    return S3ObjectStore(RCLONE_BUCKET, "out", s3_client(rclone_s3.endpoint_url, rclone_s3.region, max_pool=4))


def test_rclone_really_ignores_conditional_puts(ignoring_store: S3ObjectStore) -> None:
    # why the probe exists: the server answers 200 and overwrites
    first = ignoring_store.put("k", b"1", if_none_match=True)
    ignoring_store.put("k", b"2", if_none_match=True)
    ignoring_store.put("k", b"3", if_match=first.etag)
    assert ignoring_store.get("k") == b"3"


def test_probe_finds_a_store_that_ignores_conditional_writes(
        ignoring_store: S3ObjectStore, rclone_s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    probes = []
    real = ObjectStore._probe_conditional_requests
    monkeypatch.setattr(S3ObjectStore, "_probe_conditional_requests", lambda self: probes.append(1) or real(self))
    for _ in range(2):
        with pytest.raises(ConditionalWritesUnsupported) as info:
            ignoring_store.check_conditional_writes()
        text = str(info.value)
        assert f"s3://{RCLONE_BUCKET}/out/" in text
        assert "If-None-Match" in text and "If-Match" in text and "PutObject" in text
        assert "second If-None-Match" in text  # what the server got wrong
        assert rclone_s3.secret_key not in "".join(traceback.format_exception(info.value))
    assert len(probes) == 1  # the verdict is kept
    assert list(ignoring_store.list()) == []  # the probe removed its object


# -- keys other tools wrote: every name S3 allows reads back byte for byte --------------------------


@pytest.mark.s3
def test_objects_under_any_key_another_tool_wrote_read_back(s3_env: str, s3_server) -> None:
    """GETs go through obstore, which refuses some names S3 allows (control characters);
    those fall back to boto3. Percent signs, spaces and '#' must not be re-encoded."""
    bucket = s3_env.removeprefix("s3://")
    keys = ["20260111/a b.Z", "20260111/a%20b.Z", "20260111/a#b?c=d&e", "20260111/Ü+~.gz",
            "20260111/tab\there.Z", "20260111/bell\x07.txt"]
    for key in keys:
        s3_server.client().put_object(Bucket=bucket, Key=f"src/{key}", Body=key.encode())
    store = _store(f"{s3_env}/src")
    assert sorted(o.key for o in store.list()) == sorted(keys)
    for key in keys:
        assert store.get(key) == key.encode(), key
    assert dict(store.get_many(keys, max_workers=4)) == {k: k.encode() for k in keys}
    with pytest.raises(FileNotFoundError, match="20260111/missing"):
        store.get("20260111/missing")


@pytest.mark.s3
def test_put_reports_the_servers_etag_and_content_type(s3_env: str, s3_server) -> None:
    store = _store(f"{s3_env}/ct")
    info = store.put("m.png", b"\x89PNG fake", content_type="image/png")
    head = s3_server.client().head_object(Bucket=s3_env.removeprefix("s3://"), Key="ct/m.png")
    assert head["ContentType"] == "image/png"
    assert info.etag == head["ETag"].strip('"') == hashlib.md5(b"\x89PNG fake").hexdigest()
    assert info.size == head["ContentLength"] == 9
