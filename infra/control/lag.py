"""Consumer lag of waflow's two consumer groups, read from the broker (no stage involved)."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from infra.core import kafka
from infra.core.settings import Settings


def groups(settings: Settings) -> dict[str, tuple[str, ...]]:
    """Each group and the topics it consumes."""
    t = settings.topics
    return {
        t.streams_group: (t.raw, t.items),
        t.sink_group: t.sink_reads,
    }


async def lag(settings: Settings) -> dict[tuple[str, str], int]:
    """(group, topic) -> records between the group's committed offsets and the log end.

    A partition the group never committed counts from the log start: nothing has been read.
    """
    admin = AIOKafkaAdminClient(**kafka.client(settings))
    consumer = AIOKafkaConsumer(**kafka.client(settings))
    await admin.start()
    await consumer.start()
    try:
        wanted = groups(settings)
        topics = [topic for names in wanted.values() for topic in names]
        described = await admin.describe_topics(topics)
        tps = [
            TopicPartition(d["topic"], int(p["partition"]))
            for d in described
            if not d.get("error_code")
            for p in d["partitions"]
        ]
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
        out: dict[tuple[str, str], int] = {}
        for group, names in wanted.items():
            committed = await admin.list_consumer_group_offsets(group)
            for tp in tps:
                if tp.topic not in names:
                    continue
                done = committed.get(tp)
                position = done.offset if done is not None and done.offset >= 0 else starts[tp]
                key = (group, tp.topic)
                out[key] = out.get(key, 0) + max(0, ends[tp] - position)
        return out
    finally:
        await consumer.stop()
        await admin.close()
