"""The one Definitions of the failmap_assets code location."""

from __future__ import annotations

from dagster import Definitions, multiprocess_executor

from failmap_assets.defs.failmap.assets import FAILMAP_ASSETS
from failmap_assets.defs.jobs import JOBS
from failmap_assets.defs.patterns.assets import PATTERNS_ASSETS, PATTERNS_SENSORS
from failmap_assets.defs.schedules import SCHEDULES
from failmap_assets.defs.sinks.postgres import SINK_ASSETS, SINK_SENSORS
from failmap_assets.defs.stdf.assets import STDF_ASSETS
from failmap_assets.defs.webhooks import WEBHOOK_DELIVERIES
from failmap_assets.defs.yield_view.assets import YIELD_ASSETS, YIELD_SENSORS
from failmap_assets.defs.yield_view.trends import TRENDS_ASSETS
from failmap_assets.resources import build_resources
from failmap_assets.sensors import SENSORS

ALL_ASSETS = [*FAILMAP_ASSETS, *STDF_ASSETS, *YIELD_ASSETS, *TRENDS_ASSETS, *PATTERNS_ASSETS, WEBHOOK_DELIVERIES,
              *SINK_ASSETS]

defs = Definitions(
    assets=ALL_ASSETS,
    jobs=JOBS,
    schedules=SCHEDULES,
    sensors=[*SENSORS, *YIELD_SENSORS, *PATTERNS_SENSORS, *SINK_SENSORS],
    resources=build_resources(),
    # Two cores: two ops at once; parallelism inside a day comes from the runner's threads.
    executor=multiprocess_executor.configured({"max_concurrent": 2}),
)
