"""Stream-stage benchmark: items per second through one Faust worker (normalize -> items topic ->
dedup -> typed topics) from a preloaded raw topic, beside a bare aiokafka loop, in the same run,
that consumes the same raw records and produces each back unparsed (the floor any stage pays).

    python -m tests.benchmarks.streams [--deliveries 30000] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from infra.control.loadgen import Generator
from infra.core import broker
from infra.core.settings import Settings
from infra.core.topics import ensure_topics
from streams.normalize import normalize
from streams.records import RawMeta
from tests.benchmarks.proc import cpu_seconds, peak_rss_mb
from tests.integration.stages import Stage, stage_env
from tests.integration.test_streams_crash import produce_raw


class EndOffsets:
    """Records written to `topics` so far, polled on one open consumer: a consumer started
    per poll cost the shared cores more than the answer is worth."""

    def __init__(self, bootstrap: str, topics: list[str], partitions: int) -> None:
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
        self.tps = [TopicPartition(t, p) for t in topics for p in range(partitions)]

    async def __aenter__(self) -> EndOffsets:
        await self.consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()

    async def total(self) -> int:
        return sum((await self.consumer.end_offsets(self.tps)).values())


async def bare_loop(settings: Settings, records: int) -> float:
    """Consume the raw topic and produce every record back unparsed; return seconds.

    The copies go to the dead-letter topic, which the measured worker only writes to.
    """
    t = settings.topics
    consumer = AIOKafkaConsumer(
        t.raw,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=f"bare-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
        max_poll_records=1000,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=5, compression_type="zstd"
    )
    await consumer.start()
    await producer.start()
    done, started = 0, 0.0
    try:
        while done < records:
            batch = await consumer.getmany(timeout_ms=1000, max_records=1000)
            if batch and not started:
                started = time.perf_counter()
            futures = [
                await producer.send(t.dlq, m.value, key=m.key)
                for msgs in batch.values()
                for m in msgs
            ]
            await asyncio.gather(*futures)
            done += len(futures)
            await consumer.commit()
        return time.perf_counter() - started
    finally:
        await producer.stop()
        await consumer.stop()


async def stream_stage(
    settings: Settings, env: dict[str, str], items: int, log: Path, profile: str = ""
) -> dict:
    t = settings.topics
    typed = [t.responses, t.events, t.other]
    n = settings.raw_partitions
    worker = Stage("streams", env, log).start()
    assert worker.proc is not None
    try:
        async with EndOffsets(settings.kafka_bootstrap, typed, n) as written:
            out = 0
            while out == 0:
                await asyncio.sleep(0.05)
                out = await written.total()
            t0, out0, cpu0 = time.perf_counter(), out, cpu_seconds(worker.proc.pid)
            spy = profiled(worker.proc.pid, profile) if profile else None
            while out < items:
                await asyncio.sleep(0.05)
                out = await written.total()
            elapsed = time.perf_counter() - t0
            cpu = cpu_seconds(worker.proc.pid) - cpu0
        if spy is not None:
            spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
            spy.wait()
        return {
            "items_per_s": (items - out0) / elapsed,
            "cpu_s_per_1000_items": 1000 * cpu / (items - out0),
            "peak_rss_mb": peak_rss_mb(worker.proc.pid),
        }
    finally:
        worker.stop()


def profiled(pid: int, out: str) -> subprocess.Popen[bytes]:
    """py-spy sampling the worker; collapsed stacks, one line per stack with its sample count."""
    return subprocess.Popen(
        ["py-spy", "record", "--pid", str(pid), "--format", "raw", "-o", out, "--rate", "200"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def one_run(
    bootstrap: str, bodies: list[bytes], items: int, work: Path, profile: str = ""
) -> dict:
    env = stage_env(bootstrap, work, WAFLOW_LOG_LEVEL="ERROR")
    settings = Settings.from_env(env)
    await ensure_topics(settings)
    await produce_raw(settings, bodies)
    bare_s = await bare_loop(settings, len(bodies))
    stage = await stream_stage(settings, env, items, work / "streams.log", profile)
    bare = items / bare_s
    return {"bare_items_per_s": bare, **stage, "ratio": stage["items_per_s"] / bare}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deliveries", type=int, default=30_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", default="tests/benchmarks/results/streams.json")
    parser.add_argument("--profile", default="", help="py-spy collapsed stacks of the last run")
    args = parser.parse_args()
    bootstrap = os.environ.get("WAFLOW_KAFKA_BOOTSTRAP") or broker.start(Path(".waflow"))
    gen = Generator(seed=5, run=uuid.uuid4().hex[:6])
    bodies = [gen.delivery(int(time.time()), max_items=100).body for _ in range(args.deliveries)]
    meta = RawMeta("raw", 0, 0, 0, "")
    items = len({o.dedup_id for b in bodies for o in normalize(b, meta)})
    print(f"{len(bodies)} deliveries, {items} items", flush=True)
    runs = []
    for i in range(args.runs):
        profile = args.profile if i == args.runs - 1 else ""
        work = Path(tempfile.mkdtemp())
        runs.append(asyncio.run(one_run(bootstrap, bodies, items, work, profile)))
        print(runs[-1], flush=True)
    median = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    result = {"deliveries": len(bodies), "items": items, "runs": runs, "median": median}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps(median, indent=2))


if __name__ == "__main__":
    main()
