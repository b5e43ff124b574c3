"""The short chaos suite run N times in a row, one loss report per run (issue #19 asks for 20).

    python -m tests.chaos.repeat [--runs 20] [--out tests/benchmarks/results/chaos-repeat.md]

Each run is `tests.chaos.run` with the arguments `make test` gives it (90 s, one broker, the
stages killed with SIGKILL and the worker stopped with SIGTERM), in its own process, so one
run's leftovers cannot help or hurt the next. A run's loss is the acked items absent from
ClickHouse or from the typed topics.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SHORT = [
    "--minutes", "1.5", "--rate", "15", "--brokers", "1",
    "--faults", "ingest,streams,sink,streams-term", "--every", "20",
]  # fmt: skip


def one(out: Path) -> dict[str, Any]:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "tests.chaos.run", *SHORT, "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    result: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {}
    result["exit_code"] = proc.returncode
    result["wall_s"] = round(time.monotonic() - started)
    if proc.returncode != 0:
        result["tail"] = (proc.stdout + proc.stderr)[-3000:]
    return result


def row(n: int, r: dict[str, Any]) -> str:
    tables = r.get("tables", [])
    recovery = r.get("recovery_s", {})
    slowest = {stage: max(times) for stage, times in recovery.items() if times}
    cells = [
        n,
        r["exit_code"],
        r.get("deliveries", {}).get("acked", 0),
        sum(t["acked_items"] for t in tables),
        sum(t["lost"] for t in tables),
        sum(t["duplicated_rows"] for t in tables),
        r.get("topics", {}).get("acked_items_missing", "?"),
        r.get("faults", {}),
        slowest,
    ]
    return "| " + " | ".join(str(c) for c in cells) + " |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--out", default="tests/benchmarks/results/chaos-repeat.md")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="waflow-chaos-repeat-"))
    lines = [
        "| run | exit | acked deliveries | acked items | lost (tables) | duplicated rows | "
        "missing on topics | faults | slowest restart to output (s) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    results = []
    for n in range(1, args.runs + 1):
        r = one(work / f"run-{n}.json")
        results.append(r)
        lines.append(row(n, r))
        print(lines[-1], flush=True)
    recoveries = {
        stage: [s for r in results for s in r.get("recovery_s", {}).get(stage, [])]
        for stage in ("streams", "sink")
    }
    summary = {
        stage: {"restarts": len(v), "median_s": statistics.median(v), "max_s": max(v)}
        for stage, v in recoveries.items()
        if v
    }
    clean = sum(1 for r in results if r["exit_code"] == 0)
    text = "\n".join(
        [*lines, "", f"clean runs: {clean} of {len(results)}", f"restart to output: {summary}"]
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text + "\n")
    (work / "runs.json").write_text(json.dumps(results, indent=2, default=str))
    print(text)
    return 0 if clean == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
