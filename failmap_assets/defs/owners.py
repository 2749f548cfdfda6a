"""Who owns what in the UI (Dagster ``owners``): the team that ingests the testers' files
and the team that reads the yield. One list each, used by assets, jobs, schedules and
sensors alike (Dagster 1.13 takes no owners on run-status and automation-condition
sensors)."""

import warnings

from dagster import BetaWarning

TEST_ENGINEERING = ["team:test-engineering"]     # fail maps, STDF: ingestion and its automation
YIELD_ENGINEERING = ["team:yield-engineering"]   # summaries, merged retests, lot maps, trends

# Owners on schedules and sensors are chosen deliberately; Dagster's beta notice for them
# would greet every load.
warnings.filterwarnings("ignore", message=r"Parameter `owners` of (function|initializer) `(schedule|sensor|"
                        r"ScheduleDefinition\.__init__|SensorDefinition\.__init__)`", category=BetaWarning)
