"""STDF V4 / V4-2007 ingestion: Numba record scan and decoders, Arrow tables, Parquet, wafer maps.

Public API::

    parse_stdf(path_or_bytes) -> STDFData              # one Arrow table per table, issues, counts
    parse_to_parquet(path, out_dir, product=None, test_type=None) -> ParseStats
    wafer_maps(data, retest_rule="last") -> list[WaferMap]          # format "stdf"
    convert_many(paths, out_dir, workers, progress=True) -> int      # exit code (failmap stdf2parquet)
    open_views(out_dir) -> duckdb connection; sql_shell(out_dir, query=None)   # failmap sql
    sql.read_table(out_dir, table) -> pyarrow.Table    # one table back, full schema + file_id

Input that is not STDF V4 raises ``failmap_assets.wafer.rejects.Rejected`` (reason: empty,
not_stdf, stdf_v3, unsupported_version, corrupt_archive, bomb, multiple_members);
corruption inside a V4 file is salvaged and reported in ``STDFData.issues``.
Column documentation: SCHEMA.md in this package.
"""

from .scan import Issue
from .tables import SCHEMAS, TABLES, ParseStats, STDFData, override_bits, parse_stdf, parse_to_parquet
from .wafer_maps import wafer_maps  # noqa: E402  (the function shadows the submodule on purpose)

__all__ = [
    "Issue", "ParseStats", "SCHEMAS", "STDFData", "TABLES", "override_bits", "parse_stdf", "parse_to_parquet",
    "wafer_maps", "convert_many", "open_views", "sql_shell",
]


def __getattr__(name):  # lazy: batch and DuckDB are not needed to parse
    if name == "convert_many":
        from .batch import convert_many

        return convert_many
    if name in ("open_views", "sql_shell"):
        from . import sql

        return getattr(sql, name)
    raise AttributeError(name)
