"""Connecting: the DSN's password never in a message, libpq's PG* variables, sink off."""

from __future__ import annotations

import pytest

from failmap_assets.settings import Settings
from failmap_assets.sinks.postgres.connection import SINK_OFF, PostgresSinkError, PostgresTarget, connect, describe, redact


@pytest.mark.parametrize("dsn, password", [
    ("host=db.fab port=5432 user=loader password=s3cr3t-Pw dbname=yield", "s3cr3t-Pw"),
    ("host=db.fab user=loader password='with space' dbname=yield", "with space"),
    ("postgresql://loader:p%40ss-word@db.fab:5432/yield?sslmode=require", "p%40ss-word"),
    ("postgresql://db.fab/yield?user=loader&password=q-param-pw", "q-param-pw"),
])
def test_redact_hides_the_password_however_it_is_written(dsn, password):
    text = f"could not parse {dsn!r}; also tried {dsn}"
    scrubbed = redact(text, dsn)
    assert password not in scrubbed and "***" in scrubbed
    # a DSN written differently from the configured one (e.g. in a driver's message) too
    assert password not in redact(f"dsn was: {dsn}")


def test_a_wrong_password_fails_clearly_without_it(sink_db):
    wrong = "not-the-password-123"
    with pytest.raises(PostgresSinkError, match="cannot connect to PostgreSQL") as caught:
        connect(PostgresTarget(dsn=sink_db.dsn().replace(sink_db.password, wrong), connect_timeout_s=5))
    assert wrong not in str(caught.value) and sink_db.password not in str(caught.value)
    assert "password authentication failed" in str(caught.value)


def test_a_malformed_dsn_is_not_echoed(sink_db):
    dsn = f"host={sink_db.host} password={sink_db.password} dbname"   # libpq quotes the text it cannot parse
    with pytest.raises(PostgresSinkError) as caught:
        connect(PostgresTarget(dsn=dsn))
    assert sink_db.password not in str(caught.value)


def test_libpq_pg_variables_connect_without_a_dsn(sink_db, monkeypatch):
    for name, value in (("PGHOST", sink_db.host), ("PGPORT", str(sink_db.port)), ("PGUSER", sink_db.user),
                        ("PGPASSWORD", sink_db.password), ("PGDATABASE", sink_db.db)):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("FAILMAP_POSTGRES_DSN", raising=False)
    settings = Settings.from_env()
    assert settings.postgres_dsn == "" and settings.postgres_pg_environment
    conn = connect(PostgresTarget(dsn=settings.postgres_dsn, pg_environment=settings.postgres_pg_environment))
    try:
        assert describe(conn) == f"{sink_db.user}@{sink_db.host}:{sink_db.port}/{sink_db.db}"
    finally:
        conn.close()


def test_the_sink_is_off_without_a_dsn_or_an_explicit_pg_variable(monkeypatch):
    for name in ("FAILMAP_POSTGRES_DSN", "PGHOST", "PGDATABASE", "PGSERVICE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PGUSER", "someone")     # alone, not a reason to connect to a local socket
    settings = Settings.from_env()
    off = PostgresTarget(dsn=settings.postgres_dsn, pg_environment=settings.postgres_pg_environment)
    assert not off.enabled
    with pytest.raises(PostgresSinkError, match=SINK_OFF):
        connect(off)
    monkeypatch.setenv("FAILMAP_POSTGRES_DSN", "host=db.fab password=pw-in-dsn")
    on = Settings.from_env()
    assert on.postgres_dsn and "pw-in-dsn" not in repr(on)
