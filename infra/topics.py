"""Every Kafka topic waflow uses, declared in one place and created idempotently."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from murmurhash2 import murmurhash2

from infra import kafka
from infra.errors import BrokerError
from infra.settings import Settings

DAY_MS = 24 * 3600 * 1000
KAFKA_SEED = 0x9747B28C


def partition_for(key: bytes, count: int) -> int:
    """The partition Kafka's default partitioner gives `key` (murmur2), for the writers that
    place records themselves: it keeps each key where any other producer would put it."""
    hashed: int = murmurhash2(key, KAFKA_SEED)
    return (hashed & 0x7FFFFFFF) % count


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: tuple[tuple[str, str], ...]


def declared(settings: Settings) -> list[TopicSpec]:
    """The topics and why each is configured so.

    The raw topic is the only copy of what the platform sent (it has no history API): it keeps
    `raw_retention_days` so `waflow replay` can rebuild everything after a normalizer fix. Typed
    topics are keyed by their record id; they are not compacted because downstream consumers read
    them as event streams and the sink dedups on the id itself.
    """
    t = settings.topics
    n = settings.raw_partitions
    isr = str(min(2, settings.replication_factor))
    common = (("min.insync.replicas", isr), ("compression.type", "producer"))
    raw_ms = str(settings.raw_retention_days * DAY_MS)
    typed_ms = str(max(settings.dedup_window_days + 7, 14) * DAY_MS)
    return [
        TopicSpec(t.raw, n, (*common, ("retention.ms", raw_ms), ("max.message.bytes", "8388608"))),
        TopicSpec(t.responses, n, (*common, ("retention.ms", typed_ms))),
        TopicSpec(t.events, n, (*common, ("retention.ms", typed_ms))),
        TopicSpec(t.other, n, (*common, ("retention.ms", typed_ms))),
        TopicSpec(t.items, n, (*common, ("retention.ms", str(3 * DAY_MS)))),
        # Created here rather than by the worker: on a cluster a worker that creates it at
        # start-up can see it with 0 partitions for a while, and its table then fails.
        TopicSpec(
            t.claims_changelog,
            n,
            (
                *common,
                ("cleanup.policy", "compact,delete"),
                ("retention.ms", str(settings.dedup_window_days * DAY_MS)),
            ),
        ),
        TopicSpec(
            t.dlq,
            n,
            (*common, ("retention.ms", str(30 * DAY_MS)), ("max.message.bytes", "8388608")),
        ),
    ]


async def ensure_topics(settings: Settings, attempts: int = 30) -> list[str]:
    """Create the declared topics that do not exist yet; return the names created."""
    admin = AIOKafkaAdminClient(**kafka.client(settings))
    for attempt in range(attempts):
        try:
            await admin.start()
            break
        except KafkaError as exc:
            if attempt == attempts - 1:
                raise BrokerError(
                    f"cannot reach Kafka at {settings.kafka_bootstrap}: {exc}"
                ) from exc
            await asyncio.sleep(1)
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in declared(settings) if s.name not in existing]
        if missing:
            new = [
                NewTopic(
                    s.name, s.partitions, settings.replication_factor, topic_configs=dict(s.config)
                )
                for s in missing
            ]
            # Another process may create them between list and create: that is success too.
            with contextlib.suppress(TopicAlreadyExistsError):
                answer = await admin.create_topics(new)
                failed = [(e[0], e[2]) for e in answer.topic_errors if e[1] not in (0, 36)]
                if failed:  # 36: TOPIC_ALREADY_EXISTS
                    raise BrokerError(f"Kafka refused to create topics: {failed}")
        return [s.name for s in missing]
    finally:
        await admin.close()
