"""daily_close: shortly after midnight, materialize yesterday's partitions fully.

By then every A of yesterday is past its pairing window + grace, so pending A files
become a_only, and orphan B files are final.
"""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from dagster import RunRequest, ScheduleEvaluationContext, schedule

from failmap_assets.defs.jobs import daily_close_job
from failmap_assets.defs.owners import TEST_ENGINEERING, YIELD_ENGINEERING
from failmap_assets.defs.partitions import daily_partitions


# 00:20: after the default pairing window (10 s) + grace (10 min) past midnight.
@schedule(
    job=daily_close_job,
    cron_schedule="20 0 * * *",
    execution_timezone=daily_partitions.timezone,
    owners=TEST_ENGINEERING + YIELD_ENGINEERING,
    description="At 00:20 fab time, materialize yesterday's fail-map and STDF partitions fully: "
    "pending A files past their pairing grace become a_only, unclaimed B files final orphans.",
)
def daily_close(context: ScheduleEvaluationContext) -> RunRequest:
    tz = ZoneInfo(daily_partitions.timezone)
    now = context.scheduled_execution_time or datetime.now(tz)
    yesterday = (now.astimezone(tz) - timedelta(days=1)).date().isoformat()
    return RunRequest(
        run_key=f"daily_close:{yesterday}",
        partition_key=yesterday,
        tags={"failmap/trigger": "daily_close"},
    )


SCHEDULES = [daily_close]
