"""Daily partitions: one partition per fab day, the date folder of the object keys."""

from __future__ import annotations

from dagster import DailyPartitionsDefinition

from failmap_assets.settings import Settings

_settings = Settings.from_env()

# end_offset=1: today's partition exists, because testers drop files all day and the
# sensors materialize today's partition as objects arrive.
daily_partitions = DailyPartitionsDefinition(
    start_date=_settings.start_date.isoformat(),
    timezone=_settings.fab_timezone,
    end_offset=1,
)
