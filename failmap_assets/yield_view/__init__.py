"""The yield engineer's view (issue 13): a day's wafer and lot summaries.

Pure functions over polars frames (no storage, no Dagster): ``zones`` (where on the
wafer a die is), ``sources`` (each pipeline's committed tables in one shape),
``summaries`` (the two tables, their columns and what each column means), ``merged``
(retests merged into each wafer's final die map) and ``lot_maps`` (fail rate per die
position over a lot's wafers, and its heat map). The day runner that reads committed
days and commits the tables is ``pipeline/summary_day.py``.
"""
