"""The read-only role BI tools (dashboards, JMP, Excel) connect as: the SQL the README
shows, in one place (the README's test checks that it shows exactly this).

``failmap_reader`` may connect, see the sink's tables and SELECT from them: nothing
else (no INSERT, UPDATE, DELETE, TRUNCATE or DDL), and its sessions are read-only by
default. Tables a later migration adds (as the loading role) become readable through
the default privileges, without granting again.
"""

from __future__ import annotations

from failmap_assets.sinks.postgres.schema import LOADED_DAYS_TABLE, VERSION_TABLE, ident
from failmap_assets.sinks.postgres.tables import SINK_TABLES

READER_ROLE = "failmap_reader"


def reader_role_sql(database: str, loader: str, reader: str = READER_ROLE, schema: str = "public") -> list[str]:
    """The statements, run once by an administrator: create ``reader``, let it read the
    sink's tables in ``schema`` of ``database``, and every table ``loader`` (the role in
    FAILMAP_POSTGRES_DSN) creates there later. Set its password apart (``\\password``)."""
    tables = ", ".join(ident(t) for t in (*[s.name for s in SINK_TABLES], LOADED_DAYS_TABLE, VERSION_TABLE))
    r, s = ident(reader), ident(schema)
    return [
        f"CREATE ROLE {r} LOGIN",
        f"ALTER ROLE {r} SET default_transaction_read_only = on",
        f"GRANT CONNECT ON DATABASE {ident(database)} TO {r}",
        f"GRANT USAGE ON SCHEMA {s} TO {r}",
        f"GRANT SELECT ON {tables} TO {r}",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {ident(loader)} IN SCHEMA {s} GRANT SELECT ON TABLES TO {r}",
    ]


#: What a BI tool runs: yield per lot and step over the last 7 days, then the loss bins
#: of the wafers' latest test events (bins is jsonb: one element per bin).
EXAMPLE_QUERIES = (
    """SELECT day, source, lot, step, product, wafers, dies, yield_pct
FROM lot_summary
WHERE day >= current_date - 7
ORDER BY day, lot, step""",
    """SELECT w.day, (b->>'bin')::int AS bin, b->>'name' AS name, sum((b->>'dies')::bigint) AS dies
FROM wafer_summary AS w, jsonb_array_elements(w.bins) AS b
WHERE w.latest AND NOT (b->>'pass')::boolean
GROUP BY w.day, bin, name
ORDER BY w.day, dies DESC""",
)
