"""The one Definitions of the failmap_assets code location."""

from __future__ import annotations

from dagster import Definitions, multiprocess_executor

from failmap_assets.assets.failmap import FAILMAP_ASSETS
from failmap_assets.assets.stdf import STDF_ASSETS
from failmap_assets.jobs import failmap_day_job, stdf_day_job
from failmap_assets.resources import build_resources
from failmap_assets.schedules import daily_close, daily_close_job
from failmap_assets.sensors import SENSORS


ALL_ASSETS = [*FAILMAP_ASSETS, *STDF_ASSETS]

defs = Definitions(
    assets=ALL_ASSETS,
    jobs=[failmap_day_job, stdf_day_job, daily_close_job],
    schedules=[daily_close],
    sensors=SENSORS,
    resources=build_resources(),
    # Two cores: two ops at once; parallelism inside a day comes from the runner's threads.
    executor=multiprocess_executor.configured({"max_concurrent": 2}),
)
