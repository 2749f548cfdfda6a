"""PostgresSink: where the PostgreSQL sink loads (sinks/postgres/)."""

from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import Field

from failmap_assets.sinks.postgres.connection import PostgresTarget


class PostgresSink(ConfigurableResource):
    """From the environment the DSN is an ``EnvVar`` reference, so the UI shows the
    variable's name, never its value (a DSN may carry a password). Empty DSN and
    ``pg_environment`` off: the sink is off and says so."""

    dsn: str = Field(default="", repr=False,
                     description="FAILMAP_POSTGRES_DSN: a libpq connection string or postgresql:// URI (a secret)")
    pg_environment: bool = Field(
        default=False, description="no DSN: connect with libpq's own PG* variables (PGHOST, PGDATABASE, "
        "PGSERVICE, PGUSER, PGPASSWORD, ...), read by libpq itself; on when one of PGHOST, PGDATABASE, PGSERVICE is set")
    connect_timeout_seconds: int = Field(default=10, description="per connection attempt")

    def target(self) -> PostgresTarget:
        return PostgresTarget(dsn=self.dsn, pg_environment=self.pg_environment,
                              connect_timeout_s=self.connect_timeout_seconds)
