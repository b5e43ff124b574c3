"""`waflow replay`: re-run the stream step on raw deliveries of a time range.

The platform has no history API, so the raw topic is the only way a fixed normalizer reaches
old data. Replayed records go straight to the typed topics and the dead-letter topic, under
the same keys the worker uses and with a `waflow-replay` header, bypassing the worker's dedup
table (which would drop every id it has seen). The sink keeps ClickHouse exact: it skips ids a
table already holds, and dead-letter ids are raw positions, so running a replay twice creates
no row twice. To rewrite rows a fix changed, delete them first (docs/operations.md, Replay).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer

from infra.control.raw import RawReader
from infra.core import confluent, kafka, schemas_topic
from infra.core.settings import Settings
from schemas import envelope
from schemas.catalog import KINDS
from streams.encode import typed
from streams.policy import policy_of
from streams.records import Output


@dataclass(frozen=True)
class Selection:
    """Which items to replay: all, or those of one WABA and/or one flow (id or name)."""

    waba: str = ""
    flow: str = ""

    def __call__(self, out: Output) -> bool:
        record = out.record
        if self.waba and record.get("waba_id") != self.waba:
            return False
        return not self.flow or self.flow in (record.get("flow_id"), record.get("flow_name"))


@dataclass
class Report:
    run_id: str
    raw_records: int = 0  # in the range
    read: int = 0  # read from the topic, including records outside the range
    total: int = 0
    sent: Counter[str] = field(default_factory=Counter)
    skipped: int = 0  # items the selection left out


async def replay(
    settings: Settings,
    since_ms: int,
    until_ms: int,
    select: Selection = Selection(),
    progress: Callable[[Report], None] = lambda report: None,
) -> Report:
    t = settings.topics
    topic_of = {k.kind: t.typed(k.kind) for k in KINDS}
    secrets = settings.app_secrets if settings.streams_verify else ()
    report = Report(run_id=uuid.uuid4().hex)
    headers = [(envelope.REPLAY, report.run_id.encode())]
    policy = policy_of(settings)
    framing = confluent.wire(settings)
    encode = framing.encode if framing else None
    await schemas_topic.publish(settings)  # before the first record that names one
    producer = AIOKafkaProducer(**kafka.producer(settings, linger_ms=20))
    await producer.start()
    try:
        async with RawReader(settings, since_ms, until_ms) as reader:
            report.total = reader.total
            progress(report)
            async for read, records in reader.batches():
                pending: list[Awaitable[Any]] = []
                for meta, body in records:
                    outputs = typed(body, meta, secrets, settings.dlq_payload_bytes, encode, policy)
                    for out, value in outputs:
                        if not select(out):
                            report.skipped += 1
                            continue
                        topic = topic_of[out.kind]
                        pending.append(
                            await producer.send(topic, value, key=out.key, headers=headers)
                        )
                        report.sent[out.kind] += 1
                # One wait per fetch: batches stay full, and progress only counts what landed.
                await asyncio.gather(*pending)
                report.read += read
                report.raw_records += len(records)
                progress(report)
    finally:
        await producer.stop()
    return report
