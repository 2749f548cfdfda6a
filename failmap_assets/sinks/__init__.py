"""Sinks: the day's committed tables copied into the fab's other systems (PostgreSQL)."""
