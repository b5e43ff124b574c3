"""Shared fixtures. The integration fixtures start the real broker once per test run."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

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


def free_base_port(count: int = 1) -> int:
    """A base port such that `count` ports from it, and their controller twins (each port
    + 1000, infra/core/broker.py), are free now. Fixed ports collide on a shared machine:
    any client's ephemeral port may sit on one."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = int(probe.getsockname()[1])
        wanted = [base + i for i in range(count)] + [base + 1000 + i for i in range(count)]
        if wanted[-1] >= 65536:
            continue
        held: list[socket.socket] = []
        try:
            for port in wanted:
                sock = socket.socket()
                held.append(sock)
                sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for sock in held:
                sock.close()
        return base
    raise RuntimeError(f"no {count} free pairs of ports for a test broker")


@pytest.fixture
def chdb_url(tmp_path: Path) -> str:
    return f"chdb://{tmp_path / 'clickhouse'}"


@pytest.fixture
def chdb_client(chdb_url: str) -> Iterator[Client]:
    """A client of the embedded engine, closed after the test: the engine serves one path per
    process, so a client left open would fail every later test's own path."""
    from infra.core.clickhouse import connect

    client = connect(chdb_url)
    try:
        yield client
    finally:
        client.close()
