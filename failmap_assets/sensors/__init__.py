"""Dagster sensors. The pure parts (cursor, seen-ledger, key grammar) live in
``failmap_assets.discovery``; this package only wires them to Dagster."""

from failmap_assets.sensors.bucket_sensors import bucket_a_sensor, bucket_b_sensor, stdf_sensor
from failmap_assets.sensors.reconcile_sensor import reconcile_sensor

SENSORS = [bucket_a_sensor, bucket_b_sensor, stdf_sensor, reconcile_sensor]

__all__ = ["SENSORS", "bucket_a_sensor", "bucket_b_sensor", "reconcile_sensor", "stdf_sensor"]
