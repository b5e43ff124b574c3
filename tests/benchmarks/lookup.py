"""Whether the sink's write slows as its dedup window fills: the time of one batch's write
(the existing-id lookup within +-7 days, then the insert) with 0 to N rows already in
`flow_responses`, on the embedded engine (chDB), both write paths.

    python -m tests.benchmarks.lookup [--rows 0,1000000,4000000,16000000] [--repeats 5]

- engine: the default embedded path, one INSERT ... SELECT over an Avro container
  (sink/avro.py `insert`);
- python: the path a ClickHouse server gets (sink/writer.py `ClickHouseWriter._write`: a
  SELECT of the batch's ids, then an insert of the new rows).

The filler rows are synthetic (50 WABAs, response times spread over +-3 days of the batches'),
so every one of them is inside the lookup's time range. Each batch is about 200 realistic
deliveries' flow responses, new ids, so every row is inserted. Writes
tests/benchmarks/results/lookup.json. Not exercised against a ClickHouse server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from clickhouse_connect.driver.client import Client

from infra.control.loadgen import Generator
from infra.core.clickhouse import connect, migrate
from schemas import catalog
from sink.batch import cut
from sink.writer import ClickHouseWriter, Consumed, Engine
from streams.encode import typed
from streams.records import RawMeta

T0 = 1_764_000_000  # the generated deliveries' epoch seconds
SPREAD_MS = 3 * 24 * 3600 * 1000  # filler times: T0 +- 3 days, inside the +-7-day lookup
RESPONSES = catalog.RESPONSES


def responses(seed: int, deliveries: int = 200) -> list[Consumed]:
    """The flow responses of `deliveries` realistic deliveries, encoded as the worker does."""
    gen = Generator(seed=seed, run=f"lookup{seed}")  # its own message ids
    out: list[Consumed] = []
    for d in range(deliveries):
        body = gen.delivery(T0 + d).body
        meta = RawMeta("raw", 0, d, T0 * 1000, f"lookup-{seed}-{d}", "", "bench")
        for output, value in typed(body, meta):
            if output.kind == RESPONSES.kind:
                out.append(Consumed(RESPONSES.topic, 0, len(out), value))
    return out


def fill(client: Client, start: int, stop: int) -> None:
    """Rows start..stop-1 of synthetic filler, in one INSERT ... SELECT."""
    client.command(
        f"INSERT INTO waflow.{RESPONSES.table} (message_id, waba_id, responded_at, received_at) "
        f"SELECT concat('wamid.filler.', toString(number)), concat('waba-', toString(number % 50)),"
        f" fromUnixTimestamp64Milli(toInt64({T0 * 1000} + number % {2 * SPREAD_MS} - {SPREAD_MS}),"
        f" 'UTC'), now64(3) FROM numbers({start}, {stop - start})"
    )
    client.command(f"OPTIMIZE TABLE waflow.{RESPONSES.table} FINAL")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", default="0,1000000,4000000,16000000")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="tests/benchmarks/results/lookup.json")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="waflow-lookup-") as tmp:
        client = connect(f"chdb://{Path(tmp) / 'ch'}")
        migrate(client, "waflow")
        writer = ClickHouseWriter(Engine(client, "waflow", embedded=True))
        loaded, seed = 0, 0
        for target in sorted(int(x) for x in args.rows.split(",")):
            if target > loaded:
                started = time.perf_counter()
                fill(client, loaded, target)
                loaded = target
                print(f"filled to {loaded:,} rows in {time.perf_counter() - started:.1f} s")
            for path in ("engine", "python"):
                times, sizes = [], []
                for _ in range(args.repeats):
                    seed += 1  # new ids every batch: each write inserts all its rows
                    [batch] = cut(responses(seed), datetime.now(UTC), path == "engine").batches
                    started = time.perf_counter()
                    inserted = asyncio.run(writer.write(batch))
                    times.append(time.perf_counter() - started)
                    sizes.append(batch.size)
                    assert inserted == batch.size, (inserted, batch.size)
                row = {
                    "rows_in_window": loaded,
                    "path": path,
                    "batch_rows_median": statistics.median(sizes),
                    "write_s_median": statistics.median(times),
                    "write_s": times,
                }
                results.append(row)
                print(
                    f"{loaded:>12,} rows  {path:6}  {row['batch_rows_median']:>5.0f} rows a batch"
                    f"  write {row['write_s_median']:.3f} s (median of {args.repeats})"
                )
        client.close()
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
