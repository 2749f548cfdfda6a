"""Dagster sensors: the bucket and reconcile sensors, and the completion webhooks. The pure
parts (cursor, seen-ledger, key grammar in ``failmap_assets.discovery``; webhook documents,
signing and delivery in ``failmap_assets.notify``) live outside; this package only wires
them to Dagster."""

from failmap_assets.sensors.bucket_sensors import bucket_a_sensor, bucket_b_sensor, stdf_sensor
from failmap_assets.sensors.reconcile_sensor import reconcile_sensor
from failmap_assets.sensors.webhook_sensors import webhook_failure_sensor, webhook_success_sensor

SENSORS = [bucket_a_sensor, bucket_b_sensor, stdf_sensor, reconcile_sensor, webhook_success_sensor,
           webhook_failure_sensor]

__all__ = ["SENSORS", "bucket_a_sensor", "bucket_b_sensor", "reconcile_sensor", "stdf_sensor",
           "webhook_failure_sensor", "webhook_success_sensor"]
