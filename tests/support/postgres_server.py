"""A real PostgreSQL server for the deployment tests, on 127.0.0.1, started and stopped by
the PID we started (like SeaweedFS).

The binaries come from the `pgserver` package on PyPI (a dev extra: PostgreSQL 16 in a
wheel); without it, from a system installation (`initdb` and `postgres` on PATH or under
/usr/lib/postgresql/*/bin). Neither: the test fails and says so. PostgreSQL refuses to
run as root, so when the tests run as root (CI does) the server runs as `nobody`, in a
data folder of its own under the system temp folder (pytest's are private to root).
Durability is off (fsync, synchronous commit): a test server, not a copy of production.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.processes import stop_process
from tests.support.processes import dying_with_parent
from tests.support.s3_server import _free_ports, _log_tail

READY_TIMEOUT_S = 60


@dataclass
class PgServer:
    host: str
    port: int
    user: str
    password: str = field(repr=False)
    db: str

    def env(self, **override: str) -> dict[str, str]:
        """The DAGSTER_PG_* variables deploy/dagster-postgres.yaml reads."""
        env = {"DAGSTER_PG_HOST": self.host, "DAGSTER_PG_PORT": str(self.port), "DAGSTER_PG_USER": self.user,
               "DAGSTER_PG_PASSWORD": self.password, "DAGSTER_PG_DB": self.db}
        env.update(override)
        return env

    def dsn(self, db: str | None = None, **extra: str) -> str:
        """A libpq connection string (with the password: a secret)."""
        words = {"host": self.host, "port": str(self.port), "user": self.user, "password": self.password,
                 "dbname": db or self.db, **extra}
        return " ".join(f"{k}={v}" for k, v in words.items())

    def connect(self, db: str | None = None):
        import psycopg2

        return psycopg2.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                                dbname=db or self.db, connect_timeout=3)


def postgres_bin_dir() -> Path:
    """Where initdb and postgres are: the pgserver wheel first, then the system."""
    spec = importlib.util.find_spec("pgserver")  # not imported: its import has side effects
    candidates = []
    if spec is not None and spec.submodule_search_locations:
        candidates.append(Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin")
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(os.path.realpath(on_path)).parent)
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: p.parent.name, reverse=True)
    for d in candidates:
        if (d / "initdb").is_file() and (d / "postgres").is_file():
            return d
    pytest.fail("no PostgreSQL server binaries: install the dev extras (pgserver) or a PostgreSQL server "
                "(initdb and postgres on PATH or under /usr/lib/postgresql/*/bin)", pytrace=False)


def _as_user() -> dict:
    """The `nobody` user and group to drop root to (PostgreSQL will not run as root)."""
    if os.geteuid() != 0:
        return {}
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.fail("running as root and there is no `nobody` user to run PostgreSQL as", pytrace=False)
    return {"user": nobody.pw_uid, "group": nobody.pw_gid}


def start_postgres(bin_dir: Path | None = None) -> tuple[subprocess.Popen, PgServer, Path]:
    """initdb + postgres on a free loopback port, a password-protected user and a
    database `dagster`; returns the server process (the postmaster itself), the
    connection facts and the folder to remove afterwards."""
    bin_dir = bin_dir or postgres_bin_dir()
    root = Path(tempfile.mkdtemp(prefix="failmap-pg-"))
    user = _as_user()
    password = secrets.token_urlsafe(18)
    (root / "pw").write_text(password)
    (root / "run").mkdir()
    if user:
        for p in (root, root / "pw", root / "run"):
            os.chown(p, user["user"], user["group"])
    env = {"PATH": os.environ.get("PATH", ""), "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TZ": "UTC"}
    as_user = (user["user"], user["group"]) if user else None
    init = subprocess.run(dying_with_parent(
        [str(bin_dir / "initdb"), "-D", str(root / "data"), "-U", "failmap", "--pwfile", str(root / "pw"),
         "--auth", "scram-sha-256", "-E", "UTF8", "--no-sync", "--no-instructions"], as_user),
        env=env, cwd=root, capture_output=True, text=True, timeout=120)
    if init.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"initdb failed ({bin_dir}):\n{init.stdout[-2000:]}\n{init.stderr[-2000:]}", pytrace=False)
    port, = _free_ports(1)
    log_path = root / "postgres.log"
    with open(log_path, "wb") as log:
        if user:
            os.chown(log_path, user["user"], user["group"])
        proc = subprocess.Popen(dying_with_parent(
            [str(bin_dir / "postgres"), "-D", str(root / "data"), "-h", "127.0.0.1", "-p", str(port),
             "-k", str(root / "run"), "-c", "fsync=off", "-c", "synchronous_commit=off",
             "-c", "full_page_writes=off", "-c", "max_connections=200"], as_user),
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root)
    server = PgServer("127.0.0.1", port, "failmap", password, "postgres")
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            shutil.rmtree(root, ignore_errors=True)
            pytest.fail(f"postgres exited with code {proc.returncode}:\n{_log_tail(log_path)}", pytrace=False)
        try:
            conn = server.connect()
            break
        except Exception:  # noqa: BLE001 - not accepting connections yet
            if time.monotonic() > deadline:
                stop_postgres(proc, root)
                pytest.fail(f"postgres did not accept connections in {READY_TIMEOUT_S} s", pytrace=False)
            time.sleep(0.2)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("create database dagster")
    conn.close()
    server.db = "dagster"
    return proc, server, root


def stop_postgres(proc: subprocess.Popen, root: Path) -> None:
    # SIGINT is PostgreSQL's "fast" shutdown (SIGTERM waits for clients to leave).
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
    stop_process(proc)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres() -> Iterator[PgServer]:
    proc, server, root = start_postgres()
    try:
        yield server
    finally:
        stop_postgres(proc, root)
