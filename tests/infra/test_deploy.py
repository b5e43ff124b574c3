"""The deployment files, checked by real tools that work offline: docker-compose's own parser for
the compose file, kubernetes-validate (the Kubernetes OpenAPI schemas) for the manifests, and
the properties that lose data or break probes when they are wrong."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.conftest import ROOT

K8S = sorted((ROOT / "infra" / "k8s").glob("*.yaml"))
STAGES = ("ingest", "streams", "sink")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The compose file as docker-compose resolves it (anchors merged, paths absolute)."""
    tool = shutil.which("docker-compose")
    assert tool, (
        "infra/docker-compose.yml is validated with docker-compose: apt-get install docker-compose"
    )
    done = subprocess.run(
        [tool, "-f", str(ROOT / "infra" / "docker-compose.yml"), "config"],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    resolved: dict[str, Any] = yaml.safe_load(done.stdout)
    return resolved


def test_kafka_writes_its_log_on_the_volume(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    mounts = {v.split(":")[1] for v in kafka["volumes"] if v.split(":")[0] == "kafka-data"}
    assert kafka["environment"]["KAFKA_LOG_DIRS"] in mounts


def test_every_service_restarts_and_every_long_running_one_has_a_health_check(
    compose: dict[str, Any],
) -> None:
    for name, service in compose["services"].items():
        assert service.get("restart") in ("unless-stopped", "on-failure", "always"), name
        if name != "topics":  # a one-shot job
            assert service["healthcheck"]["test"], name
            assert not service["healthcheck"].get("disable"), name


def test_stages_take_secrets_as_files_and_probe_their_admin_port(
    compose: dict[str, Any],
) -> None:
    for stage in STAGES:
        env = compose["services"][stage]["environment"]
        secrets = {s["source"] for s in compose["services"][stage]["secrets"]}
        for name in ("WAFLOW_APP_SECRETS", "WAFLOW_VERIFY_TOKEN", "WAFLOW_CLICKHOUSE_PASSWORD"):
            assert name not in env and env[f"{name}_FILE"].startswith("/run/secrets/"), stage
            assert env[f"{name}_FILE"].removeprefix("/run/secrets/") in secrets
        port = env["WAFLOW_ADMIN_PORT"]
        assert f":{port}/healthz" in " ".join(compose["services"][stage]["healthcheck"]["test"])
        assert "WAFLOW_CLICKHOUSE_URL" in env and "@" in env["WAFLOW_CLICKHOUSE_URL"]
        assert ":" not in env["WAFLOW_CLICKHOUSE_URL"].split("//")[1].split("@")[0]  # no password


def test_image_runs_as_non_root_with_its_data_directory_owned() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    lines = dockerfile.splitlines()
    data = next(line for line in lines if line.startswith("ENV WAFLOW_DATA_DIR=")).split("=")[1]
    user = next(line for line in lines if line.startswith("USER ")).split()[1].split(":")[0]
    assert user != "0" and user != "root"
    creates = next(line for line in lines if f"mkdir -p {data}" in line)
    assert f"chown {user}" in creates
    assert lines.index(creates) < lines.index(f"USER {user}:{user}")
    assert "COPY tests" not in dockerfile and "COPY . " not in dockerfile


def manifests() -> list[tuple[Path, dict[str, Any]]]:
    return [(path, doc) for path in K8S for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.mark.parametrize("path", K8S, ids=lambda p: p.name)
def test_manifests_validate_strictly_against_the_kubernetes_schemas(path: Path) -> None:
    for doc in yaml.safe_load_all(path.read_text()):
        if doc:
            kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)


def test_manifests_probe_the_admin_port_mount_secrets_and_keep_stream_state() -> None:
    kinds = {(doc["kind"], doc["metadata"]["name"]) for _, doc in manifests()}
    assert ("StatefulSet", "waflow-streams") in kinds
    for stage in STAGES:
        assert ("PodDisruptionBudget", f"waflow-{stage}") in kinds
    config = next(doc for _, doc in manifests() if doc["kind"] == "ConfigMap")["data"]
    for _, doc in manifests():
        if doc["kind"] not in ("Deployment", "StatefulSet"):
            continue
        pod = doc["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        [container] = pod["containers"]
        admin = next(p for p in container["ports"] if p["name"] == "admin")
        assert str(admin["containerPort"]) == config["WAFLOW_ADMIN_PORT"]
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert config["WAFLOW_KAFKA_SASL_PASSWORD_FILE"].startswith(mounts["secrets"])
    streams = next(doc for _, doc in manifests() if doc["kind"] == "StatefulSet")
    [claim] = streams["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
