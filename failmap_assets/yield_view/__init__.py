"""The yield engineer's view (issue 13): a day's wafer and lot summaries.

Pure functions over polars frames (no storage, no Dagster): ``zones`` (where on the
wafer a die is), ``sources`` (each pipeline's committed tables in one shape) and
``summaries`` (the two tables, their columns and what each column means). The day
runner that reads committed days and commits the tables is ``pipeline/summary_day.py``.
"""
