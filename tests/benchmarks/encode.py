"""The codec's encoder: the compiled writer (schemas/writer.py) against fastavro alone, per
record of each kind the stream worker writes, on the records it makes of realistic deliveries.
Both in the same process, alternating, medians of `--repeats`.

    python -m tests.benchmarks.encode [--deliveries 2000] [--repeats 15]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from infra.control.loadgen import Generator
from schemas import codec
from streams.encode import Encode
from streams.items import pack
from streams.normalize import normalize
from streams.records import DLQ, SCHEMA_OF, RawMeta


def per_record_us(encode: Encode, name: str, records: list[dict[str, Any]]) -> float:
    started = time.perf_counter()
    for record in records:
        encode(name, record)
    return (time.perf_counter() - started) / len(records) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deliveries", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--out", default="tests/benchmarks/results/encode.json")
    args = parser.parse_args()
    gen = Generator(seed=3)
    meta = RawMeta("raw", 0, 1, 1_764_000_000_000, "req", "", "bench")
    outputs = [
        o
        for i in range(args.deliveries)
        for o in normalize(gen.delivery(1_764_000_000 + i).body, meta)
    ]
    c = codec()
    work: dict[str, list[dict[str, Any]]] = {}
    for o in outputs:
        work.setdefault(SCHEMA_OF[o.kind], []).append(o.record)
    typed = [(o, c.encode(SCHEMA_OF[o.kind], o.record)) for o in outputs if o.kind != DLQ]
    work["ItemBatch"] = [c.decode(value)[1] for _, value in pack(typed, 12, 32 * 1024)]
    result: dict[str, dict[str, float]] = {}
    for name, records in work.items():
        fast, slow = [], []
        for _ in range(args.repeats):  # alternating, so drift hits both alike
            fast.append(per_record_us(c.encode, name, records))
            slow.append(per_record_us(c.fastavro_encode, name, records))
        row: dict[str, float] = {
            "records": len(records),
            "compiled_us": statistics.median(fast),
            "fastavro_us": statistics.median(slow),
        }
        row["ratio"] = row["compiled_us"] / row["fastavro_us"]
        result[name] = row
        print(
            f"{name:14} {len(records):>6} records  compiled {row['compiled_us']:7.1f} us"
            f"  fastavro {row['fastavro_us']:7.1f} us  ratio {row['ratio']:.2f}",
            flush=True,
        )
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
