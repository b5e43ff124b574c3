"""The numbers behind docs/capacity.md, measured on the whole stack: CPU seconds per million
items for each stage, bytes per item on each topic (as the broker stores it, compressed) and in
each table (compressed, on disk), and the stream worker's RocksDB bytes per claim.

    python -m tests.benchmarks.capacity [--rate 300] [--seconds 60] [--runs 3]

`--runs` fresh stacks one after the other: CPU figures are the median over the runs (each
run's are kept too), byte figures are the last run's. One local broker; the three stages as
`waflow <stage>` processes; realistic generated load (tests/benchmarks/e2eload.py, open loop,
below the knee so nothing queues). Writes tests/benchmarks/results/capacity.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from infra.core import broker
from tests.benchmarks.local import local_stack
from tests.benchmarks.proc import cpu_seconds

TABLES = ("flow_responses", "flow_events", "webhook_changes", "dead_letters", "message_statuses")


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def topic_bytes(data: Path, base: int, topic: str) -> int:
    """Bytes the broker holds for `topic`: its partitions' log segments."""
    total = 0
    for node in broker.nodes_for(data, base_port=base):
        for part in (node.home / "data").glob(f"{topic}-*"):
            total += sum(f.stat().st_size for f in part.glob("*.log"))
    return total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=300, help="deliveries per second")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", default="tests/benchmarks/results/capacity.json")
    args = parser.parse_args()
    runs = [measure(args.rate, args.seconds) for _ in range(args.runs)]
    per_run = [run["cpu_s_per_million_items"] for run in runs]
    result = {
        **runs[-1],
        "runs": args.runs,
        "cpu_s_per_million_items": {
            stage: statistics.median(run[stage] for run in per_run) for stage in per_run[0]
        },
        "cpu_s_per_million_items_per_run": per_run,
    }
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


def measure(rate: float, seconds: float) -> dict[str, Any]:
    """One fresh stack under `rate` deliveries/s for `seconds`: CPU and bytes per item."""
    with local_stack("waflow-capacity-") as (local, stack):
        data, base = local.data, local.base_port
        pids = stack.pids()
        cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
        out = data / "answers.jsonl"
        subprocess.run(
            [sys.executable, "-m", "tests.benchmarks.e2eload", "--port",
             str(stack.settings.http_port), "--rate", str(rate), "--seconds",
             str(seconds), "--out", str(out)],
            check=True,
        )  # fmt: skip
        stack.drain(600)
        time.sleep(3)
        cpu = {name: cpu_seconds(pid) - cpu0[name] for name, pid in pids.items()}
        answers = [orjson.loads(line) for line in out.read_bytes().splitlines()]
        deliveries = sum(1 for a in answers if a[3] == 200)
        rows = {t: int(str(stack.query(f"SELECT count() FROM waflow.{t}")[0][0])) for t in TABLES}
        items = rows["flow_responses"] + rows["flow_events"] + rows["webhook_changes"]
        parts = stack.query(
            "SELECT table, sum(rows), sum(data_compressed_bytes), sum(bytes_on_disk) "
            "FROM system.parts WHERE database = 'waflow' AND active GROUP BY table"
        )
        t = stack.settings.topics
        topics = {
            name: topic_bytes(data, base, name)
            for name in (t.raw, t.items, t.responses, t.events, t.other, t.claims_changelog)
        }
        rocksdb = dir_bytes(stack.settings.data_dir / "streams")
    return {
        "rate": rate,
        "seconds": seconds,
        "deliveries": deliveries,
        "items": items,
        "rows": rows,
        "cpu_s_per_million_items": {k: v / items * 1e6 for k, v in cpu.items()},
        "topic_bytes_per_item": {k: v / items for k, v in topics.items()},
        "topic_bytes": topics,
        "table_bytes": {
            str(table): {"rows": int(str(n)), "compressed": int(str(c)), "on_disk": int(str(d))}
            for table, n, c, d in parts
        },
        "rocksdb_bytes": rocksdb,
        "rocksdb_bytes_per_claim": rocksdb / items,
    }


if __name__ == "__main__":
    main()
