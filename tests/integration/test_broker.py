"""The local broker: a cached second fetch, and a 3-broker KRaft cluster started the same way."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from infra.core import broker
from tests.conftest import ROOT, free_base_port


def test_second_fetch_uses_the_cache_without_maven(monkeypatch: pytest.MonkeyPatch) -> None:
    broker.fetch(ROOT / ".waflow")

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("fetch ran a command although the jars are cached")

    monkeypatch.setattr(subprocess, "run", no_network)
    lib = broker.fetch(ROOT / ".waflow")
    assert any(p.name.startswith("kafka_2.13-") for p in lib.glob("*.jar"))


async def test_three_broker_cluster(tmp_path: Path) -> None:
    base = free_base_port(3)
    bootstrap = broker.start(tmp_path, count=3, base_port=base, jars_dir=ROOT / ".waflow")
    try:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            answer = await admin.create_topics(
                [NewTopic("rf3", 3, 3, topic_configs={"min.insync.replicas": "2"})]
            )
            assert answer.topic_errors[0][1] == 0
            cluster = await admin.describe_cluster()
            assert sorted(b["node_id"] for b in cluster["brokers"]) == [1, 2, 3]
        finally:
            await admin.close()
    finally:
        broker.stop(tmp_path, count=3, base_port=base)
    assert not any(broker.is_running(n) for n in broker.nodes_for(tmp_path, 3, base))
