"""Pick the object-store backend from a location string, and the Dagster resource
that hands the pipeline its four stores (two fail-map sources, STDF, output)."""

from __future__ import annotations

import os
import threading
from typing import Any

import dagster as dg
from pydantic import Field, PrivateAttr

from failmap_assets.resources.local_store import LocalObjectStore
from failmap_assets.resources.object_store import ObjectStore
from failmap_assets.resources.s3_store import S3ObjectStore, s3_client


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
    """``s3://bucket/prefix`` -> S3ObjectStore, anything else -> LocalObjectStore
    (a relative folder is taken relative to the current directory).

    For S3, ``client`` lets several stores share one client (and its connection
    pool); without it one is built from ``endpoint_url``, ``region`` and
    ``max_pool`` with credentials from boto3's default chain (the environment).
    """
    parsed = parse_s3_url(location)
    if parsed is None:
        if "://" in location:  # gs://, http://, file://: not a folder name, and not supported
            raise ValueError(f"unsupported storage location {location!r}: use s3://bucket/prefix or a folder")
        return LocalObjectStore(os.path.abspath(location))
    if client is None:
        client = s3_client(endpoint_url, region, max_pool)
    bucket, prefix = parsed
    return S3ObjectStore(bucket, prefix, client)


class FailmapStorage(dg.ConfigurableResource):
    """Where fail maps and STDF files come from and where outputs go.

    Each location is ``s3://bucket/prefix`` or a local folder. S3 credentials are
    deliberately not fields, so they can never end up in Dagster config, the UI or
    run logs: boto3 reads ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` (or a
    profile / instance role) from the process environment. The endpoint is not a
    secret; set it with ``dg.EnvVar("FAILMAP_S3_ENDPOINT_URL")`` or leave it empty
    for AWS. The stores are opened on first use, once per resource instance, and
    all S3 stores share one client whose connection pool fits ``max_workers``.
    """

    source_a: str = Field(description="Fail maps of tester A: s3://bucket/prefix or a local folder.")
    source_b: str = Field(description="Fail maps of tester B: s3://bucket/prefix or a local folder.")
    source_stdf: str = Field(description="STDF files: s3://bucket/prefix or a local folder.")
    output: str = Field(description="Where Parquet/PNG/JSON outputs are written: s3://bucket/prefix or a local folder.")
    s3_endpoint_url: str = Field(default="", description="S3-compatible endpoint URL; empty for AWS.")
    aws_region: str = Field(default="", description="S3 region; empty for boto3's default.")
    max_workers: int = Field(default=16, gt=0, description="Threads that download objects concurrently.")

    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _stores: dict[str, ObjectStore] = PrivateAttr(default_factory=dict)
    _client: Any = PrivateAttr(default=None)

    def _store(self, location: str) -> ObjectStore:
        with self._lock:  # ops and sensors may ask from several threads at once
            store = self._stores.get(location)
            if store is None:
                client = None
                if parse_s3_url(location) is not None:
                    if self._client is None:
                        # max_workers connections for a download pool, as many again for
                        # the listings and uploads that run beside it
                        self._client = s3_client(self.s3_endpoint_url, self.aws_region, max(10, 2 * self.max_workers))
                    client = self._client
                store = open_store(location, client=client)
                self._stores[location] = store
            return store

    def source_a_store(self) -> ObjectStore:
        return self._store(self.source_a)

    def source_b_store(self) -> ObjectStore:
        return self._store(self.source_b)

    def stdf_store(self) -> ObjectStore:
        return self._store(self.source_stdf)

    def output_store(self) -> ObjectStore:
        return self._store(self.output)
