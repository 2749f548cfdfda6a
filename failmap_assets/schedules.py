"""daily_close: shortly after midnight, materialize yesterday's partitions fully.

By then every A of yesterday is past its pairing window + grace, so pending A files
become a_only, and orphan B files are final.
"""


from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from dagster import AssetSelection, RunRequest, ScheduleEvaluationContext, define_asset_job, schedule

from failmap_assets.jobs import FAILMAP_GROUP, STDF_GROUP
from failmap_assets.settings import Settings

_settings = Settings.from_env()

daily_close_job = define_asset_job(
    "daily_close_job",
    selection=AssetSelection.groups(FAILMAP_GROUP, STDF_GROUP),
    description="Yesterday's fail-map and STDF partitions, materialized once the day is closed.",
)


# 00:20: after the default pairing window (10 s) + grace (10 min) past midnight.
@schedule(job=daily_close_job, cron_schedule="20 0 * * *", execution_timezone=_settings.fab_timezone)
def daily_close(context: ScheduleEvaluationContext) -> RunRequest:
    now = context.scheduled_execution_time or datetime.now(ZoneInfo(_settings.fab_timezone))
    yesterday = (now.astimezone(ZoneInfo(_settings.fab_timezone)) - timedelta(days=1)).date().isoformat()
    return RunRequest(
        run_key=f"daily_close:{yesterday}",
        partition_key=yesterday,
        tags={"failmap/trigger": "daily_close"},
    )
