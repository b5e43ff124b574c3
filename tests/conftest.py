"""Shared fixtures. The integration fixtures start the real broker once per test run."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.core import broker
from infra.core.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
PAYLOADS = ROOT / "infra" / "samples"
SECRETS = "shop=shop-secret,support=support-secret"


def make_settings(**env: str) -> Settings:
    base = {
        "WAFLOW_APP_SECRETS": SECRETS,
        "WAFLOW_VERIFY_TOKEN": "verify-me",
        "WAFLOW_DATA_DIR": str(Path(tempfile.gettempdir()) / "waflow-unit"),
    }
    return Settings.from_env({**base, **env})


@pytest.fixture(scope="session")
def payloads() -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(PAYLOADS.glob("*.json"))}


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """The real broker: WAFLOW_KAFKA_BOOTSTRAP if set, else one started here (fails loudly)."""
    given = os.environ.get("WAFLOW_KAFKA_BOOTSTRAP")
    if given:
        yield given
        return
    data = Path(tempfile.mkdtemp(prefix="waflow-kafka-"))
    base = free_base_port()  # never another test run's broker, on a shared machine
    try:
        yield broker.start(data, base_port=base, jars_dir=ROOT / ".waflow")
    finally:
        broker.stop(data, base_port=base)
        shutil.rmtree(data, ignore_errors=True)


def free_base_port() -> int:
    """A free port whose controller twin (the port + 1000, infra/core/broker.py) is free too."""
    for _ in range(100):
        with socket.socket() as listener, socket.socket() as twin:
            listener.bind(("127.0.0.1", 0))
            port = int(listener.getsockname()[1])
            if port + 1000 >= 65536:
                continue
            try:
                twin.bind(("127.0.0.1", port + 1000))
            except OSError:
                continue
            return port
    raise RuntimeError("no free pair of ports for a test broker")


@pytest.fixture
def chdb_url(tmp_path: Path) -> str:
    return f"chdb://{tmp_path / 'clickhouse'}"
