"""Typed outputs written as aiokafka batches: one future per partition batch, not per record.

`producer.send` costs a future, a partitioner call and an accumulator lookup for every record;
at one record per item that was most of what the dedup step still spent. Here records are
appended to one `BatchBuilder` per topic-partition and each full or finished builder is handed
to `send_batch`. Placement is Kafka's default partitioner's (murmur2 of the key), so a key's
records keep their partition and order; the hash is remembered per key, as a WABA's key
repeats on most of its records.

The producer's `flush()` waits for these batches too, so Faust's flush-before-commit still
makes every output durable before its input's offset is committed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from aiokafka.partitioner import murmur2

MAX_REMEMBERED_KEYS = 10_000  # ~1.5 MB; a WABA's or flow's key repeats, a message id does not


class Placement:
    """Partition of a key on a topic with `count` partitions, as the default partitioner."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.known: dict[bytes, int] = {}

    def __call__(self, key: bytes) -> int:
        partition = self.known.get(key)
        if partition is None:
            if len(self.known) >= MAX_REMEMBERED_KEYS:
                self.known.clear()
            hashed: int = murmur2(key)
            partition = self.known[key] = (hashed & 0x7FFFFFFF) % self.count
        return partition


class BatchWriter:
    """Gathers records per topic-partition and submits them to one aiokafka producer."""

    def __init__(
        self,
        producer: Any,
        counts: Mapping[str, int],
        on_done: Callable[[asyncio.Future[Any]], None],
    ) -> None:
        self.producer = producer  # aiokafka.AIOKafkaProducer
        self.place = {topic: Placement(count) for topic, count in counts.items()}
        self.on_done = on_done
        self.open: dict[tuple[str, int], Any] = {}

    async def add(self, topic: str, key: bytes, value: bytes, partition: int = -1) -> None:
        """Queue one record; `partition` when the caller already knows where `key` goes."""
        if partition < 0:
            partition = self.place[topic](key)
        builder = self.open.get((topic, partition))
        if builder is None:
            builder = self.open[(topic, partition)] = self.producer.create_batch()
        if builder.append(timestamp=None, key=key, value=value) is None:  # full
            await self.submit(topic, partition, builder)
            builder = self.open[(topic, partition)] = self.producer.create_batch()
            builder.append(timestamp=None, key=key, value=value)  # an empty builder takes one

    async def write(self) -> None:
        """Submit every open batch; delivery is awaited by the producer's flush."""
        batches, self.open = self.open, {}
        for (topic, partition), builder in batches.items():
            await self.submit(topic, partition, builder)

    async def submit(self, topic: str, partition: int, builder: Any) -> None:
        builder.close()
        sent = await self.producer.send_batch(builder, topic, partition=partition)
        sent.add_done_callback(self.on_done)
