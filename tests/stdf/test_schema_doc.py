"""SCHEMA.md is generated from the record table and the schemas: it must be up to date."""

from pathlib import Path

from failmap_assets.stdf.schema_doc import schema_markdown
from failmap_assets.stdf.tables import SCHEMAS

DOC = Path(__file__).resolve().parents[2] / "failmap_assets" / "stdf" / "SCHEMA.md"


def test_schema_doc_is_current():
    assert DOC.read_text() == schema_markdown(), (
        "SCHEMA.md is stale: .venv/bin/python -m failmap_assets.stdf.schema_doc > failmap_assets/stdf/SCHEMA.md")


def test_every_column_documented():
    text = DOC.read_text()
    for table, schema in SCHEMAS.items():
        section = text.split(f"## `{table}`", 1)[1].split("\n## ", 1)[0]
        for f in schema:
            row = next(line for line in section.splitlines() if line.startswith(f"| `{f.name}` |"))
            assert row.rstrip(" |").split("|")[-1].strip(), (table, f.name)
