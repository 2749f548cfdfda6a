"""A location string -> an ObjectStore, and the one cache of opened stores.

``s3://bucket/prefix`` is an S3 (or S3-compatible) store, anything else a local
folder. Opening an S3 store builds a boto3 client (~0.1-0.4 s: endpoint rules,
service model), and Dagster builds fresh resources for every sensor evaluation and
every run, so stores are kept per process, keyed by everything that makes one
client differ from another: location, endpoint, region, pool size and the
credentials' identity (a digest, never the secret itself).
"""

from __future__ import annotations

import hashlib
import os
import threading
from typing import Any

from failmap_assets.storage.local_store import LocalObjectStore
from failmap_assets.storage.object_store import ObjectStore
from failmap_assets.storage.s3_store import S3ObjectStore, s3_client

_CACHE_LIMIT = 64  # configurations come and go in tests; never grow without bound
_cache: dict[tuple, ObjectStore] = {}
_clients: dict[tuple, Any] = {}
_lock = threading.Lock()


def parse_s3_url(location: str) -> tuple[str, str] | None:
    """``(bucket, prefix)`` for ``s3://bucket/prefix``, None for anything else."""
    scheme, sep, rest = location.partition("://")
    if not sep or scheme.lower() != "s3":
        return None
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise ValueError(f"no bucket in S3 location {location!r}")
    return bucket, prefix


def open_store(location: str, *, endpoint_url: str | None = None, region: str | None = None,
               max_pool: int = 32, client: Any = None) -> ObjectStore:
    """A new store for ``location`` (a relative folder is taken relative to the current
    directory). ``client`` lets several S3 stores share one boto3 client and its pool;
    without it one is built with credentials from boto3's default chain."""
    parsed = parse_s3_url(location)
    if parsed is None:
        if "://" in location:  # gs://, http://, file://: not a folder name, and not supported
            raise ValueError(f"unsupported storage location {location!r}: use s3://bucket/prefix or a folder")
        return LocalObjectStore(os.path.abspath(location))
    if client is None:
        client = s3_client(endpoint_url, region, max_pool)
    bucket, prefix = parsed
    return S3ObjectStore(bucket, prefix, client)


def _identity() -> str:
    """Which credentials boto3 will pick up, as a digest: a changed key or secret (tests,
    rotation) gets a new client, and nothing secret is kept in the cache key."""
    parts = [os.environ.get(n, "") for n in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                                              "AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE")]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def cached_store(location: str, *, endpoint_url: str = "", region: str = "", max_pool: int = 32) -> ObjectStore:
    """The process's store for ``location``; all S3 stores of one configuration share a client."""
    client_key = (endpoint_url, region, max_pool, _identity())
    key = (location, *client_key)
    with _lock:  # ops and sensors may ask from several threads at once
        store = _cache.get(key)
        if store is None:
            if len(_cache) >= _CACHE_LIMIT:
                _cache.clear()
                _clients.clear()
            client = None
            if parse_s3_url(location) is not None:
                client = _clients.get(client_key)
                if client is None:
                    client = _clients[client_key] = s3_client(endpoint_url or None, region or None, max_pool)
            store = _cache[key] = open_store(location, client=client)
        return store
