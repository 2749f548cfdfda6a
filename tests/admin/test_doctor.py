"""`failmap doctor` as the image's health check runs it: a process with the deployment's
environment, exit code 0 when healthy, 1 with the problem in plain words otherwise, and
never a secret in what it prints."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.support.numba_cache import BIN, clean_env
from tests.support.rclone_server import rclone_s3  # noqa: F401
from tests.support.testdata import REPO


def doctor(env: dict[str, str], *args: str) -> tuple[int, str]:
    done = subprocess.run([str(BIN / "failmap"), "doctor", *args], env=env, capture_output=True, text=True,
                          timeout=120)
    return done.returncode, done.stdout + done.stderr


def lines(output: str, status: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(status)]


@pytest.fixture
def local_env(tmp_path: Path, warm_numba_cache) -> dict[str, str]:
    """A healthy deployment on local folders: sources exist, output does not yet, the
    instance is deploy/dagster.yaml, the Numba cache is warm."""
    for b in ("a", "b", "stdf"):
        (tmp_path / b).mkdir()
    home = tmp_path / "dagster"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    return clean_env(FAILMAP_SOURCE_A=str(tmp_path / "a"), FAILMAP_SOURCE_B=str(tmp_path / "b"),
                     FAILMAP_SOURCE_STDF=str(tmp_path / "stdf"), FAILMAP_OUTPUT=str(tmp_path / "out"),
                     FAILMAP_START_DATE="2026-01-01", FAILMAP_TIMEZONE="Asia/Seoul", DAGSTER_HOME=str(home),
                     NUMBA_CACHE_DIR=str(warm_numba_cache.path))


def test_healthy_local_folders(local_env):
    code, out = doctor(local_env, "--expect-start", "2026-01-01", "--expect-timezone", "Asia/Seoul")
    assert code == 0, out
    assert not lines(out, "FAIL") and not lines(out, "warn"), out
    assert "partition start 2026-01-01, fab time zone Asia/Seoul" in out
    assert "all 51 kernels load without compiling" in out or "kernels load without compiling" in out
    assert "DayRunCoordinator, max_concurrent_runs 2" in out
    assert out.strip().splitlines()[-1].startswith("healthy")


def test_partition_start_and_time_zone_that_differ_from_the_daemons_fail(local_env):
    code, out = doctor(local_env, "--expect-start", "2025-12-01", "--expect-timezone", "UTC")
    assert code == 1
    assert "partition start is 2026-01-01, expected 2025-12-01" in out
    assert "fab time zone is Asia/Seoul, expected UTC" in out


def test_bad_failmap_values_are_all_named(local_env):
    env = {**local_env, "FAILMAP_MAX_WORKERS": "many", "FAILMAP_TIMEZONE": "Asia/Seol", "FAILMAP_OUTPT": "/x"}
    code, out = doctor(env)
    assert code == 1
    assert "FAILMAP_MAX_WORKERS='many' is not an integer" in out
    assert "FAILMAP_TIMEZONE='Asia/Seol' is not a time zone" in out
    assert any("FAILMAP_OUTPT is set, but no setting has that name" in line for line in lines(out, "warn"))


def test_unwritable_output(local_env, tmp_path):
    # A regular file where the output folder should be: no one, root included, can write below it.
    (tmp_path / "blocker").write_text("a file, not a folder")
    code, out = doctor({**local_env, "FAILMAP_OUTPUT": str(tmp_path / "blocker" / "out")})
    assert code == 1
    [line] = lines(out, "FAIL")
    assert "output" in line and "cannot write to" in line


def test_missing_source_folder(local_env, tmp_path):
    code, out = doctor({**local_env, "FAILMAP_SOURCE_B": str(tmp_path / "typo")})
    assert code == 1
    assert f"the folder {tmp_path / 'typo'} does not exist" in out


def test_cold_numba_cache(local_env, tmp_path):
    code, out = doctor({**local_env, "NUMBA_CACHE_DIR": str(tmp_path / "cold")})
    assert code == 1
    [line] = lines(out, "FAIL")
    assert "Numba cache" in line and "run `failmap warm`" in line


def test_instance_config_naming_unset_variables(local_env):
    home = Path(local_env["DAGSTER_HOME"])
    shutil.copy(REPO / "deploy" / "dagster-postgres.yaml", home / "dagster.yaml")
    code, out = doctor(local_env)
    assert code == 1
    assert "DAGSTER_PG_DB, DAGSTER_PG_HOST, DAGSTER_PG_PASSWORD, DAGSTER_PG_PORT, DAGSTER_PG_USER" in out


def _s3_env(local_env: dict, server, secret: str, bucket: str) -> dict[str, str]:
    env = {k: v for k, v in local_env.items() if not k.startswith("FAILMAP_SOURCE") and k != "FAILMAP_OUTPUT"}
    env.update(AWS_ACCESS_KEY_ID=server.access_key, AWS_SECRET_ACCESS_KEY=secret, AWS_REGION=server.region,
               AWS_CONFIG_FILE="/nonexistent/aws-config", AWS_SHARED_CREDENTIALS_FILE="/nonexistent/aws-credentials",
               FAILMAP_S3_ENDPOINT_URL=server.endpoint_url,
               FAILMAP_SOURCE_A=f"s3://{bucket}/a/", FAILMAP_SOURCE_B=f"s3://{bucket}/b/",
               FAILMAP_SOURCE_STDF=f"s3://{bucket}/stdf/", FAILMAP_OUTPUT=f"s3://{bucket}/out/")
    return env


@pytest.mark.s3
def test_seaweedfs_healthy_and_with_a_wrong_secret(local_env, s3_server):
    bucket = s3_server.make_bucket(f"doc-{uuid.uuid4().hex[:12]}")
    code, out = doctor(_s3_env(local_env, s3_server, s3_server.secret_key, bucket))
    assert code == 0, out
    assert s3_server.secret_key not in out
    assert f"s3://{bucket}/out/ takes writes and honours conditional writes" in out

    wrong = "wrong-" + uuid.uuid4().hex
    code, out = doctor(_s3_env(local_env, s3_server, wrong, bucket))
    assert code == 1
    failed = lines(out, "FAIL")
    assert len(failed) == 4 and all("SignatureDoesNotMatch" in line for line in failed), out
    assert wrong not in out and s3_server.secret_key not in out
    assert f"access key ...{s3_server.access_key[-4:]}" in out


@pytest.mark.s3
def test_store_that_ignores_conditional_writes(local_env, rclone_s3):  # noqa: F811
    code, out = doctor(_s3_env(local_env, rclone_s3, rclone_s3.secret_key, "rclone-bucket"))
    assert code == 1
    [line] = lines(out, "FAIL")
    assert line.split()[1] == "output" and "ignores conditional requests" in line
    assert rclone_s3.secret_key not in out


from tests.support.postgres_sink import postgres_session, sink_db  # noqa: E402,F401


def test_the_postgres_sink_is_checked_when_on_and_never_printed(local_env, sink_db):
    code, out = doctor(local_env)
    assert code == 0 and "PostgreSQL sink off: set FAILMAP_POSTGRES_DSN" in out, out
    code, out = doctor({**local_env, "FAILMAP_POSTGRES_DSN": sink_db.dsn()})
    assert code == 0, out
    assert f"PostgreSQL sink at {sink_db.user}@{sink_db.host}:{sink_db.port}/{sink_db.db}: no sink tables yet" in out
    wrong = sink_db.dsn().replace(sink_db.password, "wrong-password-77")
    code, out = doctor({**local_env, "FAILMAP_POSTGRES_DSN": wrong})
    assert code == 1 and "cannot connect to PostgreSQL" in out, out
    assert "wrong-password-77" not in out and sink_db.password not in out
