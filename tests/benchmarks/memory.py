"""Memory from a cold start: a fresh stack (new broker data, new engine, new RocksDB) under
steady load for `--minutes`, each stage's RSS sampled every 10 s; growth from the second minute
to the last (tests/benchmarks/e2e.py `memory`).

    python -m tests.benchmarks.memory [--rate 250] [--minutes 10]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tests.benchmarks.e2e import memory
from tests.benchmarks.local import local_stack


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=250, help="deliveries/s: half the knee")
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--out", default="tests/benchmarks/results/memory-cold.json")
    args = parser.parse_args()
    with local_stack("waflow-memory-") as (_, stack):
        result = memory(stack, args.rate, args.minutes)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=2))


if __name__ == "__main__":
    main()
