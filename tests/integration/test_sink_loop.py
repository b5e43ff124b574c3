"""The sink loop on the real broker and the embedded engine: killed between insert and commit,
fed the same keys twice at other offsets, given drifted records, and facing a failing
ClickHouse. Every time: `count()` equals `uniqExact(id)` without FINAL, and nothing is missing."""

from __future__ import annotations

import asyncio
import dataclasses
import struct
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from infra.control.loadgen import Generator
from infra.core.clickhouse import connect, migrate
from infra.core.confluent import Confluent
from infra.core.settings import Settings
from infra.core.topics import ensure_topics
from schemas import codec
from sink.breaker import Breaker
from sink.consumer import SinkLoop
from sink.errors import WriteError
from sink.load import RowWriter
from sink.metrics import SinkMetrics
from sink.writer import Batch, ClickHouseWriter, Engine
from streams.normalize import normalize
from streams.records import DLQ, EVENTS, OTHER, RESPONSES, SCHEMA_OF, RawMeta
from tests.integration.stages import stage_env

COUNTS = (
    "SELECT (SELECT count() FROM waflow.flow_responses), "
    "(SELECT uniqExact(message_id) FROM waflow.flow_responses), "
    "(SELECT count() FROM waflow.flow_events), "
    "(SELECT uniqExact(event_id) FROM waflow.flow_events), "
    "(SELECT count() FROM waflow.webhook_changes), "
    "(SELECT uniqExact(change_id) FROM waflow.webhook_changes), "
    "(SELECT count() FROM waflow.dead_letters)"
)


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs, so no offset is committed."""


class KilledAfterInsert:
    def __init__(self, inner: ClickHouseWriter, after: int) -> None:
        self.inner, self.left = inner, after

    async def write(self, batch: Batch) -> int:
        inserted = await self.inner.write(batch)
        self.left -= 1
        if self.left == 0:
            raise Killed
        return inserted


class DownThenUp:
    """ClickHouse refusing the first writes, as a down server or TOO_MANY_PARTS would."""

    def __init__(self, inner: ClickHouseWriter, failures: int) -> None:
        self.inner, self.failures, self.calls = inner, failures, 0

    async def write(self, batch: Batch) -> int:
        self.calls += 1
        if self.calls <= self.failures:
            raise WriteError("Code: 252. DB::Exception: Too many parts (TOO_MANY_PARTS)")
        return await self.inner.write(batch)


class DownFor:
    """ClickHouse down for a while: every write in the first `seconds` is refused."""

    def __init__(self, inner: ClickHouseWriter, seconds: float) -> None:
        self.inner, self.until = inner, time.monotonic() + seconds

    async def write(self, batch: Batch) -> int:
        if time.monotonic() < self.until:
            raise WriteError("Code: 210. DB::NetException: Connection refused")
        return await self.inner.write(batch)


def typed_records(settings: Settings, deliveries: int, seed: int) -> list[tuple[str, bytes, bytes]]:
    """(topic, key, Avro value) as the stream stage would write them."""
    topic = {
        RESPONSES: settings.topics.responses,
        EVENTS: settings.topics.events,
        OTHER: settings.topics.other,
        DLQ: settings.topics.dlq,
    }
    gen = Generator(seed=seed, wabas=30, run=uuid.uuid4().hex[:6])
    out = []
    for i in range(deliveries):
        body = gen.delivery(int(time.time()), max_items=30).body
        for o in normalize(body, RawMeta(settings.topics.raw, 0, i, int(time.time() * 1000), "")):
            out.append((topic[o.kind], o.key, codec().encode(SCHEMA_OF[o.kind], o.record)))
    return out


async def produce(settings: Settings, records: list[tuple[str, bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        futures = [await producer.send(t, v, key=k) for t, k, v in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


@pytest.fixture(params=["engine-decodes", "python-decodes"])
async def sink_env(kafka_bootstrap: str, tmp_path: Path, request: pytest.FixtureRequest):
    """Every sink test twice: Avro decoded by the engine, and by Python (a server's path)."""
    settings = Settings.from_env(stage_env(kafka_bootstrap, tmp_path, WAFLOW_SINK_BATCH_ROWS="300"))
    await ensure_topics(settings)
    embedded = request.param == "engine-decodes"
    engine = Engine(connect(settings.clickhouse_url), "waflow", embedded=embedded)
    await engine.call(lambda: migrate(engine.client, "waflow"))
    yield settings, engine
    engine.close()


async def drain(loop: SinkLoop, engine: Engine, expected: list[int], timeout_s: float = 90):
    task = asyncio.create_task(loop.run())
    deadline = time.monotonic() + timeout_s
    rows: list[int] = []
    try:
        while time.monotonic() < deadline and not task.done():
            _, [rows] = await engine.select(COUNTS)
            if rows == expected:
                await asyncio.sleep(1.5)  # and nothing more arrives
                _, [rows] = await engine.select(COUNTS)
                break
            await asyncio.sleep(0.3)
    finally:
        loop.stopping.set()
        await task
    return rows


def expected_counts(records: list[tuple[str, bytes, bytes]], settings: Settings, dead: int):
    ids: dict[str, set[str]] = {t: set() for t in (RESPONSES, EVENTS, OTHER)}
    topics = settings.topics
    names = {topics.responses: RESPONSES, topics.events: EVENTS, topics.other: OTHER}
    field = {RESPONSES: "message_id", EVENTS: "event_id", OTHER: "change_id"}
    for topic, _, value in records:
        if topic in names:
            kind = names[topic]
            ids[kind].add(codec().decode(value)[1][field[kind]])
    r, e, o = (len(ids[k]) for k in (RESPONSES, EVENTS, OTHER))
    return [r, r, e, e, o, o, dead]


async def test_killed_between_insert_and_commit_then_same_keys_again(sink_env) -> None:
    settings, engine = sink_env
    records = typed_records(settings, 400, seed=5)
    await produce(settings, records)
    writer = ClickHouseWriter(engine)
    crashing = SinkLoop(
        settings, RowWriter(KilledAfterInsert(writer, after=3), engine.embedded), SinkMetrics()
    )
    with pytest.raises(Killed):
        await crashing.run()
    # The restarted sink re-reads the uncommitted batches it had inserted...
    expected = expected_counts(records, settings, dead=0)
    assert (
        await drain(
            SinkLoop(settings, RowWriter(writer, engine.embedded), SinkMetrics()), engine, expected
        )
        == expected
    )
    # ...and a crashed stream worker's copies (same keys, new offsets) create nothing either.
    await produce(settings, records[::3])
    metrics = SinkMetrics()
    assert (
        await drain(
            SinkLoop(settings, RowWriter(writer, engine.embedded), metrics), engine, expected
        )
        == expected
    )
    skipped = sum(
        s.value for m in metrics.skipped.collect() for s in m.samples if "total" in s.name
    )
    assert skipped == len(records[::3])


async def test_drifted_records_go_to_dead_letters_while_neighbours_load(sink_env) -> None:
    settings, engine = sink_env
    records = typed_records(settings, 50, seed=6)
    response = next(r for r in records if r[0] == settings.topics.responses)
    _, fields = codec().decode(response[2])
    drifted = {
        **fields,
        "message_id": "wamid.drift",
        "responded_at": datetime(2400, 1, 1, tzinfo=UTC),
    }
    bad = [
        (settings.topics.responses, b"wamid.drift", codec().encode("FlowResponse", drifted)),
        (settings.topics.events, b"k", b"\xc3\x01not avro at all"),
        # A known schema whose body is cut short: the engine refuses it, Python names it.
        (settings.topics.other, b"c", codec().headers["WebhookChange"] + b"\x08abcd"),
    ]
    await produce(settings, records[:20] + bad + records[20:])
    expected = expected_counts(records, settings, dead=3)
    metrics = SinkMetrics()
    loop = SinkLoop(settings, RowWriter(ClickHouseWriter(engine), engine.embedded), metrics)
    assert await drain(loop, engine, expected) == expected
    refused = sum(s.value for m in metrics.engine_refused.collect() for s in m.samples[:1])
    # The engine refused the batches holding the two bad records; their neighbours loaded.
    assert refused >= 2 if engine.embedded else refused == 0
    _, dead = await engine.select(
        "SELECT reason, source_topic FROM waflow.dead_letters ORDER BY reason"
    )
    assert sorted(dead) == sorted(
        [
            ["out_of_range", settings.topics.responses],
            ["unknown_schema", settings.topics.events],  # "not avro" is no fingerprint
            ["undecodable", settings.topics.other],
        ]
    )


async def test_clickhouse_refusing_writes_is_retried_by_the_breaker_without_loss(sink_env) -> None:
    settings, engine = sink_env
    records = typed_records(settings, 100, seed=7)
    await produce(settings, records)
    flaky = DownThenUp(ClickHouseWriter(engine), failures=3)
    metrics = SinkMetrics()
    breaker = Breaker(first_s=0.05, max_s=0.2)
    loop = SinkLoop(settings, RowWriter(flaky, engine.embedded), metrics, breaker)
    expected = expected_counts(records, settings, dead=0)
    assert await drain(loop, engine, expected) == expected
    failures = [s.value for m in metrics.write_failures.collect() for s in m.samples]
    assert failures[0] == 3
    assert not loop.breaker.open


async def test_an_outage_longer_than_the_poll_interval_rejoins_and_loses_nothing(
    sink_env,
) -> None:
    """While the breaker waits out a long outage the loop does not poll, so Kafka evicts the
    consumer from its group; the commit after the outage then fails. The sink rejoins and
    re-reads from its last commit instead of crashing, and the copies it re-reads are dropped."""
    settings, engine = sink_env
    records = typed_records(settings, 300, seed=9)
    await produce(settings, records)
    down = DownFor(ClickHouseWriter(engine), seconds=8)
    metrics = SinkMetrics()
    breaker = Breaker(first_s=0.2, max_s=0.5)
    loop = SinkLoop(
        settings, RowWriter(down, engine.embedded), metrics, breaker, max_poll_interval_s=2
    )
    expected = expected_counts(records, settings, dead=0)
    t = settings.topics

    async def another_sink_joins_during_the_outage() -> None:
        await asyncio.sleep(4)  # the loop has not polled for 2 s: it left the group
        other = AIOKafkaConsumer(  # commits nothing: what it holds is re-read
            *t.sink_reads,
            bootstrap_servers=settings.kafka_bootstrap,
            group_id=t.sink_group,
            enable_auto_commit=False,
        )
        await other.start()
        try:
            await other.getmany(timeout_ms=6000)  # joined; the outage ends meanwhile
        finally:
            await other.stop()  # leaves: the loop gets every partition back

    joiner = asyncio.create_task(another_sink_joins_during_the_outage())
    assert await drain(loop, engine, expected) == expected
    await joiner
    assert next(s.value for m in metrics.evicted.collect() for s in m.samples) >= 1


async def test_a_switch_to_the_confluent_format_mid_stream_loses_and_duplicates_nothing(
    sink_env,
) -> None:
    """The first half of the records single-object, then the stream stage switched to the
    Confluent format and re-sent the last 20 it had written (a restart mid-batch) and the rest.
    The registry is confluent-kafka's in-memory one, shared in this process by the writer and
    the sink; a framed record whose schema id nobody registered is a dead letter."""
    settings, engine = sink_env
    framed = dataclasses.replace(settings, schema_registry_url=f"mock://{uuid.uuid4().hex}")
    wire = Confluent(framed)
    records = [r for r in typed_records(settings, 80, seed=8) if r[0] != settings.topics.dlq]
    half = len(records) // 2

    def reframe(value: bytes) -> bytes:
        name, record = codec().decode(value)
        return wire.encode(name, record)

    switched = [(t, k, reframe(v)) for t, k, v in records[half - 20 :]]
    stranger = b"\x00" + struct.pack(">I", 424_242) + b"\x02x"
    sent = records[:half] + switched[:10] + [(settings.topics.events, b"?", stranger)]
    await produce(settings, sent + switched[10:])
    assert sum(v[:1] == b"\x00" for _, _, v in sent + switched[10:]) == len(switched) + 1
    loop = SinkLoop(framed, RowWriter(ClickHouseWriter(engine), engine.embedded), SinkMetrics())
    expected = expected_counts(records, settings, dead=1)
    assert await drain(loop, engine, expected) == expected
    _, dead = await engine.select("SELECT reason, source_topic FROM waflow.dead_letters")
    assert dead == [["unknown_schema", settings.topics.events]]
