"""Restart-to-output time of the stream worker: stopped (SIGTERM) or killed (SIGKILL), then
started again at once; the time from the restart until new deliveries' outputs are on the
typed topics. Each fault with Faust's default session timeout (60 s), with waflow's
(WAFLOW_STREAMS_SESSION_TIMEOUT_S, 10 s), and with static membership on top
(WAFLOW_STREAMS_INSTANCE_ID), in the same run, on one local broker.

    python -m tests.benchmarks.restart [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from infra.control.loadgen import Generator
from tests.benchmarks.local import local_broker
from tests.integration.stages import Stage, read_typed, stream_stack
from tests.integration.test_streams_crash import expected_outputs, produce_raw

CONFIGS = {
    "session 60 s": {"WAFLOW_STREAMS_SESSION_TIMEOUT_S": "60"},
    "session 10 s": {"WAFLOW_STREAMS_SESSION_TIMEOUT_S": "10"},
    "session 10 s, static id": {
        "WAFLOW_STREAMS_SESSION_TIMEOUT_S": "10",
        "WAFLOW_STREAMS_INSTANCE_ID": "streams-0",
    },
}


async def once(bootstrap: str, work: Path, config: str, fault: str) -> float:
    env, settings, typed = await stream_stack(bootstrap, work, **CONFIGS[config])
    gen = Generator(seed=5, wabas=20, run=uuid.uuid4().hex[:6])
    first = [gen.delivery(int(time.time()), max_items=10).body for _ in range(100)]
    later = [gen.delivery(int(time.time()), max_items=10).body for _ in range(20)]
    worker = Stage("streams", env, work / "streams.log").start()
    try:
        await produce_raw(settings, first)
        await read_typed(bootstrap, typed, len(expected_outputs(first)), 120, quiet_polls=1)
        worker.kill() if fault == "kill" else worker.stop()
        worker.start()
        restarted = time.monotonic()
        await produce_raw(settings, later)
        every = len(expected_outputs(first + later))
        seen = await read_typed(bootstrap, typed, every, 300, quiet_polls=1)
        if len({d for d, _ in seen}) < every:
            raise RuntimeError(f"outputs missing after the restart ({fault}, {config})")
        return time.monotonic() - restarted
    finally:
        worker.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="tests/benchmarks/results/restart.json")
    args = parser.parse_args()
    results: dict[str, list[float]] = {}
    with local_broker("waflow-restart-") as local:
        bootstrap, data = local.bootstrap, local.data
        for _ in range(args.repeats):
            for config in CONFIGS:
                for fault in ("term", "kill"):
                    work = Path(tempfile.mkdtemp(prefix="restart-", dir=data))
                    seconds = asyncio.run(once(bootstrap, work, config, fault))
                    results.setdefault(f"{fault}, {config}", []).append(seconds)
                    print(fault, config, round(seconds, 1), flush=True)
    summary = {k: {"median_s": statistics.median(v), "runs_s": v} for k, v in results.items()}
    Path(args.out).write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
