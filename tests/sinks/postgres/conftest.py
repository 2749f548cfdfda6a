from tests.support.postgres_sink import postgres_session, sink_db  # noqa: F401
