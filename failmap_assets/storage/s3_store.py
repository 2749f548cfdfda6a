"""ObjectStore over an S3-compatible bucket (AWS S3, SeaweedFS, MinIO, ...).

Two clients, one identity. Whole-object GETs and single PUTs, the bulk of a day's
requests, go through obstore (Rust ``object_store``): it signs and moves bytes with
the GIL released, at ~0.45 ms of CPU per request where boto3 spends ~2.5 ms holding
the GIL (measured on SeaweedFS, 16 threads; see BENCHMARKS.md). Listings, HEAD,
DELETE, streaming reads and multipart uploads stay on boto3. Failures of either come
out as botocore ``ClientError`` (missing objects as ``FileNotFoundError``), so callers
see one kind of error whichever client made the request.

Credentials never pass through this module: boto3's default chain finds them
(``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` in the environment, a profile,
an instance role), and obstore asks that same chain through a callback. Our own
error messages name only the bucket, prefix and key.

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

Conditional requests. Conditional PUTs go through boto3 (``IfNoneMatch="*"``,
``IfMatch``): they are few (manifests, leases) and need the server's answer code.
412 ``PreconditionFailed`` and 409 ``ConditionalRequestConflict`` (a concurrent
conditional write, on AWS) both become PreconditionFailed, as does an ``If-Match``
PUT of a missing key (SeaweedFS answers 412, AWS 404). A conditional PUT that boto3
retried after a lost answer may be refused by its own first attempt: the message
then says so. Conditional GETs stay on obstore, which sends ``If-Match``.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, BinaryIO, cast

import boto3
import obstore
from botocore.config import Config
from botocore.exceptions import ClientError, NoCredentialsError
from obstore.exceptions import BaseError as ObstoreError
from obstore.exceptions import PreconditionError as ObstorePreconditionError
from obstore.store import S3Store

from failmap_assets.storage.local_store import check_key
from failmap_assets.storage.object_store import (
    ObjectInfo,
    ObjectStore,
    PreconditionFailed,
    UnsafeKey,
    check_aware,
    check_conditions,
)

log = logging.getLogger(__name__)

MiB = 1024 * 1024
#: Objects larger than this are uploaded in parts (a single PUT holds the whole body in one request).
MULTIPART_THRESHOLD = 64 * MiB
#: S3 requires parts of at least 5 MiB (except the last) and at most 10,000 parts.
PART_SIZE = 16 * MiB
#: ListObjectsV2's maximum page size.
PAGE_SIZE = 1000
_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}
# 409 only with this code: other 409s (OperationAborted, ...) are not about our condition
_PRECONDITION = {"412", "PreconditionFailed", "ConditionalRequestConflict"}


def s3_client(endpoint_url: str | None, region: str | None, max_pool: int, *, max_attempts: int = 5,
              connect_timeout: float = 10, read_timeout: float = 120) -> Any:
    """A thread-safe boto3 S3 client for an AWS or S3-compatible endpoint.

    ``max_attempts`` is the number of tries in total, the first included (``failmap
    doctor`` asks for few tries and short timeouts: it must answer within a health check).
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
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
    )
    # A session per client: boto3's default session is not thread-safe to create clients from.
    session = boto3.session.Session()
    return session.client("s3", endpoint_url=endpoint_url or None, region_name=region or None, config=config)


class _DefaultChainCredentials:
    """obstore's credential callback, answered by boto3's default chain: both clients
    sign as the same identity, and refreshing credentials (roles, SSO) keep refreshing."""

    # obstore caches an answer until it expires; botocore refreshes ahead of expiry itself
    TTL = timedelta(minutes=5)

    def __init__(self) -> None:
        self._credentials = boto3.session.Session().get_credentials()

    def __call__(self) -> dict[str, Any]:
        if self._credentials is None:
            raise NoCredentialsError()
        frozen = self._credentials.get_frozen_credentials()
        return {"access_key_id": frozen.access_key, "secret_access_key": frozen.secret_key,
                "token": frozen.token, "expires_at": datetime.now(UTC) + self.TTL}


def _data_client(bucket: str, client: Any) -> S3Store:
    """The obstore client for ``bucket``, configured like the boto3 ``client``: same
    endpoint, region, path-style addressing and number of attempts."""
    endpoint = client.meta.endpoint_url
    attempts = (client.meta.config.retries or {}).get("total_max_attempts", 5)
    return S3Store(
        bucket,
        endpoint=endpoint,
        region=client.meta.region_name or "us-east-1",
        virtual_hosted_style_request=False,
        credential_provider=_DefaultChainCredentials(),  # type: ignore[arg-type]
        client_options={
            "allow_http": endpoint.startswith("http://"),
            "connect_timeout": timedelta(seconds=10),
            "read_timeout": timedelta(seconds=120),   # between reads, as boto3's read_timeout
            "timeout": timedelta(hours=1),            # whole request; object_store's default is 30 s
        },
        # 5xx, connection errors and timeouts, exponential backoff with jitter
        retry_config={"max_retries": max(0, attempts - 1), "retry_timeout": timedelta(minutes=5)},
    )


_ERROR_CODE = re.compile(r"<Code>([^<]{1,64})</Code>")
_HTTP_STATUS = re.compile(r"status code: (\d{3})")


def _client_error(exc: ObstoreError | OSError, operation: str, where: str) -> ClientError | None:
    """An obstore failure as the ClientError boto3 would have raised, or None when the
    server never answered (connection errors stay as they are)."""
    text = str(exc)
    status = _HTTP_STATUS.search(text)
    code = _ERROR_CODE.search(text)
    if status is None and code is None:
        return None
    code_text = code.group(1) if code else status.group(1)  # type: ignore[union-attr]
    return ClientError(
        {"Error": {"Code": code_text, "Message": f"{where}: HTTP {status.group(1) if status else '?'} {code_text}"},
         "ResponseMetadata": {"HTTPStatusCode": int(status.group(1)) if status else None}},
        operation,
    )


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


def _is_precondition(exc: ClientError) -> bool:
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return exc.response.get("Error", {}).get("Code") in _PRECONDITION or status == 412


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
        self._data: S3Store | None = None
        self._data_lock = threading.Lock()

    def _data_store(self) -> S3Store:
        # Built on first use: opening a store must not need credentials yet.
        with self._data_lock:
            if self._data is None:
                self._data = _data_client(self.bucket, self.client)
            return self._data

    def _data_error(self, exc: ObstoreError | OSError, operation: str, key: str) -> Exception:
        """What to raise for an obstore failure: FileNotFoundError for a missing object,
        the ClientError boto3 would have raised, or the error itself (no answer at all)."""
        if isinstance(exc, FileNotFoundError) and "<Code>NoSuchBucket</Code>" not in str(exc):
            return self._missing(key)
        return _client_error(exc, operation, f"{self.location}{key}") or exc

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

    def get(self, key: str, *, if_match: str | None = None) -> bytes:
        full = self._full(key)
        try:
            if if_match is None:
                return bytes(obstore.get(self._data_store(), full).bytes())
            return bytes(obstore.get(self._data_store(), full, options={"if_match": f'"{if_match}"'}).bytes())
        except ObstorePreconditionError:
            raise self._get_refused(key, if_match) from None
        except (ObstoreError, OSError) as exc:
            raise self._data_error(exc, "GetObject", key) from None
        except ValueError:
            # obstore refuses some names S3 allows (control characters): boto3 reads those
            return self._get_by_boto3(key, if_match)

    def _get_by_boto3(self, key: str, if_match: str | None) -> bytes:
        condition = {"IfMatch": f'"{if_match}"'} if if_match is not None else {}
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=self._full(key), **condition)
        except ClientError as exc:
            if _is_not_found(exc):
                raise self._missing(key) from exc
            if if_match is not None and _is_precondition(exc):
                raise self._get_refused(key, if_match) from None
            raise
        with resp["Body"] as body:
            return body.read()

    def _get_refused(self, key: str, if_match: str | None) -> PreconditionFailed:
        return PreconditionFailed(f"get of {key!r} in {self.location}: if_match {if_match!r} does not hold, "
                                  "the object has been replaced")

    # -- writes -------------------------------------------------------------------------

    def put(self, key: str, data: bytes, content_type: str | None = None, *,
            if_match: str | None = None, if_none_match: bool = False) -> ObjectInfo:
        """One PUT up to ``multipart_threshold`` bytes, else a multipart upload. Both
        are atomic on S3: the object appears only when the PUT or the Complete succeeds.
        Conditional puts are single PUTs only (ValueError above the threshold)."""
        check_conditions(if_match, if_none_match)
        check_key(key)
        full = self._full(key)
        extra = {"ContentType": content_type} if content_type else {}
        if if_match is not None or if_none_match:
            if len(data) > self.multipart_threshold:
                raise ValueError(f"conditional put of {key!r}: {len(data)} bytes is over the single-PUT limit "
                                 f"of {self.multipart_threshold}; conditional multipart uploads are not supported")
            return self._put_conditional(key, full, data, extra, if_match)
        if len(data) > self.multipart_threshold:
            resp = self._put_multipart(full, data, extra)
            return ObjectInfo(key=key, size=len(data), etag=resp["ETag"].strip('"'), last_modified=_server_time(resp))
        try:
            result = obstore.put(self._data_store(), full, data, use_multipart=False,
                                 attributes={"Content-Type": content_type} if content_type else None)
        except (ObstoreError, OSError) as exc:
            raise self._data_error(exc, "PutObject", key) from None
        # obstore returns no Date header: the local clock stands in for LastModified
        # (PutObject reports none either; nothing we write depends on it).
        return ObjectInfo(key=key, size=len(data), etag=(result["e_tag"] or "").strip('"'),
                          last_modified=datetime.now(UTC).replace(microsecond=0))

    def _put_conditional(self, key: str, full: str, data: bytes, extra: dict[str, str],
                         if_match: str | None) -> ObjectInfo:
        condition = {"IfNoneMatch": "*"} if if_match is None else {"IfMatch": f'"{if_match}"'}
        try:
            resp = self.client.put_object(Bucket=self.bucket, Key=full, Body=data, **extra, **condition)
        except ClientError as exc:
            # an If-Match PUT of a missing key: 404 NoSuchKey on AWS (412 on SeaweedFS)
            if _is_precondition(exc) or (if_match is not None and _is_not_found(exc)):
                raise self._put_refused(key, if_match, exc) from None
            raise
        return ObjectInfo(key=key, size=len(data), etag=resp["ETag"].strip('"'), last_modified=_server_time(resp))

    def _put_refused(self, key: str, if_match: str | None, exc: ClientError) -> PreconditionFailed:
        condition = "if_none_match" if if_match is None else f"if_match {if_match!r}"
        error = exc.response.get("Error", {}).get("Code", "?")
        retries = exc.response.get("ResponseMetadata", {}).get("RetryAttempts", 0)
        doubt = (f"; the request was retried {retries} time(s), so an earlier attempt may have written it"
                 if retries else "")
        return PreconditionFailed(f"put of {key!r} in {self.location}: {condition} does not hold ({error}){doubt}")

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

    def remove_stale_temporaries(self, prefix: str, older_than: datetime) -> list[str]:
        """Abort the multipart uploads below ``prefix`` initiated before ``older_than``
        (their parts cost storage and never expire unless a lifecycle rule says so);
        returns their keys. Single PUTs leave nothing behind."""
        check_aware(older_than, "older_than")
        aborted = []
        cut = len(self.prefix)
        pages = self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=self.prefix + prefix)
        for page in pages:
            for upload in page.get("Uploads", []):
                if upload["Initiated"] < older_than and self._abort(upload["Key"], upload["UploadId"]):
                    aborted.append(upload["Key"][cut:])
        return aborted

    def _abort(self, full: str, upload_id: str) -> bool:
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=full, UploadId=upload_id)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NoSuchUpload":
                return False  # completed or aborted meanwhile
            raise
        return True
