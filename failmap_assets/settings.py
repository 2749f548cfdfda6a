"""The one reader of the environment: every FAILMAP_* setting, its default and its check.

The environment picks the deployment (local folders vs S3, which endpoint), never
code branches. With nothing set, everything lives under ``./.failmap/`` (the
embedded default) and Dagster keeps its SQLite storage under ``./.dagster``.
S3 credentials are not settings: boto3 reads AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
from the environment itself, so they never pass through our objects or logs. FTP and
SFTP credentials are (no library reads them for us): they are never resource fields,
their ``repr`` is hidden, and ``failmap doctor`` scrubs their values from its output.

Nothing else in the package reads ``os.environ`` for a setting. The Dagster
resources (``failmap_assets.resources``) get their field values from here, as
``EnvVar`` references where a variable is set, so the UI shows where a value came
from and a launchpad override reaches every asset, sensor and schedule that uses
the resource. Only what Dagster needs when the code location loads (partition
start, fab time zone, sensor interval) is read at import, through ``Settings``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from datetime import date
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_ROOT = ".failmap"


@dataclass(frozen=True)
class Variable:
    """One environment variable behind one ``Settings`` field."""

    name: str
    field: str
    kind: type = str          # str, int, float or bool
    minimum: float | None = None


VARIABLES: tuple[Variable, ...] = (
    Variable("FAILMAP_SOURCE_A", "source_a"),
    Variable("FAILMAP_SOURCE_B", "source_b"),
    Variable("FAILMAP_SOURCE_STDF", "source_stdf"),
    Variable("FAILMAP_OUTPUT", "output"),
    Variable("FAILMAP_S3_ENDPOINT_URL", "s3_endpoint_url"),
    Variable("AWS_REGION", "aws_region"),
    Variable("FAILMAP_START_DATE", "start_date"),
    Variable("FAILMAP_TIMEZONE", "fab_timezone"),
    Variable("FAILMAP_MAX_WORKERS", "max_workers", int, 1),
    Variable("FAILMAP_PAIR_WINDOW_S", "pair_window_s", int, 0),
    Variable("FAILMAP_PAIR_GRACE_S", "pair_grace_s", int, 0),
    Variable("FAILMAP_PIXELS_PER_DIE", "pixels_per_die", int, 1),
    Variable("FAILMAP_MERGE_RULE", "merge_rule"),
    Variable("FAILMAP_MEMORY_BUDGET_MB", "memory_budget_mb", int, 16),
    Variable("FAILMAP_LEASE_SECONDS", "lease_seconds", float, 1),
    Variable("FAILMAP_LEASE_WAIT_SECONDS", "lease_wait_seconds", float, 0),
    Variable("FAILMAP_SENSOR_LOOKBACK_DAYS", "sensor_lookback_days", int, 0),
    Variable("FAILMAP_SENSOR_MAX_RUNS_PER_TICK", "sensor_max_runs_per_tick", int, 1),
    Variable("FAILMAP_SENSOR_MAX_OBJECTS_PER_TICK", "sensor_max_objects_per_tick", int, 1),
    Variable("FAILMAP_SENSOR_TIME_BUDGET_SECONDS", "sensor_time_budget_seconds", float, 0.1),
    Variable("FAILMAP_SENSOR_INTERVAL_SECONDS", "sensor_interval_seconds", int, 1),
    Variable("FAILMAP_SENSOR_TAG_LIST_CHARS", "sensor_tag_list_chars", int, 0),
    Variable("FAILMAP_RECONCILE_DAYS", "reconcile_days", int, 0),
    Variable("FAILMAP_RECONCILE_PERIOD_SECONDS", "reconcile_period_seconds", float, 0),
    Variable("FAILMAP_TREND_DAYS", "trend_days", int, 1),
    Variable("FAILMAP_WEBHOOK_URLS", "webhook_urls"),
    Variable("FAILMAP_WEBHOOK_SECRET", "webhook_secret"),
    Variable("FAILMAP_WEBHOOK_TIMEOUT_SECONDS", "webhook_timeout_seconds", float, 0.1),
    Variable("FAILMAP_UI_URL", "ui_url"),
    # FTP / SFTP sources (storage/ftp_store.py, storage/sftp_store.py)
    Variable("FAILMAP_FTP_USER", "ftp_user"),
    Variable("FAILMAP_FTP_PASSWORD", "ftp_password"),
    Variable("FAILMAP_SFTP_USER", "sftp_user"),
    Variable("FAILMAP_SFTP_PASSWORD", "sftp_password"),
    Variable("FAILMAP_SFTP_KEY_FILE", "sftp_key_file"),
    Variable("FAILMAP_SFTP_KNOWN_HOSTS", "sftp_known_hosts"),
    Variable("FAILMAP_SFTP_INSECURE_ACCEPT_ANY_HOST_KEY", "sftp_insecure_accept_any_host_key", bool),
    Variable("FAILMAP_REMOTE_SETTLE_SECONDS", "remote_settle_seconds", float, 0),
    Variable("FAILMAP_REMOTE_MAX_CONNECTIONS", "remote_max_connections", int, 1),
    # PostgreSQL sink (sinks/postgres/): a libpq connection string or URI; may carry a password
    Variable("FAILMAP_POSTGRES_DSN", "postgres_dsn"),
    # STDF conversion (stdf/allocator.py): keep freed memory for the next file
    Variable("FAILMAP_STDF_KEEP_FREED_MEMORY", "stdf_keep_freed_memory", bool),
)
_BY_FIELD = {v.field: v for v in VARIABLES}
#: libpq variables that, set without FAILMAP_POSTGRES_DSN, turn the PostgreSQL sink on
PG_SWITCHES = ("PGHOST", "PGDATABASE", "PGSERVICE")


@dataclass(frozen=True)
class Settings:
    source_a: str
    source_b: str
    source_stdf: str
    output: str
    s3_endpoint_url: str = ""
    aws_region: str = ""
    start_date: date = date(2026, 1, 1)   # first daily partition
    fab_timezone: str = "UTC"             # the testers' local time: keys carry fab time without a zone
    max_workers: int = 16                 # parallel GETs inside one run
    pair_window_s: int = 10               # B partner written within [t_A, t_A + window]
    pair_grace_s: int = 600               # an unmatched A is pending until t_A + window + grace
    pixels_per_die: int = 4
    merge_rule: str = "last"              # a retested die: last, first, best or worst (yield_view/merged.py)
    memory_budget_mb: int = 256           # objects and decompressed bytes a run holds at once
    lease_seconds: float = 60.0           # a day's writer that stops renewing loses the day after this
    lease_wait_seconds: float = 1800.0    # how long a run waits for another run of the same day
    sensor_lookback_days: int = 2
    sensor_max_runs_per_tick: int = 5
    sensor_max_objects_per_tick: int = 5000
    sensor_time_budget_seconds: float = 15.0
    sensor_interval_seconds: int = 30
    sensor_tag_list_chars: int = 500
    reconcile_days: int = 30              # late files are looked for this many days back
    reconcile_period_seconds: float = 3600.0  # ... once per this period
    trend_days: int = 30                  # yield_trends covers this many days, ending at its partition's day
    webhook_urls: str = ""                # comma-separated; empty: the webhook sensors do nothing
    webhook_secret: str = field(default="", repr=False)  # HMAC key of the webhook signatures
    webhook_timeout_seconds: float = 3.0  # per attempt; 3 attempts
    ui_url: str = ""                      # the Dagster UI's base URL, for links to runs
    ftp_user: str = ""                    # empty: anonymous
    ftp_password: str = field(default="", repr=False)
    sftp_user: str = ""
    sftp_password: str = field(default="", repr=False)
    sftp_key_file: str = ""
    sftp_known_hosts: str = ""            # empty: ~/.ssh/known_hosts
    sftp_insecure_accept_any_host_key: bool = False
    remote_settle_seconds: float = 30.0   # a remote file unchanged this long is complete (storage/remote_listing.py)
    remote_max_connections: int = 4       # per FTP/SFTP source; tester servers often allow few sessions
    postgres_dsn: str = field(default="", repr=False)  # empty: libpq's PG* variables, if one of PG_SWITCHES is set
    stdf_keep_freed_memory: bool = True   # glibc keeps a converting process's freed heap, numpy no huge pages (stdf/allocator.py)
    postgres_pg_environment: bool = False  # not a variable: whether PG_SWITCHES turn the sink on without a DSN

    @classmethod
    def from_env(cls, environ: os._Environ | dict[str, str] | None = None) -> "Settings":
        env = os.environ if environ is None else environ
        root = _text(env, "FAILMAP_HOME") or DEFAULT_ROOT
        values: dict[str, object] = {
            "source_a": os.path.join(root, "a"),
            "source_b": os.path.join(root, "b"),
            "source_stdf": os.path.join(root, "stdf"),
            "output": os.path.join(root, "out"),
            # boto3's own fallback name for the region
            "aws_region": _text(env, "AWS_DEFAULT_REGION"),
        }
        for var in VARIABLES:
            raw = _text(env, var.name)
            if raw:
                values[var.field] = parse(var, raw)
        # libpq reads its PG* variables itself (like boto3 the AWS_* ones); only these,
        # set explicitly, turn the sink on: without them libpq would try a local socket.
        values["postgres_pg_environment"] = any(_text(env, n) for n in PG_SWITCHES)
        return cls(**values)  # type: ignore[arg-type]

    def variable_of(self, field_name: str) -> str:
        """The environment variable behind a field (for EnvVar references and messages)."""
        return _BY_FIELD[field_name].name


def _text(env, name: str) -> str:
    return env.get(name, "").strip()


def parse(var: Variable, raw: str):
    """A variable's text as its field's type; a malformed or too small value is an
    error that names the variable."""
    if var.field == "start_date":
        try:
            return date.fromisoformat(raw)
        except ValueError as exc:
            raise ValueError(f"{var.name}={raw!r} is not a date (YYYY-MM-DD)") from exc
    if var.field == "fab_timezone":
        try:
            ZoneInfo(raw)
        except (ValueError, ZoneInfoNotFoundError) as exc:
            raise ValueError(f"{var.name}={raw!r} is not a time zone (an IANA name such as Asia/Seoul)") from exc
        return raw
    if var.field in ("webhook_urls", "ui_url"):
        from failmap_assets.notify.urls import parse_urls

        urls = parse_urls(raw)  # the error names the URL without its credentials
        if var.field == "ui_url" and len(urls) != 1:
            raise ValueError(f"{var.name} is one URL (the Dagster UI's base URL)")
        return raw
    if var.field == "merge_rule":
        from failmap_assets.wafer.events import MERGE_RULES

        if raw not in MERGE_RULES:
            raise ValueError(f"{var.name}={raw!r} is not one of {', '.join(MERGE_RULES)}")
        return raw
    if var.kind is str:
        return raw
    if var.kind is bool:
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{var.name}={raw!r} is not a yes/no value (1, true, yes or 0, false, no)")
    try:
        value = var.kind(raw)
    except ValueError as exc:
        raise ValueError(f"{var.name}={raw!r} is not {'an integer' if var.kind is int else 'a number'}") from exc
    if var.minimum is not None and value < var.minimum:
        raise ValueError(f"{var.name}={value} must be >= {var.kind(var.minimum)}")
    return value


def problems(environ: os._Environ | dict[str, str] | None = None) -> list[str]:
    """Every FAILMAP_* value of the environment that does not parse (all of them, where
    ``Settings.from_env`` stops at the first), and FAILMAP_* names no setting has (a
    typo leaves the setting at its default without a word)."""
    env = os.environ if environ is None else environ
    out = []
    for var in VARIABLES:
        raw = _text(env, var.name)
        if raw:
            try:
                parse(var, raw)
            except ValueError as exc:
                out.append(str(exc))
    known = {v.name for v in VARIABLES} | {"FAILMAP_HOME"}
    for name in sorted(env):
        if name.startswith("FAILMAP_") and name not in known:
            out.append(f"{name} is set, but no setting has that name (see the README's Configuration)")
    return out


@dataclass(frozen=True)
class Deployment:
    """Variables of the programs around us that ``failmap doctor`` looks at (never a
    FAILMAP_* setting; Dagster and Numba read them themselves)."""

    dagster_home: str = ""
    pg_host: str = ""
    pg_port: str = ""
    pg_user: str = ""
    pg_password: str = field(default="", repr=False)
    pg_db: str = ""

    @property
    def uses_postgres(self) -> bool:
        # The host says so; the Helm chart gives every pod DAGSTER_PG_PASSWORD alone.
        return bool(self.pg_host)

    @classmethod
    def from_env(cls, environ: os._Environ | dict[str, str] | None = None) -> "Deployment":
        env = os.environ if environ is None else environ
        return cls(dagster_home=_text(env, "DAGSTER_HOME"), pg_host=_text(env, "DAGSTER_PG_HOST"),
                   pg_port=_text(env, "DAGSTER_PG_PORT"), pg_user=_text(env, "DAGSTER_PG_USER"),
                   pg_password=env.get("DAGSTER_PG_PASSWORD", ""), pg_db=_text(env, "DAGSTER_PG_DB"))


#: environment variables whose values are secrets: never printed
SECRET_VARIABLES = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "DAGSTER_PG_PASSWORD", "FAILMAP_WEBHOOK_SECRET",
                    "FAILMAP_FTP_PASSWORD", "FAILMAP_SFTP_PASSWORD", "FAILMAP_POSTGRES_DSN", "PGPASSWORD")


def secret_values(environ: os._Environ | dict[str, str] | None = None) -> list[str]:
    """The values of the secret variables (and of any variable whose name says it holds
    a password, secret or token) that are set, longest first: what to scrub from text."""
    env = os.environ if environ is None else environ
    names = set(SECRET_VARIABLES) | {n for n in env if any(w in n.upper() for w in ("PASSWORD", "SECRET", "TOKEN"))}
    return sorted({env[n] for n in names if len(env.get(n, "")) >= 4}, key=len, reverse=True)


def numba_cache_dir() -> str:
    """``NUMBA_CACHE_DIR``, Numba's own variable (read by Numba at import), as an absolute
    path; "" when unset (Numba then caches beside the sources)."""
    raw = _text(os.environ, "NUMBA_CACHE_DIR")
    return os.path.abspath(raw) if raw else ""


def is_set(name: str) -> bool:
    """Whether the environment sets ``name`` (to something other than blanks)."""
    return bool(_text(os.environ, name))


assert {f.name for f in fields(Settings)} >= set(_BY_FIELD), "every variable names a Settings field"
