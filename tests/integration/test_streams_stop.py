"""Stops, kills and rebalances while batches are in flight lose nothing (#19).

The worker is given a backlog, a chunk before each fault, and stopped, killed and joined by a
second worker while it works through it, so each fault lands with batches between their claims
and their acknowledged outputs: SIGTERM while outputs are being written, kill -9 between claim
and output, a rebalance with batches in flight, both ways. Faust acked and committed such
batches on its own before the worker's consumer took acknowledgement over (streams/acks.py).
Every item must then be on its typed topic, any copy under the original's key.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

from infra.control.lag import lag
from infra.control.loadgen import Generator
from tests.integration.stages import Stage, free_port, read_typed, stream_stack
from tests.integration.test_streams_crash import (
    every_item_keyed,
    expected_outputs,
    produce_raw,
    wait_for_output,
)


async def test_stops_kills_and_rebalances_mid_batch_lose_nothing(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    env, settings, typed_topics = await stream_stack(kafka_bootstrap, tmp_path)
    gen = Generator(seed=41, wabas=40, run=uuid.uuid4().hex[:6])
    bodies = [gen.delivery(int(time.time()), max_items=40).body for _ in range(4000)]
    expected = expected_outputs(bodies)
    # One chunk of backlog before each fault: a worker fast enough to finish a backlog while
    # it shuts down (it commits on SIGTERM) still has fresh work after its restart.
    chunks = [bodies[i::4] for i in range(4)]
    port = settings.streams_port
    env_b = {**env, "WAFLOW_STREAMS_PORT": str(free_port()), "WAFLOW_DATA_DIR": str(tmp_path / "b")}
    a = Stage("streams", env, tmp_path / "a.log").start()
    b = Stage("streams", env_b, tmp_path / "b.log")
    faults: list[str] = []
    try:
        await produce_raw(settings, chunks[0])
        # Each fault once the (re)started worker is visibly mid-backlog.
        assert await wait_for_output(port, 200, timeout_s=90) >= 200, a.tail()
        a.stop()  # SIGTERM: Faust's shutdown runs, with outputs in flight
        faults.append("sigterm")
        await produce_raw(settings, chunks[1])
        a.start()
        assert await wait_for_output(port, 200, timeout_s=90) >= 200, a.tail()
        a.kill()  # kill -9: claims stored, outputs not yet acknowledged
        faults.append("kill -9")
        await produce_raw(settings, chunks[2])
        a.start()
        assert await wait_for_output(port, 200, timeout_s=90) >= 200, a.tail()
        await produce_raw(settings, chunks[3])
        b.start()  # a rebalance with batches in flight, then another as b leaves
        faults.append("join")
        await wait_for_output(int(env_b["WAFLOW_STREAMS_PORT"]), 100, timeout_s=60)
        await asyncio.sleep(1)
        b.stop()
        faults.append("leave")
        seen = await read_typed(kafka_bootstrap, typed_topics, len(expected), timeout_s=240)
    finally:
        a.stop()
        b.stop()

    # Tells a loss (every input committed) from work left undone (a stalled partition).
    left = await lag(settings)
    copies = every_item_keyed(seen, expected, f"after {faults}, lag {left}:\n{a.tail()}")
    print(f"{len(expected)} items, {copies} copies after {faults}")
