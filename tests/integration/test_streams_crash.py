"""A stream worker killed hard mid-stream and restarted loses nothing; a duplicate it causes
carries the original's key. Read back with isolation_level=read_committed.

WAFLOW_TEST_GUARANTEE=exactly_once runs the same test under Faust's exactly-once mode and then
demands exactly one output per input (see docs/guarantees.md: it is not enabled by default).
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx

from infra.control.loadgen import Generator
from infra.core import kafka
from infra.core.settings import Settings
from ingest.producer import KafkaRawWriter, RawRecord
from streams.normalize import normalize
from streams.records import RawMeta
from tests.integration.stages import Stage, read_typed, stream_stack

GUARANTEE = os.environ.get("WAFLOW_TEST_GUARANTEE", "at_least_once")


async def produce_raw(settings: Settings, bodies: list[bytes]) -> None:
    writer = KafkaRawWriter(kafka.producer(settings), settings.topics.raw, 30)
    await writer.start(attempts=30)
    try:
        await asyncio.gather(
            *(
                writer.write(
                    RawRecord(body, str(i % 50).encode(), (("waflow-request-id", b"r%d" % i),))
                )
                for i, body in enumerate(bodies)
            )
        )
    finally:
        await writer.stop()


async def wait_for_output(port: int, at_least: float, timeout_s: float) -> float:
    """Poll the worker's /metrics until it has produced `at_least` typed records."""
    out = 0.0
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline and out < at_least:
            try:
                r = await client.get(f"http://127.0.0.1:{port}/metrics")
                # Regression: the page once answered 500 (aiohttp rejected its content type).
                assert r.status_code == 200, r.text
                text = r.text
                out = sum(
                    float(line.rsplit(" ", 1)[1])
                    for line in text.splitlines()
                    if line.startswith("waflow_streams_records_out_total{") and ".dlq" not in line
                )
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.02)
    return out


def expected_outputs(bodies: list[bytes]) -> dict[str, bytes]:
    """dedup id -> key, from the same pure normalizer the worker runs."""
    meta = RawMeta("raw", 0, 0, 0, "")
    return {out.dedup_id: out.key for body in bodies for out in normalize(body, meta)}


def every_item_keyed(seen: list[tuple[str, bytes]], expected: dict[str, bytes], log: str) -> int:
    """Every expected item is on the typed topics, nothing else is, and every copy carries the
    original's key; returns the number of copies."""
    copies = Counter(dedup_id for dedup_id, _ in seen)
    lost = set(expected) - set(copies)
    assert not lost, f"{len(lost)} of {len(expected)} items lost:\n{log}"
    assert set(copies) == set(expected), "outputs that no input explains"
    wrong_key = [(d, k) for d, k in seen if k != expected[d]]
    assert not wrong_key, "a duplicate must carry the original's key"
    return sum(n - 1 for n in copies.values())


async def test_worker_killed_hard_loses_nothing(kafka_bootstrap: str, tmp_path: Path) -> None:
    env, settings, typed_topics = await stream_stack(
        kafka_bootstrap, tmp_path, WAFLOW_STREAMS_GUARANTEE=GUARANTEE
    )
    gen = Generator(seed=11, wabas=40, run=uuid.uuid4().hex[:6])
    now = int(time.time())
    bodies = [gen.delivery(now, max_items=40).body for _ in range(3000)]
    expected = expected_outputs(bodies)

    worker = Stage("streams", env, tmp_path / "streams.log").start()
    try:
        await produce_raw(settings, bodies[:2500])
        # Kill once the worker is visibly mid-stream: some outputs out, most still to come.
        out = await wait_for_output(settings.streams_port, 300, timeout_s=90)
        assert out >= 300, f"worker produced {out} records:\n{worker.tail()}"
        worker.kill()
        await produce_raw(settings, bodies[2500:])  # arrives while the worker is down
        worker.start()
        seen = await read_typed(kafka_bootstrap, typed_topics, len(expected), timeout_s=180)
    finally:
        worker.stop()

    duplicated = every_item_keyed(seen, expected, worker.tail())
    print(f"{GUARANTEE}: {len(expected)} items, {duplicated} duplicates after a kill -9")
    if GUARANTEE == "exactly_once":
        assert duplicated == 0
