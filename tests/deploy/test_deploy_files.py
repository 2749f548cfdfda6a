"""The deployment files that cannot run here (no container engine, no Kubernetes),
checked for what the image, compose and Dagster's Helm chart need: the Dockerfile
through hadolint and its own rules, compose.yaml and the Helm values as YAML against
the keys and values they must hold, both instance configs with one run queue, and the
entrypoint's Numba cache copy for a read-only root file system, run for real."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from failmap_assets.settings import VARIABLES
from tests.support.numba_cache import BIN, clean_env
from tests.support.processes import dying_with_parent
from tests.support.testdata import REPO

DEPLOY = REPO / "deploy"
QUEUE = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())["run_coordinator"]
KNOWN_FAILMAP = {v.name for v in VARIABLES} | {"FAILMAP_HOME"}


def _load(name: str) -> dict:
    return yaml.safe_load((DEPLOY / name).read_text())


def _env_refs(node) -> set[str]:
    if isinstance(node, dict):
        if set(node) == {"env"}:
            return {node["env"]}
        return set().union(*(_env_refs(v) for v in node.values())) if node else set()
    if isinstance(node, list):
        return set().union(*(_env_refs(v) for v in node)) if node else set()
    return set()


# ----------------------------------------------------------------- instance configs

def test_both_instance_configs_have_one_run_queue():
    pg = _load("dagster-postgres.yaml")
    assert pg["run_coordinator"] == QUEUE
    assert pg["run_launcher"]["class"] == "DefaultRunLauncher"
    assert _env_refs(pg["storage"]) == {"DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USER",
                                        "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB"}
    assert pg["storage"]["postgres"]["postgres_db"]["scheme"] == "postgresql+psycopg2"


def test_postgres_instance_config_validates(tmp_path, monkeypatch):
    """Dagster's own schema check of the file (the topology test connects with it)."""
    from dagster._core.instance.config import dagster_instance_config

    shutil.copy(DEPLOY / "dagster-postgres.yaml", tmp_path / "dagster.yaml")
    for name in ("DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB"):
        monkeypatch.setenv(name, "5432" if name.endswith("PORT") else "x")
    config, _ = dagster_instance_config(str(tmp_path))
    assert config["run_coordinator"]["class"] == "DayRunCoordinator"
    assert config["run_monitoring"]["enabled"] is True


# ----------------------------------------------------------------- Dockerfile

def _dockerfile() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), " ".join(rest.split())))
    return out


def test_dockerfile_passes_hadolint():
    done = subprocess.run([str(BIN / "hadolint"), "--no-color", str(DEPLOY / "Dockerfile")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfile_final_stage():
    steps = _dockerfile()
    final = steps[max(i for i, (w, _) in enumerate(steps) if w == "FROM"):]
    words = [w for w, _ in final]
    env = " ".join(r for w, r in final if w == "ENV")
    assert "NUMBA_CACHE_DIR=/opt/failmap/numba-cache" in env and "NUMBA_CPU_NAME=" in env
    assert "DAGSTER_HOME=/var/lib/dagster" in env and "TMPDIR=/tmp" in env
    # non-root, numeric (runAsNonRoot can check it), before the build-time warm-up
    user = words.index("USER")
    assert re.fullmatch(r"\d+:\d+", final[user][1]) and final[user][1].split(":")[0] != "0"
    warm = next(i for i, (w, r) in enumerate(final) if w == "RUN" and r == "failmap warm")
    assert user < warm
    assert dict(final)["ENTRYPOINT"] == '["failmap-entrypoint"]'
    assert "failmap doctor" in " ".join(r for w, r in final if w == "HEALTHCHECK").replace('", "', " ")
    cmd = yaml.safe_load(dict(final)["CMD"])
    assert cmd[:5] == ["dagster", "api", "grpc", "-m", "failmap_assets.definitions"]
    # the build stage installs the project with the extras the deployment needs
    assert any(w == "RUN" and 'pip install ".[postgres,k8s]"' in r for w, r in steps)
    # every file it copies from the context exists
    for w, r in steps:
        if w == "COPY" and "--from=" not in r:
            sources = [p for p in r.split()[:-1] if not p.startswith("--")]
            for src in sources:
                assert (REPO / src).exists(), src


def test_extras_pin_every_dagster_library_to_the_release():
    text = (REPO / "pyproject.toml").read_text()
    pins = dict(re.findall(r'"(dagster[-a-z0-9]*)==([0-9.]+)"', text))
    assert pins["dagster"] == pins["dagster-webserver"] == "1.13.27"
    assert {pins[n] for n in ("dagster-aws", "dagster-postgres", "dagster-k8s")} == {"0.29.27"}


# ----------------------------------------------------------------- entrypoint

def test_entrypoint_copies_a_read_only_numba_cache_into_tmpdir(warm_numba_cache):
    """As on a read-only root file system: NUMBA_CACHE_DIR cannot be written, so the
    entrypoint runs the command with a copy in TMPDIR, from which every kernel loads.
    (As root nothing is read-only: the entrypoint then runs as `nobody`, who cannot run
    this venv's Python, so the kernels are loaded from the copy in a second step.)"""
    root = Path(tempfile.mkdtemp(prefix="failmap-entrypoint-"))
    try:
        image_cache, tmpdir = root / "image-cache", root / "tmp"
        shutil.copytree(warm_numba_cache.path, image_cache)
        for p in [image_cache, *image_cache.rglob("*")]:   # readable by all, as in an image
            p.chmod(0o755 if p.is_dir() else 0o644)
        tmpdir.mkdir()
        as_user = None   # (uid, gid) to run the entrypoint as: not root, as in the image
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            as_user = (nobody.pw_uid, nobody.pw_gid)
            os.chown(tmpdir, nobody.pw_uid, nobody.pw_gid)
            os.chmod(root, 0o755)
        else:
            for p in [image_cache, *image_cache.rglob("*")]:
                if p.is_dir():
                    p.chmod(0o555)
        env = clean_env(NUMBA_CACHE_DIR=str(image_cache), TMPDIR=str(tmpdir), HOME=str(tmpdir))
        entry = ["sh", str(DEPLOY / "entrypoint.sh")]
        copy = tmpdir / "failmap-numba-cache"
        for _ in range(2):   # the second start finds the copy made
            done = subprocess.run(dying_with_parent([*entry, "sh", "-c", 'echo "$NUMBA_CACHE_DIR"'], as_user),
                                  env=env, capture_output=True, text=True, timeout=60, cwd=tmpdir)
            assert done.returncode == 0, done.stderr[-3000:]
            assert done.stdout.strip() == str(copy)
        assert (copy / ".complete").exists()
        assert sorted(p.name for p in tmpdir.iterdir()) == ["failmap-numba-cache"]
        probe = ("from failmap_assets.admin.kernels import cache_state, cached_kernels; "
                 "states = [cache_state(k) for k in cached_kernels()]; "
                 "print(sum(s.usable > 0 for s in states), len(states))")
        done = subprocess.run([sys.executable, "-c", probe], env={**env, "NUMBA_CACHE_DIR": str(copy)},
                              capture_output=True, text=True, timeout=120)
        usable, total = done.stdout.split()
        assert usable == total and int(total) > 40, done.stdout + done.stderr[-2000:]
        # a writable cache is used where it is
        done = subprocess.run(dying_with_parent([*entry, "sh", "-c", 'echo "$NUMBA_CACHE_DIR"'], as_user),
                              env={**env, "NUMBA_CACHE_DIR": str(tmpdir)}, capture_output=True, text=True,
                              timeout=30)
        assert done.stdout.strip() == str(tmpdir)
    finally:
        for p in [root, *root.rglob("*")]:
            if p.is_dir():
                p.chmod(0o755)
        shutil.rmtree(root, ignore_errors=True)


# ----------------------------------------------------------------- compose

def test_compose_services_and_their_wiring():
    compose = _load("compose.yaml")
    services = compose["services"]
    assert {"postgres", "seaweedfs", "buckets", "code", "daemon", "webserver"} <= set(services)
    ours = {name: s for name, s in services.items() if s.get("build", {}).get("dockerfile") == "deploy/Dockerfile"}
    assert set(ours) == {"buckets", "code", "daemon", "webserver"}
    for name, s in ours.items():
        assert (REPO / "deploy" / s["build"]["context"] / s["build"]["dockerfile"]).is_file()
        assert s["read_only"] is True and "/tmp" in s["tmpfs"], name
        env = s["environment"]
        # every variable the instance config reads, and only settings that exist
        assert _env_refs(_load("dagster-postgres.yaml")) <= set(env), name
        assert {k for k in env if k.startswith("FAILMAP_")} <= KNOWN_FAILMAP, name
        assert env["DAGSTER_HOME"] == "/var/lib/dagster"
        assert "./dagster-postgres.yaml:/var/lib/dagster/dagster.yaml:ro" in s["volumes"]
        assert (DEPLOY / "dagster-postgres.yaml").is_file()
    pg = services["postgres"]["environment"]
    env = ours["code"]["environment"]
    assert (env["DAGSTER_PG_HOST"], env["DAGSTER_PG_USER"], env["DAGSTER_PG_DB"]) == (
        "postgres", pg["POSTGRES_USER"], pg["POSTGRES_DB"])
    assert env["DAGSTER_PG_PASSWORD"] == pg["POSTGRES_PASSWORD"]
    # the code server listens where the workspace the daemon and webserver load points
    code = ours["code"]["command"]
    assert code[:5] == ["dagster", "api", "grpc", "-m", "failmap_assets.definitions"]
    [location] = _load("workspace.yaml")["load_from"]
    grpc = location["grpc_server"]
    assert grpc["host"] == "code" and str(grpc["port"]) == code[code.index("-p") + 1]
    for name in ("daemon", "webserver"):
        cmd = ours[name]["command"]
        assert cmd[cmd.index("-w") + 1] == "/opt/failmap/workspace.yaml"
        assert ours[name]["depends_on"]["code"]["condition"] == "service_healthy"
    assert ours["daemon"]["command"][:2] == ["dagster-daemon", "run"]
    assert ours["webserver"]["command"][0] == "dagster-webserver"
    # the UI only on the host's loopback
    assert all(p.startswith("127.0.0.1:") for p in ours["webserver"]["ports"])
    assert "failmap doctor" in " ".join(ours["code"]["healthcheck"]["test"])


# ----------------------------------------------------------------- Helm

# Keys of the chart's values schema (helm/dagster/schema in dagster-io/dagster, the
# pydantic models its values.schema.json is generated from), for the parts we set.
CHART_TOP = {"dagsterWebserver", "dagster-user-deployments", "postgresql", "generatePostgresqlPasswordSecret",
             "generateCeleryConfigSecret", "rabbitmq", "redis", "flower", "ingress", "imagePullSecrets",
             "computeLogManager", "scheduler", "runLauncher", "pythonLogs", "dagsterDaemon", "busybox", "migrate",
             "telemetry", "serviceAccount", "global", "retention", "concurrency", "additionalInstanceConfig"}
USER_DEPLOYMENT = {"name", "image", "dagsterApiGrpcArgs", "codeServerArgs", "includeConfigInLaunchedRuns", "port",
                   "env", "envConfigMaps", "envSecrets", "annotations", "nodeSelector", "affinity", "tolerations",
                   "podSecurityContext", "securityContext", "resources", "livenessProbe", "readinessProbe",
                   "startupProbe", "labels", "volumeMounts", "volumes", "schedulerName"}
K8S_RUN_LAUNCHER = {"image", "imagePullPolicy", "jobNamespace", "loadInclusterConfig", "kubeconfigFile",
                    "envConfigMaps", "envSecrets", "envVars", "volumeMounts", "volumes", "labels",
                    "failPodOnRunFailure", "resources", "schedulerName", "securityContext", "runK8sConfig"}
DAEMON = {"enabled", "image", "runCoordinator", "heartbeatTolerance", "env", "envConfigMaps", "envSecrets",
          "deploymentLabels", "labels", "nodeSelector", "affinity", "tolerations", "podSecurityContext",
          "securityContext", "resources", "livenessProbe", "readinessProbe", "startupProbe", "annotations",
          "runMonitoring", "runRetries", "sensors", "schedules", "schedulerName", "volumeMounts", "volumes"}
WEBSERVER = {"replicaCount", "image", "nameOverride", "pathPrefix", "service", "workspace", "env", "envConfigMaps",
             "envSecrets", "deploymentLabels", "labels", "nodeSelector", "affinity", "tolerations",
             "podSecurityContext", "securityContext", "resources", "readinessProbe", "livenessProbe", "startupProbe",
             "annotations", "enableReadOnly", "dbStatementTimeout", "dbPoolRecycle", "logLevel", "schedulerName",
             "volumeMounts", "volumes"}
POSTGRESQL = {"image", "enabled", "postgresqlHost", "postgresqlUsername", "postgresqlPassword", "postgresqlDatabase",
              "postgresqlParams", "postgresqlScheme", "service"}


def test_helm_values_for_the_official_chart():
    values = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
    assert set(values) <= CHART_TOP
    assert set(values["dagsterWebserver"]) <= WEBSERVER
    assert set(values["dagsterDaemon"]) <= DAEMON
    assert set(values["postgresql"]) <= POSTGRESQL
    images = set()
    # the user deployment: this image, our module, settings and secrets as environment
    users = values["dagster-user-deployments"]
    assert users["enabled"] and users["enableSubchart"]
    [dep] = users["deployments"]
    assert set(dep) <= USER_DEPLOYMENT and {"name", "image", "port"} <= set(dep)
    assert dep["dagsterApiGrpcArgs"] == ["-m", "failmap_assets.definitions"]
    assert dep["envSecrets"] and dep["envConfigMaps"]
    assert dep["readinessProbe"]["exec"]["command"] == ["failmap-entrypoint", "failmap", "doctor"]
    images.add((dep["image"]["repository"], dep["image"]["tag"]))
    # runs: Kubernetes Jobs with the same settings, secrets and writable volumes
    launcher = values["runLauncher"]
    assert launcher["type"] == "K8sRunLauncher"
    k8s = launcher["config"]["k8sRunLauncher"]
    assert set(k8s) <= K8S_RUN_LAUNCHER
    assert k8s["envSecrets"] == dep["envSecrets"] and k8s["envConfigMaps"] == dep["envConfigMaps"]
    assert {m["mountPath"] for m in k8s["volumeMounts"]} >= {"/tmp", values["global"]["dagsterHome"]}
    assert k8s["securityContext"]["readOnlyRootFilesystem"] is True
    # the daemon and the webserver import our coordinator: they run this image too
    for part in ("dagsterDaemon", "dagsterWebserver"):
        images.add((values[part]["image"]["repository"], values[part]["image"]["tag"]))
    assert len(images) == 1
    coordinator = values["dagsterDaemon"]["runCoordinator"]
    assert coordinator["enabled"] and coordinator["type"] == "CustomRunCoordinator"
    custom = coordinator["config"]["customRunCoordinator"]
    assert {k: custom[k] for k in ("module", "class", "config")} == {k: QUEUE[k] for k in ("module", "class", "config")}
    # secrets only by reference
    assert values["global"]["postgresqlSecretName"] and values["postgresql"]["postgresqlPassword"] == ""
    assert values["generatePostgresqlPasswordSecret"] is False
    assert values["postgresql"]["postgresqlScheme"] == "postgresql+psycopg2"
    text = (DEPLOY / "helm" / "values.yaml").read_text()
    assert not re.search(r"(?i)(secret_access_key|password)\s*:\s*['\"]?[^'\"\s{]", text.replace(
        'postgresqlPassword: ""', "")), "a secret written into the values"
