"""FailmapStorage: the Dagster resource that hands the pipeline its four stores."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from failmap_assets.storage.locations import cached_store
from failmap_assets.storage.object_store import ObjectStore


class FailmapStorage(dg.ConfigurableResource):
    """Where fail maps and STDF files come from and where outputs go.

    Each location is ``s3://bucket/prefix`` or a local folder. S3 credentials are
    deliberately not fields, so they can never end up in Dagster config, the UI or
    run logs: boto3 reads ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` (or a
    profile / instance role) from the process environment. The endpoint is not a
    secret. Stores come from the process-wide cache (``storage.locations``): all S3
    stores share one client whose connection pool fits ``max_workers``.
    """

    source_a: str = Field(description="Fail maps of tester A: s3://bucket/prefix or a local folder.")
    source_b: str = Field(description="Fail maps of tester B: s3://bucket/prefix or a local folder.")
    source_stdf: str = Field(description="STDF files: s3://bucket/prefix or a local folder.")
    output: str = Field(description="Where Parquet/PNG/JSON outputs are written: s3://bucket/prefix or a local folder.")
    s3_endpoint_url: str = Field(default="", description="S3-compatible endpoint URL; empty for AWS.")
    aws_region: str = Field(default="", description="S3 region; empty for boto3's default.")
    max_workers: int = Field(default=16, description="Threads that download objects concurrently.")

    def _store(self, location: str) -> ObjectStore:
        # max_workers connections for a download pool, as many again for the listings
        # and uploads that run beside it
        return cached_store(location, endpoint_url=self.s3_endpoint_url, region=self.aws_region,
                            max_pool=max(10, 2 * self.max_workers))

    def source_a_store(self) -> ObjectStore:
        return self._store(self.source_a)

    def source_b_store(self) -> ObjectStore:
        return self._store(self.source_b)

    def stdf_store(self) -> ObjectStore:
        return self._store(self.source_stdf)

    def output_store(self) -> ObjectStore:
        return self._store(self.output)
