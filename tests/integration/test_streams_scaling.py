"""Stream workers scale by partitions: two workers in one group split the raw topic, and a
worker restarted after a clean stop resumes from the committed offsets (re-reads nothing)."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from infra.control.loadgen import Generator
from infra.core.settings import Settings
from streams.dedup import entries
from tests.integration.stages import Stage, free_port, read_typed, stream_stack
from tests.integration.test_streams_crash import expected_outputs, produce_raw


async def produce_foreign(settings: Settings) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(settings.topics.items, b"\xff not ours", key=b"\xfe")
    finally:
        await producer.stop()


def raw_consumed(port: int, raw_topic: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith(f'waflow_streams_records_in_total{{topic="{raw_topic}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def claims_beside_their_items(settings: Settings, expected: int) -> None:
    """Every claim sits in the changelog partition of its item's partition. The dedup agent
    works in batches; a claim written to another partition would be restored by the wrong
    worker after a rebalance, and copies would pass it."""
    n = settings.raw_partitions
    consumer = AIOKafkaConsumer(
        settings.topics.claims_changelog,
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    partitioner = DefaultPartitioner()
    checked, wrong = 0, []
    try:
        deadline = time.monotonic() + 60
        while checked < expected and time.monotonic() < deadline:
            for tp, msgs in (await consumer.getmany(timeout_ms=1000)).items():
                for m in msgs:
                    for key, _ in entries(m.key, m.value):
                        item_key = orjson.loads(key).encode()
                        home = partitioner(item_key, list(range(n)), list(range(n)))
                        checked += 1
                        if home != tp.partition:
                            wrong.append((item_key, home, tp.partition))
    finally:
        await consumer.stop()
    assert checked >= expected and not wrong, (checked, wrong[:5])


async def test_two_workers_split_partitions_and_restart_resumes(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    env, settings, typed_topics = await stream_stack(kafka_bootstrap, tmp_path)
    t = settings.topics
    env_b = {**env, "WAFLOW_STREAMS_PORT": str(free_port()), "WAFLOW_DATA_DIR": str(tmp_path / "b")}
    a = Stage("streams", env, tmp_path / "a.log").start()
    b = Stage("streams", env_b, tmp_path / "b.log").start()
    gen = Generator(seed=21, wabas=60, run=uuid.uuid4().hex[:6])
    first = [gen.delivery(int(time.time()), max_items=10).body for _ in range(600)]
    second = [gen.delivery(int(time.time()), max_items=10).body for _ in range(200)]
    try:
        # Both must have joined before the load, or one takes every partition.
        await asyncio.sleep(12)
        await produce_raw(settings, first)
        # Regression: a record on the internal topic that waflow did not write (no headers)
        # crashed the dedup agent in a loop; now it is a dead letter and the work goes on.
        await produce_foreign(settings)
        seen = await read_typed(kafka_bootstrap, typed_topics, len(expected_outputs(first)), 120)
        by_a = raw_consumed(settings.streams_port, t.raw)
        by_b = raw_consumed(int(env_b["WAFLOW_STREAMS_PORT"]), t.raw)
        assert by_a > 0 and by_b > 0, f"one worker did everything: a={by_a} b={by_b}"
        assert by_a + by_b >= len(first)  # a late rebalance may hand over some twice
        assert len(seen) == len(expected_outputs(first))
        [(dead_id, _)] = await read_typed(kafka_bootstrap, [t.dlq], 1, 30)
        assert dead_id.startswith(f"{t.items}/")
        a.stop()
        b.stop()
        a.start()
        await produce_raw(settings, second)
        every = expected_outputs(first + second)
        seen = await read_typed(kafka_bootstrap, typed_topics, len(every), 300)
        assert sorted(d for d, _ in seen) == sorted(every)  # no loss, no re-read duplicates
        assert raw_consumed(settings.streams_port, t.raw) == len(second)
        await claims_beside_their_items(settings, len(every))
    finally:
        a.stop()
        b.stop()
        print(a.tail()[-1500:], b.tail()[-1500:])
