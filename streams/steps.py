"""The stream stage's two steps, each a small class behind Protocols: no Faust in here.

`NormalizeStep` takes a batch of raw records and writes what they become: dead letters to the
dead-letter topic, typed items to the internal items topic packed per dedup partition.
`DedupStep` takes a batch of items records, claims each item's id, and hands first sightings to
the typed topics' writer. streams/agents.py feeds them from Faust's streams; the tests feed
them from fakes (tests/fakes.py).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from schemas import codec
from schemas.codec import publication
from schemas.envelope import AppKey
from schemas.errors import SchemaError
from streams.dead import dead_letter
from streams.encode import PAYLOAD_BYTES, Encode, typed
from streams.items import pack, unpack
from streams.metrics import StreamMetrics
from streams.policy import KEEP, Policy
from streams.records import DLQ, Output, RawMeta


@dataclass(frozen=True)
class Message:
    """One consumed record, as the steps see it."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes
    headers: dict[str, bytes] = field(default_factory=dict)  # built once per record


class Sender(Protocol):
    """Sends one record; the returned awaitable resolves when the broker has it."""

    async def send(
        self, topic: str, key: bytes | None, value: bytes, partition: int | None
    ) -> Awaitable[Any]: ...


class Claims(Protocol):
    """The dedup table: for each id of an items record, True where it is a first sighting,
    and the send that logs the claims (None when nothing was claimed)."""

    async def claim(
        self, partition: int, offset: int, ids: Sequence[str], now_ms: int, window_ms: int
    ) -> tuple[list[bool], Awaitable[Any] | None]: ...


class Outputs(Protocol):
    """The typed topics' writer: records gathered per partition, sent by `write`, which
    returns the sends since the last `write`."""

    async def add(self, topic: str, key: bytes, value: bytes) -> None: ...

    async def write(self) -> list[Awaitable[Any]]: ...


@dataclass
class NormalizeStep:
    """Raw records to dead letters and packed items; `run` returns their sends."""

    sender: Sender
    dlq_topic: str
    items_topic: str
    item_partitions: Callable[[], Awaitable[int]]  # the items topic's real partition count
    metrics: StreamMetrics
    secrets: Sequence[AppKey] = ()
    payload_bytes: int = PAYLOAD_BYTES
    schemas_topic: str = ""  # where every writer schema is published before the first record
    encode: Encode | None = None  # the typed records' wire format (default: single-object)
    policy: Policy = KEEP  # flow token rule and personal data (streams/policy.py)
    _partitions: int = 0

    async def run(self, batch: Sequence[Message]) -> list[Awaitable[Any]]:
        """Dead letters and items records for `batch`, handed to the producer; returns the
        sends, which the caller awaits before it confirms the batch (streams/acks.py)."""
        started = time.perf_counter()
        if not self._partitions:  # placement must follow the topic's real count
            self._partitions = await self.item_partitions()
        pending: list[Awaitable[Any]] = []
        ready: list[tuple[Output, bytes]] = []
        for msg in batch:
            meta = RawMeta.of(msg.topic, msg.partition, msg.offset, msg.timestamp_ms, msg.headers)
            for out, value in typed(msg.value, meta, self.secrets, self.payload_bytes, self.encode):
                if out.kind == DLQ:
                    self.metrics.dead_letters.labels(out.record["reason"]).inc()
                    self.metrics.records_out.labels(self.dlq_topic).inc()
                    pending.append(await self.sender.send(self.dlq_topic, out.key, value, None))
                else:
                    ready.append((out, value))
        for partition, value in pack(ready, self._partitions):
            pending.append(await self.sender.send(self.items_topic, None, value, partition))
        if batch:
            self.metrics.records_in.labels(batch[0].topic).inc(len(batch))
        self.metrics.latency.observe(time.perf_counter() - started)
        return pending

    async def publish_schemas(self) -> None:
        """Every writer schema on the schemas topic, acknowledged, before any record that
        names one (schemas.codec.publication). The worker calls it before taking its first
        record."""
        if not self.schemas_topic:
            return
        sent = [
            await self.sender.send(self.schemas_topic, key, value, 0)
            for key, value in publication(codec())
        ]
        await asyncio.gather(*sent)


@dataclass
class DedupStep:
    """Items records to first sightings on the typed topics; copies are counted and dropped."""

    claims: Claims
    outputs: Outputs
    sender: Sender  # for dead letters of records normalize did not write
    typed_topics: Mapping[str, str]  # kind -> topic
    dlq_topic: str
    window_ms: int
    metrics: StreamMetrics
    encode: Encode | None = None  # the dead letters' wire format (default: single-object)

    async def run(self, batch: Sequence[Message], now_ms: int) -> list[Awaitable[Any]]:
        """Claims, outputs and dead letters for `batch`, all sent; returns the sends, which
        the caller awaits before it confirms the batch (streams/acks.py)."""
        sent: list[Awaitable[Any]] = []
        out: Counter[str] = Counter()  # records per typed topic, counted once per batch
        for msg in batch:
            await self._one(msg, now_ms, sent, out)
        sent.extend(await self.outputs.write())
        for topic, n in out.items():
            self.metrics.records_out.labels(topic).inc(n)
        return sent

    async def _one(
        self, msg: Message, now_ms: int, sent: list[Awaitable[Any]], out: Counter[str]
    ) -> None:
        try:
            items = unpack(msg.value, msg.headers, msg.key)
        except SchemaError as exc:  # not written by normalize: keep it, never crash on it
            meta = RawMeta(msg.topic, msg.partition, msg.offset, now_ms, "")
            dead = dead_letter(meta, "foreign_record", str(exc), msg.value, "")
            self.metrics.dead_letters.labels("foreign_record").inc()
            value = (self.encode or codec().encode)("DeadLetter", dead.record)
            sent.append(await self.sender.send(self.dlq_topic, b"", value, None))
            return
        self.metrics.records_in.labels(msg.topic).inc(len(items))
        ids = [item.dedup_id for item in items]
        emit, logged = await self.claims.claim(
            msg.partition, msg.offset, ids, now_ms, self.window_ms
        )
        if logged is not None:
            sent.append(logged)
        dropped = 0
        for item, keep in zip(items, emit, strict=True):
            if keep:
                topic = self.typed_topics[item.kind]
                await self.outputs.add(topic, item.key, item.value)
                out[topic] += 1
            else:
                dropped += 1
        if dropped:
            self.metrics.duplicates.inc(dropped)
