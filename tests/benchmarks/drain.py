"""What Faust's fetch loop costs per Kafka record before any of waflow's code runs.

    python -m tests.benchmarks.drain [--records 20000] [--runs 5]

Faust's `Consumer._drain_messages` hands every record to its conductor through mode's
`Service.wait_first(callback(message), suspend_flow.wait())`, so that a rebalance can
interrupt a delivery blocked on a full stream buffer. `wait_first` makes four tasks per call
(the callback, the suspend event, the service's stopped and crashed events), waits for the
first and cancels the other three. This measures that call with a callback that returns at
once, against awaiting the same callback directly. No broker; medians of `--runs`.
The worker awaits the callback directly whenever it cannot wait (streams/handoff.py).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from mode import Service


async def deliver(n: int) -> int:
    return n


async def per_record_us(records: int) -> tuple[float, float]:
    service = Service()
    suspend = asyncio.Event()
    started = time.perf_counter()
    for i in range(records):
        await service.wait_first(deliver(i), suspend.wait())
    faust_way = (time.perf_counter() - started) / records * 1e6
    started = time.perf_counter()
    for i in range(records):
        await deliver(i)
    direct = (time.perf_counter() - started) / records * 1e6
    return faust_way, direct


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    runs = [asyncio.run(per_record_us(args.records)) for _ in range(args.runs)]
    faust_way = statistics.median(r[0] for r in runs)
    direct = statistics.median(r[1] for r in runs)
    print(f"wait_first per record: {faust_way:.1f} us; awaiting directly: {direct:.2f} us")


if __name__ == "__main__":
    main()
