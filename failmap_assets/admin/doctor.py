"""``failmap doctor``: check a deployment's configuration end to end, in plain words.

One line per check, ``ok`` / ``warn`` / ``FAIL``; exit code 0 when nothing failed (the
image's health check), 1 otherwise. It reads what the daemon, the code server and the
runs read (the same environment) and does what they will do, on a small scale:

* settings: every FAILMAP_* value parses (all problems at once), no FAILMAP_* name is
  unknown (a typo), and the partition start and fab time zone it sees, printed so the
  operator can compare them with the daemon's and the code server's (and compared with
  ``--expect-start`` / ``--expect-timezone`` when given: a mismatch fails);
* S3 credentials: boto3's chain finds some (where from, and the access key's last
  characters; never the secret), and they work: each store below is reached with them;
* each source store lists; the output store takes a write, and honours conditional
  writes (``ObjectStore.check_conditional_writes``: create-if-absent and
  compare-and-swap, what the day's lease and manifest are built on);
* the Dagster instance (``$DAGSTER_HOME/dagster.yaml``): it parses, every ``env:``
  variable it names is set, its run coordinator is ours; PostgreSQL, when the instance
  uses it (its ``postgres_db`` connection, ``env:`` values resolved, as the Helm chart
  writes it; without an instance file, DAGSTER_PG_*), answers a connection within 5 s;
* the PostgreSQL sink, when it is on (FAILMAP_POSTGRES_DSN, or PGHOST / PGDATABASE /
  PGSERVICE): it connects as the asset will, and its sink schema version is one this
  code can load into;
* Numba's cache: the directory is usable (Numba ignores one it cannot write to) and
  holds code for every kernel that this machine, this Numba and this source can load.

No secret is ever printed: every line is scrubbed of the values of the secret
variables (``settings.secret_values``) before it is written, whatever a server or a
library put into an error message.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

OK, WARN, FAIL = "ok", "warn", "FAIL"
TIMEOUT_S = 5


@dataclass(frozen=True)
class Finding:
    status: str
    check: str
    text: str


class Doctor:
    def __init__(self, expect_start: date | None = None, expect_timezone: str | None = None) -> None:
        self.expect_start = expect_start
        self.expect_timezone = expect_timezone
        self.findings: list[Finding] = []
        self.secrets: list[str] = []    # found while checking (a password written in the instance file)

    def add(self, status: str, check: str, text: str) -> None:
        self.findings.append(Finding(status, check, text))

    def run(self) -> list[Finding]:
        settings = self.check_settings()
        if settings is not None:
            self.check_stores(settings)
            self.check_postgres_sink(settings)
        self.check_instance()
        self.check_numba()
        return self.findings

    # ------------------------------------------------------------------ settings

    def check_settings(self):
        from failmap_assets.settings import Settings, problems

        found = problems()
        for text in found:
            self.add(FAIL if "no setting has that name" not in text else WARN, "settings", text)
        try:
            s = Settings.from_env()
        except ValueError:
            self.add(FAIL, "settings", "the stores were not checked: the settings above must parse first")
            return None
        if not [t for t in found if "no setting has that name" not in t]:
            self.add(OK, "settings", "every FAILMAP_* value parses")
        self.add(OK, "partitions", f"partition start {s.start_date}, fab time zone {s.fab_timezone} "
                 "(FAILMAP_START_DATE, FAILMAP_TIMEZONE: the daemon, the code server and every run must see these)")
        if self.expect_start is not None and self.expect_start != s.start_date:
            self.add(FAIL, "partitions", f"partition start is {s.start_date}, expected {self.expect_start}")
        if self.expect_timezone is not None and self.expect_timezone != s.fab_timezone:
            self.add(FAIL, "partitions", f"fab time zone is {s.fab_timezone}, expected {self.expect_timezone}")
        return s

    # ------------------------------------------------------------------ stores

    def check_stores(self, s) -> None:
        from failmap_assets.storage.locations import open_store, parse_s3_url
        from failmap_assets.storage.s3_store import s3_client

        locations = {"source A": ("FAILMAP_SOURCE_A", s.source_a), "source B": ("FAILMAP_SOURCE_B", s.source_b),
                     "source STDF": ("FAILMAP_SOURCE_STDF", s.source_stdf), "output": ("FAILMAP_OUTPUT", s.output)}
        client = None
        try:
            on_s3 = [name for name, (_, loc) in locations.items() if parse_s3_url(loc) is not None]
        except ValueError as exc:
            self.add(FAIL, "stores", str(exc))
            return
        if on_s3:
            if not self.check_credentials():
                return
            client = s3_client(s.s3_endpoint_url or None, s.aws_region or None, 4, max_attempts=2,
                               connect_timeout=TIMEOUT_S, read_timeout=2 * TIMEOUT_S)
            where = s.s3_endpoint_url or "AWS"
            self.add(OK, "S3", f"endpoint {where}, region {s.aws_region or '(boto3 default)'}")
        for name, (var, location) in locations.items():
            try:
                store = open_store(location, client=client if parse_s3_url(location) else None)
            except ValueError as exc:
                self.add(FAIL, name, f"{var}: {exc}")
                continue
            if name == "output":
                self.check_output(var, store)
            else:
                self.check_source(name, var, store)

    def check_credentials(self) -> bool:
        import boto3

        try:
            creds = boto3.session.Session().get_credentials()
        except Exception as exc:  # noqa: BLE001 - a broken profile file, say
            self.add(FAIL, "credentials", f"boto3 cannot read the credentials: {_error(exc)}")
            return False
        if creds is None:
            self.add(FAIL, "credentials", "no S3 credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                     "(or a profile, or an instance / pod role)")
            return False
        key = creds.access_key or ""
        self.add(OK, "credentials", f"found ({creds.method}), access key ...{key[-4:]}; "
                 "whether they work shows in the store checks below")
        return True

    def check_source(self, name: str, var: str, store) -> None:
        from failmap_assets.storage.local_store import LocalObjectStore

        if isinstance(store, LocalObjectStore) and not os.path.isdir(store.root):
            self.add(FAIL, name, f"{var}: the folder {store.root} does not exist")
            return
        try:
            next(iter(store.list(limit=1)), None)
        except Exception as exc:  # noqa: BLE001 - whatever it is, it is the answer
            self.add(FAIL, name, f"{var}: cannot list {store.location}: {_error(exc)}")
            return
        self.add(OK, name, f"{store.location} lists")

    def check_output(self, var: str, store) -> None:
        from failmap_assets.storage.object_store import ConditionalWritesUnsupported

        try:
            store.check_conditional_writes()   # a write, two refused ones, a swap, a delete
            next(iter(store.list(limit=1)), None)
        except ConditionalWritesUnsupported as exc:
            self.add(FAIL, "output", f"{var}: {exc}")
            return
        except Exception as exc:  # noqa: BLE001
            self.add(FAIL, "output", f"{var}: cannot write to {store.location}: {_error(exc)}")
            return
        self.add(OK, "output", f"{store.location} takes writes and honours conditional writes (If-None-Match, If-Match)")

    # ------------------------------------------------------------------ Dagster instance

    def check_instance(self) -> None:
        from failmap_assets.settings import Deployment

        dep = Deployment.from_env()
        config = None
        if not dep.dagster_home:
            self.add(WARN, "instance", "DAGSTER_HOME is not set: Dagster would use a temporary instance")
        else:
            config = self.check_instance_yaml(os.path.join(dep.dagster_home, "dagster.yaml"))
        pg = _postgres_of(config) if config else None
        if pg is None and dep.uses_postgres:   # no instance file to read: what the environment says
            pg = {"hostname": dep.pg_host, "port": dep.pg_port, "username": dep.pg_user,
                  "password": dep.pg_password, "db_name": dep.pg_db}
        if pg is not None:
            self.check_postgres(pg)

    def check_instance_yaml(self, path: str) -> dict | None:
        import yaml

        try:
            with open(path) as f:
                config = yaml.safe_load(f) or {}
        except FileNotFoundError:
            self.add(WARN, "instance", f"{path} does not exist: Dagster's defaults (SQLite under DAGSTER_HOME, "
                     "no run queue limits); copy deploy/dagster.yaml or deploy/dagster-postgres.yaml there")
            return None
        except (OSError, yaml.YAMLError) as exc:
            self.add(FAIL, "instance", f"{path} cannot be read: {_error(exc)}")
            return None
        if not isinstance(config, dict):
            self.add(FAIL, "instance", f"{path} is not a mapping of settings")
            return None
        missing = sorted({name for name in _env_refs(config) if not os.environ.get(name)})
        if missing:
            self.add(FAIL, "instance", f"{path} reads {', '.join(missing)} from the environment, which "
                     f"{'is' if len(missing) == 1 else 'are'} not set")
        coordinator = config.get("run_coordinator") or {}
        limits = coordinator.get("config") or {}
        storage = "PostgreSQL" if _postgres_of(config) is not None else "SQLite"
        if coordinator.get("class") == "DayRunCoordinator":
            self.add(OK, "instance", f"{path}: {storage} storage, DayRunCoordinator, max_concurrent_runs "
                     f"{limits.get('max_concurrent_runs', '(default)')}")
        else:
            self.add(WARN, "instance", f"{path}: run coordinator {coordinator.get('class') or '(default)'}, not "
                     "DayRunCoordinator: runs of one day are not kept apart by the queue (see deploy/dagster.yaml)")
        return config

    def check_postgres(self, pg: dict) -> None:
        values = {k: _resolve(v) for k, v in pg.items()}
        if values.get("password"):
            self.secrets.append(str(values["password"]))
        missing = [k for k in ("hostname", "username", "db_name") if not values.get(k)]
        if missing:
            self.add(FAIL, "PostgreSQL", f"the connection lacks {', '.join(missing)} (DAGSTER_PG_HOST, "
                     "DAGSTER_PG_USER, DAGSTER_PG_DB)")
            return
        try:
            import psycopg2
        except ImportError:
            self.add(FAIL, "PostgreSQL", "psycopg2 is not installed: pip install 'failmap-assets[postgres]'")
            return
        port = int(values.get("port") or 5432)
        where = f"{values['hostname']}:{port}/{values['db_name']} as {values['username']}"
        try:
            conn = psycopg2.connect(host=values["hostname"], port=port, user=values["username"],
                                    password=values.get("password") or None, dbname=values["db_name"],
                                    connect_timeout=TIMEOUT_S, **(values.get("params") or {}))
            try:
                with conn.cursor() as cur:
                    cur.execute("show server_version")
                    version = cur.fetchone()[0]
            finally:
                conn.close()
        except Exception as exc:  # noqa: BLE001 - refused, timed out, wrong password, no such database
            self.add(FAIL, "PostgreSQL", f"cannot connect to {where}: {_error(exc)}")
            return
        self.add(OK, "PostgreSQL", f"PostgreSQL {version} at {where} answers")

    def check_postgres_sink(self, s) -> None:
        from failmap_assets.sinks.postgres.connection import SINK_OFF, PostgresSinkError, PostgresTarget, connect, describe
        from failmap_assets.sinks.postgres.schema import SCHEMA_VERSION, schema_version

        target = PostgresTarget(dsn=s.postgres_dsn, pg_environment=s.postgres_pg_environment,
                                connect_timeout_s=TIMEOUT_S)
        if not target.enabled:
            self.add(OK, "sink", f"{SINK_OFF} (optional: postgres_sink then does nothing)")
            return
        try:
            conn = connect(target)   # its errors are already scrubbed of the DSN
        except PostgresSinkError as exc:
            self.add(FAIL, "sink", str(exc))
            return
        try:
            where, version = describe(conn), schema_version(conn)
        except Exception as exc:  # noqa: BLE001 - no right to read the version table, a dropped connection
            self.add(FAIL, "sink", f"PostgreSQL sink: cannot read its schema version: {_error(exc)}")
            return
        finally:
            conn.close()
        if version > SCHEMA_VERSION:
            self.add(FAIL, "sink", f"PostgreSQL sink at {where}: schema version {version} is newer than this "
                     f"code's {SCHEMA_VERSION}: upgrade failmap-assets")
            return
        state = "no sink tables yet (the first load creates them)" if version == 0 else (
            f"schema version {version}" + (f", migrated to {SCHEMA_VERSION} by the next load"
                                           if version < SCHEMA_VERSION else ""))
        self.add(OK, "sink", f"PostgreSQL sink at {where}: {state}")

    # ------------------------------------------------------------------ Numba

    def check_numba(self) -> None:
        from failmap_assets.admin.kernels import cache_dir_problem, cache_state, cached_kernels
        from failmap_assets.settings import numba_cache_dir

        where = numba_cache_dir()
        if where:
            problem = cache_dir_problem(where)
            if problem:
                self.add(FAIL, "Numba cache", f"NUMBA_CACHE_DIR={problem}")
                return
        states = [cache_state(k) for k in cached_kernels()]
        cold = [s.kernel for s in states if not s.usable]
        label = f"NUMBA_CACHE_DIR={where}" if where else "NUMBA_CACHE_DIR unset, cache beside the sources"
        if not cold:
            self.add(OK, "Numba cache", f"{label}: all {len(states)} kernels load without compiling")
            return
        stale = sum(1 for s in states if s.entries and not s.usable)
        why = (f"; {stale} have entries for another machine, Numba or source (built on another CPU? set "
               "NUMBA_CPU_NAME=generic at build and run time)" if stale else "")
        self.add(FAIL, "Numba cache", f"{label}: {len(cold)} of {len(states)} kernels have no cached code this "
                 f"machine can load{why}: each process would compile them (about 20-40 s); run `failmap warm` "
                 f"(first: {', '.join(cold[:3])})")


def _postgres_of(config: dict) -> dict | None:
    """The ``postgres_db`` connection of an instance config whose storage is PostgreSQL
    (``storage: postgres:``, as deploy/dagster-postgres.yaml and the Helm chart write it)."""
    storage = config.get("storage") if isinstance(config, dict) else None
    postgres = storage.get("postgres") if isinstance(storage, dict) else None
    if not isinstance(postgres, dict):
        return None
    return dict(postgres.get("postgres_db") or {})


def _resolve(value):
    """A config value, ``{env: NAME}`` read from the environment."""
    if isinstance(value, dict) and set(value) == {"env"}:
        return os.environ.get(value["env"], "")
    return value


def _env_refs(node) -> list[str]:
    """Names of the ``{env: NAME}`` values anywhere in a Dagster instance config."""
    if isinstance(node, dict):
        if set(node) == {"env"} and isinstance(node["env"], str):
            return [node["env"]]
        return [n for v in node.values() for n in _env_refs(v)]
    if isinstance(node, list):
        return [n for v in node for n in _env_refs(v)]
    return []


# What an S3 error code means for the operator.
_HINTS = {
    "SignatureDoesNotMatch": "the secret access key does not belong to this access key",
    "InvalidAccessKeyId": "this endpoint does not know the access key",
    "NoSuchBucket": "the bucket does not exist (or is on another endpoint / region)",
    "AccessDenied": "the identity lacks a permission (see the README: Pointing it at real S3)",
    "PermanentRedirect": "the bucket is in another region (AWS_REGION)",
}


def _error(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    hint = next((h for code, h in _HINTS.items() if code in text), None)
    return f"{type(exc).__name__}: {text[:400]}" + (f" ({hint})" if hint else "")


def scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def main(expect_start: date | None = None, expect_timezone: str | None = None,
         write: Callable[[str], None] = print) -> int:
    from failmap_assets.settings import secret_values

    doctor = Doctor(expect_start, expect_timezone)
    findings = doctor.run()
    secrets = sorted(set(secret_values() + doctor.secrets), key=len, reverse=True)
    for f in findings:
        write(scrub(f"{f.status:<4}  {f.check:<12} {f.text}", secrets))
    failed = sum(f.status == FAIL for f in findings)
    write(f"{'healthy' if not failed else f'{failed} problem(s)'}: {len(findings)} checks")
    sys.stdout.flush()
    return 1 if failed else 0
