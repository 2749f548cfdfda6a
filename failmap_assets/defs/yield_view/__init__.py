"""Dagster wiring of the yield engineer's tables (wafer_summary, lot_summary)."""
