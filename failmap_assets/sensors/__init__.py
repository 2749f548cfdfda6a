"""Dagster sensors. The pure parts (cursor, seen-ledger, key grammar) live in
``failmap_assets.discovery``; this package only wires them to Dagster."""

from failmap_assets.sensors.bucket_sensors import SENSORS, bucket_a_sensor, bucket_b_sensor, stdf_sensor

__all__ = ["SENSORS", "bucket_a_sensor", "bucket_b_sensor", "stdf_sensor"]
