"""Sink benchmark: rows per second from the typed topics into the embedded ClickHouse through the
sink loop (consume, decode, rows, existing-id check, idempotent insert, commit), beside a bare
clickhouse-connect columnar insert of the same rows, prepared in advance, in the same run.

    python -m tests.benchmarks.sink [--deliveries 20000] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from clickhouse_connect.driver.client import Client

from infra.core import broker
from infra.core.clickhouse import connect, migrate
from infra.core.settings import Settings
from infra.core.topics import ensure_topics
from schemas import codec
from sink.consumer import SinkLoop
from sink.load import RowWriter
from sink.metrics import SinkMetrics
from sink.rows import to_row
from sink.writer import ClickHouseWriter, Engine
from tests.integration.stages import stage_env
from tests.integration.test_sink_loop import produce, typed_records

TABLES = ("flow_responses", "flow_events", "webhook_changes")


def bare_insert(engine: Engine, records: list[tuple[str, bytes, bytes]], chunk: int) -> float:
    """Columnar inserts of the same rows, decoded and built before the clock starts."""
    rows: dict[str, list[list[Any]]] = defaultdict(list)
    columns: dict[str, tuple[str, ...]] = {}
    for _, _, value in records:
        table, _, row = to_row(*codec().decode(value))
        rows[table.name].append(row)
        columns[table.name] = table.columns
    started = time.perf_counter()
    for name, table_rows in rows.items():
        for i in range(0, len(table_rows), chunk):
            part = table_rows[i : i + chunk]
            engine.client.insert(
                f"{engine.database}.{name}",
                [list(col) for col in zip(*part, strict=True)],
                column_names=list(columns[name]),
                column_oriented=True,
            )
    return time.perf_counter() - started


async def sink_loop(settings: Settings, engine: Engine, total: int) -> float:
    loop = SinkLoop(settings, RowWriter(ClickHouseWriter(engine), engine.embedded), SinkMetrics())
    task = asyncio.create_task(loop.run())
    db = engine.database
    count = "SELECT " + " + ".join(f"(SELECT count() FROM {db}.{t})" for t in TABLES)
    while not loop.consumer.assignment():  # the clock starts once the group has joined
        await asyncio.sleep(0.01)
    started = time.perf_counter()
    while (await engine.select(count))[1][0][0] < total:
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - started
    loop.stopping.set()
    await task
    return elapsed


async def one_run(client: Client, bootstrap: str, deliveries: int, run: int) -> dict[str, float]:
    """One engine per process (chDB's rule), so each run gets its own pair of databases."""
    settings = Settings.from_env(stage_env(bootstrap, Path(tempfile.mkdtemp())))
    await ensure_topics(settings)
    records = typed_records(settings, deliveries, seed=9)
    await produce(settings, records)
    for db in (f"sink{run}", f"bare{run}"):
        migrate(client, db)
    bare_s = bare_insert(Engine(client, f"bare{run}"), records, settings.sink_batch_rows)
    sink_s = await sink_loop(settings, Engine(client, f"sink{run}", embedded=True), len(records))
    return {
        "rows": len(records),
        "bare_rows_per_s": len(records) / bare_s,
        "sink_rows_per_s": len(records) / sink_s,
        "ratio": bare_s / sink_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deliveries", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", default="tests/benchmarks/results/sink.json")
    args = parser.parse_args()
    bootstrap = os.environ.get("WAFLOW_KAFKA_BOOTSTRAP") or broker.start(Path(".waflow"))
    client = connect(f"chdb://{tempfile.mkdtemp()}/clickhouse")
    runs = []
    for run in range(args.runs):
        runs.append(asyncio.run(one_run(client, bootstrap, args.deliveries, run)))
        print(runs[-1], flush=True)
    median = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"runs": runs, "median": median}, indent=2))
    print(json.dumps(median, indent=2))


if __name__ == "__main__":
    main()
