"""The one Definitions of the failmap_assets code location."""

from __future__ import annotations

import os

from dagster import Definitions, multiprocess_executor

from failmap_assets.assets.failmap import FAILMAP_ASSETS
from failmap_assets.jobs import failmap_day_job, stdf_day_job
from failmap_assets.resources.rules import FailmapRules
from failmap_assets.resources.storage import FailmapStorage
from failmap_assets.schedules import daily_close, daily_close_job
from failmap_assets.settings import Settings


def _int_env(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


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
            window_s=_int_env("FAILMAP_PAIR_WINDOW_S", 10),
            grace_s=_int_env("FAILMAP_PAIR_GRACE_S", 600),
            pixels_per_die=_int_env("FAILMAP_PIXELS_PER_DIE", 4),
        ),
    }


ALL_ASSETS = [*FAILMAP_ASSETS]

defs = Definitions(
    assets=ALL_ASSETS,
    jobs=[failmap_day_job, stdf_day_job, daily_close_job],
    schedules=[daily_close],
    resources=build_resources(),
    # Two cores: two ops at once; parallelism inside a day comes from the runner's threads.
    executor=multiprocess_executor.configured({"max_concurrent": 2}),
)
