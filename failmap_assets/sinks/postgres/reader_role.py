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


#: What a BI tool asks of the pattern tables: the pattern mix per product over the last
#: 7 loaded days (latest test events), then the latest day's most unusual wafers with
#: their yield and the earlier wafer each looks most like. They key on the latest day
#: loaded, not on today: the pattern pipelines may run a day behind the summaries.
PATTERN_QUERIES = (
    """SELECT s.day, s.product, s.label, count(*) AS wafers, round(avg(s.confidence)::numeric, 3) AS confidence
FROM wafer_signatures AS s
WHERE s.latest AND s.day > (SELECT max(day) FROM wafer_signatures) - 7
GROUP BY s.day, s.product, s.label
ORDER BY s.day, s.product, wafers DESC""",
    """SELECT a.day, a.wafer_token, a.product, a.label, a.anomaly_score, a.threshold, a.anomalous, w.yield_pct,
       m.similar_day, m.similar_wafer_token, m.similar_label, m.similarity
FROM wafer_anomaly AS a
JOIN wafer_summary AS w USING (day, source, object_key, wafer_token)
LEFT JOIN similar_wafers AS m
  ON (m.day, m.source, m.object_key, m.wafer_token, m.rank) = (a.day, a.source, a.object_key, a.wafer_token, 1)
WHERE a.day = (SELECT max(day) FROM wafer_anomaly) AND a.anomaly_score IS NOT NULL
ORDER BY a.anomaly_score DESC, a.wafer_token
LIMIT 20""",
)
