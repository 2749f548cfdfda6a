"""ObjectStore over an S3-compatible bucket (AWS S3, SeaweedFS, MinIO, ...) via boto3.

Credentials never pass through this module: boto3's default chain finds them
(``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` in the environment, a profile,
an instance role). Our own error messages name only the bucket, prefix and key.

Keys. To S3 a key is an opaque name, so a key cannot leave the bucket. It could
still leave the store's prefix on servers that normalise paths, so keys with a
``.`` or ``..`` segment (split at ``/`` or ``\\``) or a NUL are refused with
UnsafeKey (SeaweedFS rejects those itself; AWS would store them verbatim).
Reads accept any other key the bucket may hold, since source buckets are filled
by other tools. ``put`` applies the local store's stricter ``check_key`` so every
object we write can also be written to a local folder.

Server differences worth knowing (measured against SeaweedFS 4.x):
- SeaweedFS lists keys containing ``/`` depth-first (``a/b`` before ``a!``), not
  in AWS's strict byte order, and ``StartAfter`` follows that order. The two
  agree when no name shares a prefix with a folder name followed by a character
  below ``/`` (space ``!"#$%&'()*+,-.``), e.g. ``20260111/`` vs ``20260111-x``.
  Also, ``StartAfter="a"`` skips every ``a/...`` key when ``a`` is both an
  object and a folder.
- SeaweedFS keeps a folder after its last object is deleted and goes on
  returning it in CommonPrefixes (listing it yields nothing).
- SeaweedFS collapses ``//`` in keys to ``/`` and drops a leading ``/``.
- ETags: MD5 hex for single PUTs, ``<md5-of-part-md5s>-<parts>`` for multipart,
  as on AWS. LastModified has 1-second resolution on both.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, BinaryIO, cast

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from failmap_assets.resources.local_store import check_key
from failmap_assets.resources.object_store import ObjectInfo, ObjectStore, UnsafeKey

log = logging.getLogger(__name__)

MiB = 1024 * 1024
#: Objects larger than this are uploaded in parts (a single PUT holds the whole body in one request).
MULTIPART_THRESHOLD = 64 * MiB
#: S3 requires parts of at least 5 MiB (except the last) and at most 10,000 parts.
PART_SIZE = 16 * MiB
#: ListObjectsV2's maximum page size.
PAGE_SIZE = 1000
_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}


def s3_client(endpoint_url: str | None, region: str | None, max_pool: int, *, max_attempts: int = 5) -> Any:
    """A thread-safe boto3 S3 client for an AWS or S3-compatible endpoint.

    ``max_attempts`` is the number of tries in total, the first included.
    Built with boto3 directly: dagster-aws's ``S3Resource`` cannot set the
    addressing style or the connection-pool size. Path-style addressing because
    S3-compatible servers rarely have per-bucket DNS names (AWS still accepts it);
    ``max_pool`` connections so a thread pool of that size never waits for a
    socket; "standard" retries (exponential backoff with jitter on throttling,
    5xx and connection errors) rather than "adaptive", whose client-side rate
    limiter is marked experimental and, once throttled, slows every thread that
    shares the client. Empty strings count as "not set", so Dagster config
    defaults of "" work; with no endpoint boto3 still honours AWS_ENDPOINT_URL_S3.
    """
    config = Config(
        s3={"addressing_style": "path"},
        # total_max_attempts counts the first try; botocore's "max_attempts" here would
        # count only retries, one more request than the name says
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        max_pool_connections=max_pool,
        connect_timeout=10,
        read_timeout=120,
    )
    # A session per client: boto3's default session is not thread-safe to create clients from.
    session = boto3.session.Session()
    return session.client("s3", endpoint_url=endpoint_url or None, region_name=region or None, config=config)


def _check_read_key(key: str) -> None:
    if not isinstance(key, str) or not key:
        raise UnsafeKey(f"key must be a non-empty str, got {key!r}")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise UnsafeKey(f"key {key[:100]!r} is not valid Unicode (lone surrogate)") from None
    if size > 1024:
        raise UnsafeKey(f"key {key[:100]!r}... is {size} bytes long, over S3's 1024")
    if "\x00" in key:
        raise UnsafeKey(f"key {key[:100]!r} contains NUL")
    segments = key.replace("\\", "/").split("/")
    if "." in segments or ".." in segments:
        raise UnsafeKey(f"key {key[:100]!r} has a '.' or '..' segment")


def _is_not_found(exc: ClientError) -> bool:
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return error.get("Code") in _NOT_FOUND or (status == 404 and error.get("Code") != "NoSuchBucket")


def _server_time(response: dict) -> datetime:
    # PutObject returns no LastModified; the response's Date header is the server's
    # clock at the write, which matches LastModified to the second (its resolution).
    date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    return parsedate_to_datetime(date).astimezone(UTC) if date else datetime.now(UTC)


class S3ObjectStore(ObjectStore):
    """Objects below ``s3://bucket/prefix``; keys are relative to the prefix."""

    def __init__(self, bucket: str, prefix: str, client: Any, *,
                 multipart_threshold: int = MULTIPART_THRESHOLD, part_size: int = PART_SIZE) -> None:
        if not bucket or "/" in bucket:
            raise ValueError(f"invalid bucket name {bucket!r}")
        prefix = prefix.strip("/")
        if prefix:
            _check_read_key(prefix)
            prefix += "/"
        self.bucket = bucket
        self.prefix = prefix
        self.client = client
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        self.location = f"s3://{bucket}/{prefix}"

    def __repr__(self) -> str:
        return f"S3ObjectStore({self.location!r})"

    def _full(self, key: str) -> str:
        _check_read_key(key)
        return self.prefix + key

    def _missing(self, key: str) -> FileNotFoundError:
        return FileNotFoundError(f"no object {key!r} in {self.location}")

    # -- reads --------------------------------------------------------------------------

    def list(self, prefix: str = "", start_after: str | None = None, limit: int | None = None) -> Iterator[ObjectInfo]:
        params: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self.prefix + prefix}
        if start_after is not None:
            params["StartAfter"] = self.prefix + start_after
        return self._list(params, limit)

    def _list(self, params: dict[str, Any], limit: int | None) -> Iterator[ObjectInfo]:
        remaining = limit
        cut = len(self.prefix)
        while remaining is None or remaining > 0:
            page_size = PAGE_SIZE if remaining is None else min(PAGE_SIZE, remaining)
            page = self.client.list_objects_v2(**params, MaxKeys=page_size)
            contents = page.get("Contents", [])
            if remaining is not None:
                contents = contents[:remaining]  # never more than ``limit``, whatever the server sends
            for obj in contents:
                yield ObjectInfo(key=obj["Key"][cut:], size=obj["Size"], etag=obj["ETag"].strip('"'),
                                 last_modified=obj["LastModified"].astimezone(UTC))
            if remaining is not None:
                remaining -= len(contents)
            if not page.get("IsTruncated"):
                return
            params["ContinuationToken"] = page["NextContinuationToken"]

    def list_prefixes(self, prefix: str = "", delimiter: str = "/") -> list[str]:
        if not delimiter:
            raise ValueError("delimiter must not be empty")
        found = set()
        cut = len(self.prefix)
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix + prefix, Delimiter=delimiter,
            PaginationConfig={"PageSize": PAGE_SIZE})
        for page in pages:
            found.update(p["Prefix"][cut:] for p in page.get("CommonPrefixes", []))
        return sorted(found)

    def head(self, key: str) -> ObjectInfo | None:
        try:
            resp = self.client.head_object(Bucket=self.bucket, Key=self._full(key))
        except ClientError as exc:
            if _is_not_found(exc):
                return None
            raise
        return ObjectInfo(key=key, size=resp["ContentLength"], etag=resp["ETag"].strip('"'),
                          last_modified=resp["LastModified"].astimezone(UTC))

    def open(self, key: str) -> BinaryIO:
        """botocore's StreamingBody (an io.IOBase): readable, not seekable; close it."""
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=self._full(key))
        except ClientError as exc:
            if _is_not_found(exc):
                raise self._missing(key) from exc
            raise
        return cast(BinaryIO, resp["Body"])

    def get(self, key: str) -> bytes:
        body = self.open(key)
        try:
            return body.read()
        finally:
            body.close()

    # -- writes -------------------------------------------------------------------------

    def put(self, key: str, data: bytes, content_type: str | None = None) -> ObjectInfo:
        """One PUT up to ``multipart_threshold`` bytes, else a multipart upload. Both
        are atomic on S3: the object appears only when the PUT or the Complete succeeds."""
        check_key(key)
        full = self._full(key)
        extra = {"ContentType": content_type} if content_type else {}
        if len(data) > self.multipart_threshold:
            resp = self._put_multipart(full, data, extra)
        else:
            resp = self.client.put_object(Bucket=self.bucket, Key=full, Body=data, **extra)
        return ObjectInfo(key=key, size=len(data), etag=resp["ETag"].strip('"'), last_modified=_server_time(resp))

    def _put_multipart(self, full: str, data: bytes, extra: dict[str, str]) -> dict:
        upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=full, **extra)["UploadId"]
        try:
            view = memoryview(data)
            parts = []
            for number, offset in enumerate(range(0, len(data), self.part_size), start=1):
                resp = self.client.upload_part(Bucket=self.bucket, Key=full, UploadId=upload_id, PartNumber=number,
                                               Body=bytes(view[offset: offset + self.part_size]))
                # Pass back the part checksums boto3 computed: AWS requires them on
                # Complete when the parts were uploaded with one.
                checksums = {k: v for k, v in resp.items() if k.startswith("Checksum") and k != "ChecksumType"}
                parts.append({"PartNumber": number, "ETag": resp["ETag"], **checksums})
            return self.client.complete_multipart_upload(Bucket=self.bucket, Key=full, UploadId=upload_id,
                                                         MultipartUpload={"Parts": parts})
        except BaseException:
            # Abort so the parts neither linger (and cost storage) nor can be completed later.
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=full, UploadId=upload_id)
            except Exception as abort_exc:  # the original error matters more; report this one
                log.warning("could not abort multipart upload of %r in s3://%s: %s",
                            full, self.bucket, type(abort_exc).__name__)
            raise

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._full(key))
        except ClientError as exc:
            if not _is_not_found(exc):
                raise
