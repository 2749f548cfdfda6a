"""Daily partitions: one partition per fab day, the date folder of the object keys.

Start and time zone are needed when the code location loads, so they are read here,
through ``Settings`` (the one reader of the environment), once.
"""

from __future__ import annotations

import warnings

from dagster import BackfillPolicy, BetaWarning, DailyPartitionsDefinition, PreviewWarning

from failmap_assets.settings import Settings

_settings = Settings.from_env()

# end_offset=1: today's partition exists, because testers drop files all day and the
# sensors materialize today's partition as objects arrive.
daily_partitions = DailyPartitionsDefinition(
    start_date=_settings.start_date.isoformat(),
    timezone=_settings.fab_timezone,
    end_offset=1,
)

#: Days yield_trends covers, ending at its partition's day: its dependency on
#: wafer_summary spans them, so it is read when the code location loads.
TREND_DAYS = _settings.trend_days

# One run per day in backfills: each day has its own processed ledger, so a failed day
# is re-run alone ("re-execute failed partitions") and the run queue in dagster.yaml
# bounds how many days run at once.
daily_backfill_policy = BackfillPolicy.multi_run(max_partitions_per_run=1)
# Chosen deliberately (see above); Dagster's beta notice for it would greet every load.
warnings.filterwarnings("ignore", message=r"Parameter `backfill_policy`", category=BetaWarning)
# The day's checks are partitioned (a check result belongs to its day, so one bad day
# cannot turn a later day's badge red, nor a good day hide a bad one): chosen too.
warnings.filterwarnings("ignore", message=r"Specifying a partitions_def on an AssetCheckSpec", category=PreviewWarning)
