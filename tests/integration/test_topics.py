"""`waflow topics` on the real broker: a changed retention and partition count are applied, the
dry run changes nothing, and a config set by hand on a topic survives."""

from __future__ import annotations

from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from infra.core import kafka
from infra.core.settings import Settings
from infra.core.topics import DAY_MS, declared, reconcile_topics
from tests.integration.stages import stage_env


async def raw_state(settings: Settings) -> tuple[int, dict[str, str]]:
    admin = AIOKafkaAdminClient(**kafka.client(settings))
    await admin.start()
    try:
        [topic] = await admin.describe_topics([settings.topics.raw])
        resource = ConfigResource(ConfigResourceType.TOPIC, settings.topics.raw)
        [answer] = await admin.describe_configs([resource])
        config = {e[0]: e[1] for e in answer.resources[0][4]}
        return len(topic["partitions"]), config
    finally:
        await admin.close()


async def set_by_hand(settings: Settings, configs: dict[str, str]) -> None:
    admin = AIOKafkaAdminClient(**kafka.client(settings))
    await admin.start()
    try:
        resource = ConfigResource(ConfigResourceType.TOPIC, settings.topics.raw, configs)
        await admin.alter_configs([resource])
    finally:
        await admin.close()


async def test_retention_and_partitions_follow_their_settings(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    env = stage_env(kafka_bootstrap, tmp_path, WAFLOW_RAW_PARTITIONS="2")
    before = Settings.from_env(env)
    created = await reconcile_topics(before)
    assert {c.topic for c in created if c.create} == {s.name for s in declared(before)}
    assert await reconcile_topics(before, dry_run=True) == []
    _, config = await raw_state(before)
    own = {k: config[k] for k in ("retention.ms", "max.message.bytes", "min.insync.replicas")}
    await set_by_hand(before, {**own, "segment.ms": "3600000"})

    after = Settings.from_env(
        {**env, "WAFLOW_RAW_RETENTION_DAYS": "30", "WAFLOW_RAW_PARTITIONS": "3"}
    )
    planned = await reconcile_topics(after, dry_run=True)
    lines = [line for change in planned for line in change.lines()]
    assert f"set {after.topics.raw} retention.ms: {14 * DAY_MS} -> {30 * DAY_MS}" in lines
    assert any(line.startswith(f"grow {after.topics.raw} partitions: 2 -> 3") for line in lines)
    partitions, config = await raw_state(after)  # the dry run changed nothing
    assert (partitions, config["retention.ms"]) == (2, str(14 * DAY_MS))

    await reconcile_topics(after)
    partitions, config = await raw_state(after)
    assert partitions == 3
    assert config["retention.ms"] == str(30 * DAY_MS)
    assert config["segment.ms"] == "3600000"  # set by hand, kept
    assert await reconcile_topics(after, dry_run=True) == []
    # Fewer partitions declared than the topic has: a warning, never a change.
    fewer = Settings.from_env({**env, "WAFLOW_RAW_RETENTION_DAYS": "30"})
    [warned] = [
        c for c in await reconcile_topics(fewer, dry_run=True) if c.topic == fewer.topics.raw
    ]
    assert "cannot remove partitions" in warned.warning
