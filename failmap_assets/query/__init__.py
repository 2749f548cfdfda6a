"""Reading the pipelines' committed outputs back: DuckDB views for `failmap sql`."""
