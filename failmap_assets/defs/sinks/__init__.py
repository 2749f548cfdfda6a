"""Dagster wiring of the sinks: the day's committed tables copied into other systems."""
