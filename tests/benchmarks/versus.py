"""End to end against the previous release, side by side in one run (issue #22).

One broker; two whole stacks on it, this tree's and the previous release's (a git worktree of
it, shared with tests/benchmarks/peer.py), each with its own topic prefix and data directory.
Both are started, then every rate is run `--runs` times on each, alternating, with the same
load client and the same signed bodies (tests/benchmarks/e2eload.py). Items per second are
those of the accepted deliveries, POST-to-queryable from when a POST was due to its last row's
`inserted_at` (tests/benchmarks/e2e.py `measure`). Medians of the runs.

    python -m tests.benchmarks.versus [--rates 300,600,900,1200,1500,2000,2500,3000] [--seconds 20]
        [--runs 3] [--warmup 60] [--previous 8173f0a]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

import httpx

from infra.core.topics import ensure_topics
from tests.benchmarks.e2e import STAGES, Stack, median_of, step, sustainable
from tests.benchmarks.local import local_broker
from tests.benchmarks.peer import build
from tests.integration.stages import Stage

CPU = ("ingest", "streams", "sink", "broker", "load")  # CPU s per 1,000 items, each
KEYS = ("items_per_s", "accepted_share", "answer_p99_ms", "queryable_p50_s", "queryable_p95_s",
        "lag_at_end", "machine_cores_busy",
        *(f"cpu_s_per_1000_items_{n}" for n in CPU))  # fmt: skip


class PreviousStack(Stack):
    """The previous release: `infra.cli`, health and /query on its public and sink ports, and
    a /query without a token."""

    def __init__(self, bootstrap: str, work: Path, tree: Path) -> None:
        super().__init__(bootstrap, work)
        self.tree = tree

    def start(self) -> None:
        asyncio.run(ensure_topics(self.settings))  # today's set holds the previous one's
        for name in STAGES:
            log = self.work / f"{name}.log"
            self.stages[name] = Stage(name, self.env, log, tree=self.tree, cli="infra.cli").start()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                ready = httpx.get(f"{self.url}/readyz", timeout=2).is_success
                self.query("SELECT 1")
                if ready:
                    time.sleep(10)
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError("the previous release did not come up: " + self.stages["sink"].tail())

    def query(self, sql: str) -> list[list[object]]:
        r = httpx.post(f"http://127.0.0.1:{self.settings.sink_port}/query", content=sql.encode(),
                       timeout=120)  # fmt: skip
        r.raise_for_status()
        return list(r.json()["rows"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rates", default="300,600,900,1200,1500,2000,2500,3000")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=60, help="seconds of load per stack first")
    parser.add_argument("--previous", default="8173f0a")
    parser.add_argument("--out", default="tests/benchmarks/results")
    parser.add_argument("--report", action="store_true", help="rebuild versus.md from the JSON")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.report:
        write_report(out, args.previous)
        return
    _, _, tree = build(args.previous)
    rows: list[dict[str, object]] = []
    with local_broker("waflow-versus-") as local:
        stacks: dict[str, Stack] = {}
        for name in ("waflow", "previous"):
            (local.data / name).mkdir()
        stacks["waflow"] = Stack(local.bootstrap, local.data / "waflow")
        stacks["previous"] = PreviousStack(local.bootstrap, local.data / "previous", tree)
        for stack in stacks.values():
            stack.neighbours["broker"] = local.broker_pid
        try:
            for stack in stacks.values():
                stack.start()
            # Not counted: the broker's JIT and every stage's first minute (the broker alone
            # spent 0.5 of a core at 300 deliveries/s in its first minute, 0.2 at 900/s by
            # its third).
            warm = float(args.rates.split(",")[0])
            for stack in stacks.values():
                step(stack, warm, args.warmup, 6000, None)
            for rate in (float(r) for r in args.rates.split(",")):
                done: dict[str, list[dict]] = {name: [] for name in stacks}
                for i in range(args.runs):
                    order = list(stacks) if i % 2 == 0 else list(stacks)[::-1]
                    for name in order:
                        done[name].append(step(stacks[name], rate, args.seconds, 7000 + i, None))
                for name, runs in done.items():
                    m = median_of(runs)
                    row = {"system": name, "rate": rate, "sustainable": sustainable(m),
                           **{k: m[k] for k in KEYS}, "runs": runs}  # fmt: skip
                    rows.append(row)
                    print(json.dumps({k: v for k, v in row.items() if k != "runs"}), flush=True)
                if not any(r["sustainable"] for r in rows[-2 * len(stacks) :]) and len(rows) > 2:
                    break  # two rates in a row that neither system sustains: past both knees
        finally:
            for stack in stacks.values():
                stack.stop()
    (out / "versus.json").write_text(json.dumps(rows, indent=2))
    write_report(out, args.previous)


def write_report(out: Path, previous: str) -> None:
    rows = json.loads((out / "versus.json").read_text())
    (out / "versus.md").write_text(table(rows, previous) + "\n" + knees(rows))
    print((out / "versus.md").read_text())


def knees(rows: list[dict]) -> str:
    """Each system's highest rate by the lag rule and by POST-to-queryable p95 of at most
    2 s, and this tree's ratio to the previous release by each."""
    rules = {"the lag rule": lambda r: r["sustainable"],
             "queryable p95 at most 2 s": lambda r: r["queryable_p95_s"] <= 2.0}  # fmt: skip
    lines = ["| highest sustained items/s by | this tree | previous | ratio |",
             "| --- | --- | --- | --- |"]  # fmt: skip
    for label, ok in rules.items():
        best = {name: max((r["items_per_s"] for r in rows if r["system"] == name and ok(r)),
                          default=0.0) for name in ("waflow", "previous")}  # fmt: skip
        ratio = best["waflow"] / best["previous"] if best["previous"] else float("nan")
        lines.append(f"| {label} | {best['waflow']:,.0f} | {best['previous']:,.0f} | {ratio:.2f} |")
    return "\n".join(lines) + "\n"


def table(rows: list[dict[str, object]], previous: str) -> str:
    lines = [
        f"# End to end: this tree against the previous release ({previous}), side by side",
        "",
        "| rate (deliveries/s) | system | sustainable | items/s | accepted | answer p99 ms | "
        "queryable p50 s | queryable p95 s | lag at end | cores busy (of 2) | "
        "CPU s / 1,000 items: " + " / ".join(CPU) + " |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        cpu = " / ".join(f"{r[f'cpu_s_per_1000_items_{n}']:.3f}" for n in CPU)
        lines.append(
            f"| {r['rate']:g} | {r['system']} | {'yes' if r['sustainable'] else 'no'} | "
            f"{r['items_per_s']:,.0f} | {r['accepted_share']:.3f} | {r['answer_p99_ms']:.0f} | "
            f"{r['queryable_p50_s']:.2f} | {r['queryable_p95_s']:.2f} | {r['lag_at_end']} | "
            f"{r['machine_cores_busy']:.2f} | {cpu} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
