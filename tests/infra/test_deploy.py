"""The Docker artefacts: compose accepted by docker-compose, one small non-root image."""

from __future__ import annotations

import os
import shutil
import subprocess

from tests.conftest import ROOT


def test_compose_file_is_accepted_by_docker_compose() -> None:
    tool = shutil.which("docker-compose")
    assert tool, (
        "infra/docker-compose.yml is validated with docker-compose: apt-get install docker-compose"
    )
    env = {**os.environ, "WAFLOW_APP_SECRETS": "app=s", "WAFLOW_VERIFY_TOKEN": "t"}
    done = subprocess.run(
        [tool, "-f", str(ROOT / "infra" / "docker-compose.yml"), "config"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    for service in ("kafka:", "clickhouse:", "ingest:", "streams:", "sink:"):
        assert service in done.stdout
    # Prometheus in the compose network must reach the stages' /metrics.
    assert done.stdout.count("WAFLOW_METRICS_HOST: 0.0.0.0") >= 3


def test_one_non_root_image_for_every_stage() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "USER waflow" in dockerfile and 'ENTRYPOINT ["waflow"]' in dockerfile
    assert "slim" in dockerfile.splitlines()[1] and "--no-cache-dir" in dockerfile
    for package in ("ingest", "streams", "schemas", "sink", "infra"):
        assert f"COPY {package} {package}" in dockerfile
    assert "COPY tests" not in dockerfile and "COPY . " not in dockerfile
