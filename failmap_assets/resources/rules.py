"""Rules users tune per deployment: pairing, image size, bomb limits, sensor pacing.

Bounds are checked where the values are read (``failmap_assets.settings``): a field
may hold an ``EnvVar``, which pydantic constraints cannot see through.

Defaults come from the contract and ``failmap_assets.settings``; a deployment sets
them with FAILMAP_* variables (``build_resources`` turns those into ``EnvVar``
references) and a run can override them in the launchpad.
"""

from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import Field

from failmap_assets.pipeline.day_lease import LeaseOptions


class FailmapRules(ConfigurableResource):
    window_s: int = Field(default=10, description="B partner written within [t_A, t_A + window] seconds")
    grace_s: int = Field(default=600, description="an unmatched A is pending until t_A + window + grace")
    pixels_per_die: int = Field(default=4, description="square PNG pixels per die")
    merge_rule: str = Field(default="last", description="a retested wafer's final die in merged_dies: last, first, "
                                                        "best (a pass wins) or worst (a fail wins)")
    max_decompressed_mb: int = Field(default=1024, description="refuse objects that decompress to more (bombs)")
    max_ratio: float = Field(default=1000.0, description="refuse objects with a higher compression ratio (bombs)")
    max_in_flight: int = Field(default=32, description="units held in memory at once inside a run")
    memory_budget_mb: int = Field(default=256, description="objects and their decompressed bytes a run holds at once; "
                                  "a unit that needs more alone is rejected as too_large")
    match_rate_warn: float = Field(default=0.9, description="warn when matched / (matched + a_only) is lower")
    lease_seconds: float = Field(default=60.0, description="a day's writer that stops renewing its lease loses the day after this long")
    lease_wait_seconds: float = Field(default=1800.0, description="how long a run waits while another run writes the same day")

    def lease(self) -> LeaseOptions:
        return LeaseOptions(ttl_s=self.lease_seconds, wait_s=self.lease_wait_seconds)


class SensorRules(ConfigurableResource):
    """How the bucket sensors pace themselves; never where data lives."""

    lookback_days: int = Field(default=2, description="days before today (fab time) re-listed every tick; older days are closed")
    max_runs_per_tick: int = Field(default=5, description="run requests (= day partitions) per tick and sensor")
    max_objects_per_tick: int = Field(default=5000, description="new objects taken per tick and sensor; the rest waits for the next tick")
    time_budget_seconds: float = Field(default=15.0, description="stop listing after this long (Dagster kills an evaluation at 60 s)")
    tag_list_chars: int = Field(default=500, description="characters of the object list in a run's tag")
    reconcile_days: int = Field(default=30, description="days back the reconcile sweep looks for late files")
    reconcile_period_seconds: float = Field(default=3600.0, description="a reconcile sweep starts this often")
