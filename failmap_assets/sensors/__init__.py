"""Sensors: which objects are new, and which day partitions to run for them.

``listing.py`` and ``ledger.py`` are pure (importing them does not import Dagster);
``bucket_sensors.py`` is the Dagster wiring, loaded on first use of the names below.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SENSORS", "bucket_a_sensor", "bucket_b_sensor", "stdf_sensor"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from failmap_assets.sensors import bucket_sensors

        value = (
            [bucket_sensors.bucket_a_sensor, bucket_sensors.bucket_b_sensor, bucket_sensors.stdf_sensor]
            if name == "SENSORS"
            else getattr(bucket_sensors, name)
        )
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
