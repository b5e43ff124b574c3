"""Sixteen faults in one run, each while batches are in flight, lose nothing.

`test_streams_stop.py` lands each kind of fault once. Some losses need faults in a row: Faust
counted as done records it had fetched and not delivered around a seek, and committed past one
unconfirmed offset (streams/acks.py); a kill after such a commit lost the records passed over.
Here a worker is stopped, killed, joined and left by a second worker (which is also killed)
in a seeded random order while traffic keeps arriving, and every item must then be on its
typed topic, with nothing left uncommitted.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from pathlib import Path

from infra.control.lag import lag
from infra.control.loadgen import Generator
from infra.core.settings import Settings
from tests.integration.stages import Stage, free_port, read_typed, stream_stack
from tests.integration.test_streams_crash import (
    every_item_keyed,
    expected_outputs,
    produce_raw,
    wait_for_output,
)

FAULTS = 16
DELIVERIES_PER_FAULT = 500


def running(stage: Stage) -> bool:
    return stage.proc is not None and stage.proc.poll() is None


async def settled(settings: Settings, timeout_s: float) -> dict[tuple[str, str], int]:
    """The stream group's lag once it is all committed, or as it is after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        left = await lag(settings)
        mine = [n for (group, _), n in left.items() if group == settings.topics.streams_group]
        if not any(mine) or time.monotonic() > deadline:
            return left
        await asyncio.sleep(1)


async def test_faults_in_a_row_lose_nothing_and_leave_nothing_uncommitted(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    rnd = random.Random(7)
    env, settings, typed_topics = await stream_stack(kafka_bootstrap, tmp_path)
    gen = Generator(seed=43, wabas=40, run=uuid.uuid4().hex[:6])
    now = int(time.time())
    bodies = [gen.delivery(now, max_items=40).body for _ in range(FAULTS * DELIVERIES_PER_FAULT)]
    expected = expected_outputs(bodies)
    env_b = {**env, "WAFLOW_STREAMS_PORT": str(free_port()), "WAFLOW_DATA_DIR": str(tmp_path / "b")}
    a = Stage("streams", env, tmp_path / "a.log").start()
    b = Stage("streams", env_b, tmp_path / "b.log")
    faults: list[str] = []
    try:
        for chunk in range(FAULTS):
            await produce_raw(settings, bodies[chunk::FAULTS])
            assert await wait_for_output(settings.streams_port, 100, timeout_s=90) >= 100, a.tail()
            await asyncio.sleep(rnd.random() * 1.5)  # somewhere in the chunk's batches
            fault = rnd.choice(
                ["sigterm", "kill -9"] + (["leave", "kill -9 b"] if running(b) else ["join"] * 2)
            )
            faults.append(fault)
            if fault == "sigterm":
                a.stop()
                a.start()
            elif fault == "kill -9":
                a.kill()
                a.start()
            elif fault == "join":
                b.start()
            elif fault == "leave":
                b.stop()
            else:
                b.kill()
        b.stop()
        seen = await read_typed(kafka_bootstrap, typed_topics, len(expected), timeout_s=240)
        # Every item can be out before the group has settled: the last faults leave a rebalance,
        # a table recovery and a re-read of what was confirmed but not committed. A stall never
        # settles; a slow start does, within a minute.
        left = await settled(settings, timeout_s=60)
    finally:
        a.stop()
        b.stop()

    copies = every_item_keyed(seen, expected, f"after {faults}:\n{a.tail()}")
    behind = {
        topic: n for (group, topic), n in left.items() if group == settings.topics.streams_group
    }
    assert not any(behind.values()), f"still uncommitted a minute on, after {faults}: {behind}"
    print(f"{len(expected)} items, {copies} copies after {faults}")
