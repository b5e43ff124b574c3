"""Typed outputs written as aiokafka batches: one future per partition batch, not per record.

`producer.send` costs a future, a partitioner call and an accumulator lookup for every record;
at one record per item that was most of what the dedup step still spent. Here records are
appended to one `BatchBuilder` per topic-partition and each full or finished builder is handed
to `send_batch`. Placement is Kafka's default partitioner's (murmur2 of the key), so a key's
records keep the partition and order any other producer (replay, for one) gives them.

`write` returns the sends since the last `write`; the dedup agent confirms its input only
once they are acknowledged (streams/acks.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from infra.core.topics import partition_for


class BatchWriter:
    """Gathers records per topic-partition and submits them to one aiokafka producer."""

    def __init__(
        self,
        producer: Any,
        counts: Mapping[str, int],
        on_done: Callable[[asyncio.Future[Any]], None],
    ) -> None:
        self.producer = producer  # aiokafka.AIOKafkaProducer
        self.counts = dict(counts)
        self.on_done = on_done
        self.open: dict[tuple[str, int], Any] = {}
        self.sent: list[Awaitable[Any]] = []

    async def add(self, topic: str, key: bytes, value: bytes) -> None:
        partition = partition_for(key, self.counts[topic])
        builder = self.open.get((topic, partition))
        if builder is None:
            builder = self.open[(topic, partition)] = self.producer.create_batch()
        if builder.append(timestamp=None, key=key, value=value) is None:  # full
            await self.submit(topic, partition, builder)
            builder = self.open[(topic, partition)] = self.producer.create_batch()
            builder.append(timestamp=None, key=key, value=value)  # an empty builder takes one

    async def write(self) -> list[Awaitable[Any]]:
        """Submit every open batch; returns every batch's send since the last `write`."""
        batches, self.open = self.open, {}
        for (topic, partition), builder in batches.items():
            await self.submit(topic, partition, builder)
        sent, self.sent = self.sent, []
        return sent

    async def submit(self, topic: str, partition: int, builder: Any) -> None:
        builder.close()
        sent = await self.producer.send_batch(builder, topic, partition=partition)
        sent.add_done_callback(self.on_done)
        self.sent.append(sent)
