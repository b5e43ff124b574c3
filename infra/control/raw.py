"""Read the raw topic for a time range: shared by `waflow replay` and `waflow reconcile`.

The range is in the ingress's receive time (`waflow-received-ms`). Each partition is read from
the first offset at or after `since` up to the log end as it was when the read began, so a
replay of a busy topic finishes instead of chasing new traffic.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from infra.core import kafka
from infra.core.settings import Settings
from streams.records import RawMeta


@dataclass(frozen=True)
class Span:
    """Offsets [start, end) of one raw partition to read."""

    partition: int
    start: int
    end: int


class RawReader:
    """`async with RawReader(...) as r:` then `r.total` records to read and `r.batches()`."""

    def __init__(self, settings: Settings, since_ms: int, until_ms: int) -> None:
        self.settings = settings
        self.since_ms, self.until_ms = since_ms, until_ms
        self.spans: list[Span] = []
        self._consumer = AIOKafkaConsumer(
            **kafka.client(settings),
            enable_auto_commit=False,
            max_partition_fetch_bytes=8 * 1024 * 1024,
        )

    @property
    def total(self) -> int:
        return sum(s.end - s.start for s in self.spans)

    async def __aenter__(self) -> RawReader:
        topic = self.settings.topics.raw
        tps = [TopicPartition(topic, p) for p in await partitions(self.settings, topic)]
        await self._consumer.start()
        self._consumer.assign(tps)
        ends = await self._consumer.end_offsets(tps)
        starts = await self._consumer.offsets_for_times(dict.fromkeys(tps, self.since_ms))
        # The Kafka timestamp is the produce time, a few ms after receipt: a record past
        # `until` by Kafka time is past it by receive time too, so the read can stop there.
        stops = await self._consumer.offsets_for_times(dict.fromkeys(tps, self.until_ms + 1))
        for tp in tps:
            start, stop = starts.get(tp), stops.get(tp)
            first = start.offset if start else ends[tp]
            last = min(stop.offset, ends[tp]) if stop else ends[tp]
            self.spans.append(Span(tp.partition, first, max(first, last)))
            self._consumer.seek(tp, first)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()

    async def batches(self) -> AsyncIterator[tuple[int, list[tuple[RawMeta, bytes]]]]:
        """(records read, those received in the range) per fetch, until every span is done."""
        topic = self.settings.topics.raw
        end = {TopicPartition(topic, s.partition): s.end for s in self.spans}
        left = {tp for tp, e in end.items() if await self._consumer.position(tp) < e}
        while left:
            fetched = await self._consumer.getmany(*left, timeout_ms=2000, max_records=2000)
            for tp, msgs in fetched.items():
                batch = [m for m in msgs if m.offset < end[tp]]
                out = []
                for m in batch:
                    meta = RawMeta.of(
                        m.topic, m.partition, m.offset, m.timestamp, dict(m.headers or ())
                    )
                    if self.since_ms <= meta.received_ms < self.until_ms:
                        out.append((meta, m.value or b""))
                if await self._consumer.position(tp) >= end[tp]:
                    left.discard(tp)
                yield len(batch), out


async def partitions(settings: Settings, topic: str) -> list[int]:
    """The topic's partitions from the cluster's metadata (never from a possibly stale cache)."""
    admin = AIOKafkaAdminClient(**kafka.client(settings))
    await admin.start()
    try:
        [found] = await admin.describe_topics([topic])
        return sorted(int(p["partition"]) for p in found["partitions"])
    finally:
        await admin.close()
