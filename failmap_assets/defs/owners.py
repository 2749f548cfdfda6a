"""Who owns what in the UI (Dagster ``owners``): the team that ingests the testers' files
and the team that reads the yield. One list each, used by assets, jobs, schedules and
sensors alike (Dagster 1.13 takes no owners on run-status and automation-condition
sensors)."""

TEST_ENGINEERING = ["team:test-engineering"]     # fail maps, STDF: ingestion and its automation
YIELD_ENGINEERING = ["team:yield-engineering"]   # summaries, merged retests, lot maps, trends
