"""A worker that starts on an empty disk rebuilds its claims from the changelog: deliveries the
platform sends again after the move are still recognised as copies. The changelog carries one
record per items batch (streams/claims.py), so this is the test of its expansion."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from infra.control.loadgen import Generator
from tests.integration.stages import Stage, read_typed, stream_stack
from tests.integration.test_streams_crash import expected_outputs, produce_raw


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
        await produce_raw(settings, first[::3] + later)  # redeliveries, then new ones
        every = expected_outputs(first + later)
        # A bound, not a timing check: a new disk restores the claims changelog first, and the
        # group waits out the old member on a busy machine.
        seen = await read_typed(kafka_bootstrap, typed_topics, len(every), 300)
        assert sorted(d for d, _ in seen) == sorted(every), worker.tail()[-1500:]
    finally:
        worker.stop()
