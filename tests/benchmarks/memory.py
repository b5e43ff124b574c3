"""Memory from a cold start: a fresh stack (new broker data, new engine, new RocksDB) under
steady load for `--minutes`, each stage's RSS sampled every 10 s; growth from the second minute
to the last (tests/benchmarks/e2e.py `memory`). `--runs` fresh stacks one after the other; the
report is each stage's median growth over the runs.

    python -m tests.benchmarks.memory [--rate 375] [--minutes 10] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from tests.benchmarks.e2e import memory
from tests.benchmarks.local import local_stack


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--rate", type=float, default=375, help="deliveries/s: half the knee (versus.md)"
    )
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", default="tests/benchmarks/results/memory-cold.json")
    args = parser.parse_args()
    runs = []
    for _ in range(args.runs):
        with local_stack("waflow-memory-") as (_, stack):
            runs.append(memory(stack, args.rate, args.minutes))
        print(json.dumps({k: v for k, v in runs[-1].items() if k != "samples"}), flush=True)
    stages = list(runs[0]["growth"])
    result = {
        "rate": args.rate,
        "minutes": args.minutes,
        "median_growth": {n: statistics.median(r["growth"][n] for r in runs) for n in stages},
        "runs": runs,
    }
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=2))


if __name__ == "__main__":
    main()
