"""The PostgreSQL sink: the day's committed summaries upserted into tables whose schema
the project creates and migrates itself, so dashboards, JMP and Excel can read them.

- ``tables.py``      which tables are loaded (one ``TableSpec`` each), Arrow -> PostgreSQL types
- ``schema.py``      the versioned migrations (``failmap_schema_version``)
- ``load.py``        a day's load: one transaction, COPY into staging, one upsert, stale rows deleted
- ``day_tables.py``  the day's source tables, read through their committed manifests
- ``connection.py``  connecting (DSN or libpq's PG* variables) and keeping passwords out of text
- ``reader_role.py`` the grants of the read-only role BI tools use
- ``sink_day.py``    the whole of one day: connect, migrate, read, load

Nothing here imports dagster (``defs/sinks/`` is the wiring).
"""
