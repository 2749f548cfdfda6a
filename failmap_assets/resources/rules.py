"""Pipeline rules users tune per deployment: pairing window, grace, image size, bomb limits.

Defaults come from the contract; each can be overridden by an environment variable
(picked up in definitions.py) or in the launchpad's resource config.
"""

from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import Field


class FailmapRules(ConfigurableResource):
    window_s: int = Field(default=10, description="B partner written within [t_A, t_A + window] seconds")
    grace_s: int = Field(default=600, description="an unmatched A is pending until t_A + window + grace")
    pixels_per_die: int = Field(default=4, description="square PNG pixels per die")
    max_decompressed_mb: int = Field(default=1024, description="refuse objects that decompress to more (bombs)")
    max_ratio: float = Field(default=1000.0, description="refuse objects with a higher compression ratio (bombs)")
    max_in_flight: int = Field(default=32, description="units held in memory at once inside a run")
    match_rate_warn: float = Field(default=0.9, description="warn when matched / (matched + a_only) is lower")
