"""Connecting to the sink's database, and keeping its password out of every text.

The connection is ``FAILMAP_POSTGRES_DSN`` (a libpq connection string or URI) or,
when that is not set, libpq's own ``PG*`` variables (PGHOST, PGDATABASE, PGSERVICE,
PGUSER, PGPASSWORD, PGPASSFILE, ...): libpq reads those itself, the way boto3 reads
the AWS_* variables, so their values never pass through our objects. ``settings.py``
decides whether the sink is on (a DSN, or PGHOST / PGDATABASE / PGSERVICE set); a user
without PostgreSQL gets "sink off", never a connection attempt to a default socket.

A DSN may carry a password. It is never a message or metadata value: errors are
scrubbed (``redact``) before they leave this package, and the target is shown as
``user@host:port/database`` from the open connection.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

#: What the asset's description and metadata say when the sink has no connection.
SINK_OFF = "PostgreSQL sink off: set FAILMAP_POSTGRES_DSN"
#: The name the sink's sessions carry in pg_stat_activity (unless the DSN names one).
APPLICATION_NAME = "failmap-postgres-sink"
#: PostgreSQL 15: UNIQUE NULLS NOT DISTINCT (lot_summary's key has nullable columns).
MIN_SERVER_VERSION = 150000

_HIDDEN = "***"
_PASSWORD_WORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&]+)", re.IGNORECASE)
_URI_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")


class PostgresSinkError(RuntimeError):
    """The sink could not do its work; the message names why, never a password."""


@dataclass(frozen=True)
class PostgresTarget:
    """Where the sink loads: a DSN, or libpq's PG* variables (``pg_environment``)."""

    dsn: str = field(default="", repr=False)
    pg_environment: bool = False
    connect_timeout_s: int = 10

    @property
    def enabled(self) -> bool:
        return bool(self.dsn.strip()) or self.pg_environment


def redact(text: str, dsn: str = "") -> str:
    """``text`` without the DSN or any password written in it (``password=...`` words,
    ``scheme://user:password@`` URIs)."""
    secrets = [dsn] if len(dsn) >= 4 else []
    password = _password_of(dsn)
    if password:
        secrets.append(password)
    for s in sorted(secrets, key=len, reverse=True):
        text = text.replace(s, _HIDDEN)
    text = _PASSWORD_WORD.sub(lambda m: m.group(1) + _HIDDEN, text)
    return _URI_PASSWORD.sub(lambda m: m.group(1) + _HIDDEN + "@", text)


def _password_of(dsn: str) -> str:
    if not dsn:
        return ""
    try:
        from psycopg2.extensions import parse_dsn

        return parse_dsn(dsn).get("password", "")
    except Exception:  # noqa: BLE001 - a malformed DSN: the regular expressions still scrub it
        return ""


def connect(target: PostgresTarget):
    """An open psycopg2 connection (not in autocommit: every unit of work is a
    transaction). PostgresSinkError, scrubbed, when it cannot be opened or the server
    is older than PostgreSQL 15."""
    import psycopg2

    if not target.enabled:
        raise PostgresSinkError(SINK_OFF)
    try:
        conn = psycopg2.connect(target.dsn, connect_timeout=target.connect_timeout_s,
                                fallback_application_name=APPLICATION_NAME)
    except psycopg2.Error as exc:
        raise PostgresSinkError(f"cannot connect to PostgreSQL: {redact(str(exc).strip(), target.dsn)}") from None
    if conn.server_version < MIN_SERVER_VERSION:
        version, where = conn.server_version, describe(conn)
        conn.close()
        raise PostgresSinkError(f"PostgreSQL {version // 10000} at {where} is too old for the sink: "
                                "it needs PostgreSQL 15 or newer (UNIQUE NULLS NOT DISTINCT)")
    return conn


def describe(conn) -> str:
    """``user@host:port/database`` of an open connection: never its password."""
    info = conn.info
    return f"{info.user}@{info.host}:{info.port}/{info.dbname}"
