"""``webhook_deliveries``: where the UI shows each completion webhook that went out.

Not computed by any op (an external asset): the webhook sensors record an
observation on the day's partition for every (run, pipeline) they notified, with
one row per URL (redacted), its HTTP status, attempts and error. A day's partition
page then lists every delivery of that day, next to the day's runs.
"""

from __future__ import annotations

from dagster import AssetSpec

from failmap_assets.defs.partitions import daily_partitions

WEBHOOK_DELIVERIES = AssetSpec(
    "webhook_deliveries",
    group_name="notifications",
    partitions_def=daily_partitions,
    description=(
        "Completion webhooks sent for each day run (FAILMAP_WEBHOOK_URLS): one observation per run and "
        "pipeline, with every URL's status, attempts and error. Recorded by webhook_success_sensor and "
        "webhook_failure_sensor."
    ),
)
