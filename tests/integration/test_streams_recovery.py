"""A worker that starts on an empty disk rebuilds its claims from the changelog: deliveries the
platform sends again after the move are still recognised as copies. The changelog carries one
record per items batch (streams/claims.py), so this is the test of its expansion."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx

from infra.control.loadgen import Generator
from tests.integration.stages import Stage, read_typed, stream_stack
from tests.integration.test_streams_crash import every_item_keyed, expected_outputs, produce_raw


async def ready(port: int, timeout_s: float) -> bool:
    """The worker's /readyz: partitions assigned, no rebalance under way, recovery done."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            try:
                if (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    return False


async def test_a_new_disk_restores_claims_and_drops_redeliveries(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    env, settings, typed_topics = await stream_stack(kafka_bootstrap, tmp_path)
    gen = Generator(seed=31, wabas=30, run=uuid.uuid4().hex[:6])
    first = [gen.delivery(int(time.time()), max_items=20).body for _ in range(300)]
    later = [gen.delivery(int(time.time()), max_items=20).body for _ in range(50)]
    worker = Stage("streams", env, tmp_path / "a.log").start()
    try:
        await produce_raw(settings, first)
        seen = await read_typed(kafka_bootstrap, typed_topics, len(expected_outputs(first)), 120)
        assert len(seen) == len(expected_outputs(first))
    finally:
        worker.stop()
    moved = {**env, "WAFLOW_DATA_DIR": str(tmp_path / "new-disk")}
    worker = Stage("streams", moved, tmp_path / "b.log").start()
    try:
        # Ready means the claims are restored; waiting also keeps the start's rebalances out
        # of the count below (a rebalance re-reads what was not yet committed: copies under
        # the original key, which at-least-once allows).
        assert await ready(settings.streams_port, 180), worker.tail()
        redelivered = first[::3]
        await produce_raw(settings, redelivered + later)
        every = expected_outputs(first + later)
        seen = await read_typed(kafka_bootstrap, typed_topics, len(every), 300)
    finally:
        worker.stop()
    every_item_keyed(seen, every, worker.tail())
    # The redeliveries are dropped. Without the restored claims every one of their items
    # would come out again; a late rebalance may still re-send a few.
    copies = Counter(d for d, _ in seen)
    again = sum(copies[d] - 1 for d in expected_outputs(redelivered))
    assert again <= len(expected_outputs(redelivered)) // 20, (again, worker.tail()[-1500:])
