"""Resources: object stores (S3 or local folders) and the pipeline rules."""

from __future__ import annotations

from failmap_assets.resources.rules import FailmapRules
from failmap_assets.resources.storage import FailmapStorage
from failmap_assets.settings import Settings, env_int


def build_resources(settings: Settings | None = None) -> dict:
    """Resources for the environment the process runs in (env vars pick local vs S3)."""
    s = settings or Settings.from_env()
    return {
        "storage": FailmapStorage(
            source_a=s.source_a,
            source_b=s.source_b,
            source_stdf=s.source_stdf,
            output=s.output,
            s3_endpoint_url=s.s3_endpoint_url,
            aws_region=s.aws_region,
            max_workers=s.max_workers,
        ),
        "failmap_rules": FailmapRules(
            window_s=env_int("FAILMAP_PAIR_WINDOW_S", 10),
            grace_s=env_int("FAILMAP_PAIR_GRACE_S", 600),
            pixels_per_die=env_int("FAILMAP_PIXELS_PER_DIE", 4, minimum=1),
        ),
    }
