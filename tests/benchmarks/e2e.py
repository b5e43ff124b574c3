"""End-to-end benchmark: the whole pipeline on this machine, at stepped rates.

The broker, the three stages (each its own process, the sink with the embedded ClickHouse) and
the load generator (tests/benchmarks/e2eload.py, its own process) share the machine's cores.
For each rate, repeated `--runs` times, it reports offered and accepted deliveries/s and
items/s, answer latency, POST-to-queryable latency (from the moment a POST was due until its
last row's `inserted_at`, matched by the request id the ingress answered), CPU seconds per
1,000 items and peak RSS of each stage, and consumer lag at the end of the step. A rate is
sustainable when at least 97 % of deliveries are accepted, the answer p99 stays under 1 s and
the lag left at the end of the step is at most one second of its items. Then: the highest
sustainable rate, a step at half of it, a py-spy profile of every stage at the highest one, and
a memory run at half of it.

    python -m tests.benchmarks.e2e [--rates 200,400,600,800,1000,1250,1500,2000,2500,3000]
        [--seconds 20] [--runs 3]
        [--memory-minutes 10] [--out tests/benchmarks/results]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson

from infra.control.lag import lag
from infra.core import broker
from infra.core.settings import Settings
from infra.core.topics import ensure_topics
from sink import query as sink_query
from tests.benchmarks.e2ereport import chart, markdown
from tests.benchmarks.proc import cpu_seconds, machine_busy_s, peak_rss_mb, rss_mb
from tests.integration.stages import Stage, free_port, stage_env

STAGES = ("ingest", "streams", "sink")
TABLES = ("flow_responses", "flow_events", "webhook_changes")


class Stack:
    def __init__(self, bootstrap: str, work: Path) -> None:
        self.env = stage_env(
            bootstrap,
            work,
            WAFLOW_HTTP_PORT=str(free_port()),
            WAFLOW_LOG_LEVEL="WARNING",
            WAFLOW_SINK_BATCH_SECONDS="1",  # the production default, not the tests' 0.5
        )
        self.settings = Settings.from_env(self.env)
        self.work = work
        self.stages: dict[str, Stage] = {}
        # Processes beside the stages whose CPU a step reports too (the broker, when known).
        self.neighbours: dict[str, int] = {}

    def start(self) -> None:
        asyncio.run(ensure_topics(self.settings))
        for name in STAGES:
            self.stages[name] = Stage(name, self.env, self.work / f"{name}.log").start()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                admin = self.settings.admin_port_of("ingest")
                ready = httpx.get(f"http://127.0.0.1:{admin}/readyz", timeout=2).is_success
                sink_query.post(self.settings, "SELECT 1", timeout=2).raise_for_status()
                if ready:
                    time.sleep(10)  # the stream worker's group settles before any load
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError("the stack did not come up: " + self.stages["sink"].tail())

    def stop(self) -> None:
        for stage in self.stages.values():
            stage.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.http_port}"

    def pids(self) -> dict[str, int]:
        return {name: s.proc.pid for name, s in self.stages.items() if s.proc}

    def query(self, sql: str) -> list[list[object]]:
        r = sink_query.post(self.settings, sql)
        r.raise_for_status()
        return list(r.json()["rows"])

    def behind(self) -> int:
        return sum(asyncio.run(lag(self.settings)).values())

    def drain(self, timeout_s: float = 180) -> None:
        deadline = time.monotonic() + timeout_s
        while self.behind() and time.monotonic() < deadline:
            time.sleep(1)

    def status_screen(self) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "infra.control.cli", "status", "--once", "--interval", "2"],
            env={**os.environ, **self.env, "COLUMNS": "150"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        return done.stdout


def step(
    stack: Stack, rate: float, seconds: float, seed: int, screen: Path | None, hot: float = 0.0
) -> dict:
    pids = {**stack.pids(), **stack.neighbours}
    cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
    busy0, wall0 = machine_busy_s(), time.monotonic()
    out = stack.work / f"load-{rate}-{seed}.jsonl"
    started = stack.work / f"started-{rate}-{seed}"
    load = subprocess.Popen(
        [sys.executable, "-m", "tests.benchmarks.e2eload", "--port", str(stack.settings.http_port),
         "--rate", str(rate), "--seconds", str(seconds), "--seed", str(seed), "--out", str(out),
         "--started", str(started), "--hot", str(hot)],
    )  # fmt: skip
    if screen is not None:
        while not started.exists() and load.poll() is None:
            time.sleep(0.1)
        time.sleep(seconds / 4)
        screen.write_text(stack.status_screen())
    _, status, usage = os.wait4(load.pid, 0)  # the load client's own CPU, from its rusage
    load.returncode = os.waitstatus_to_exitcode(status)
    cpu = {name: cpu_seconds(pid) - cpu0[name] for name, pid in pids.items()}
    cpu["load"] = usage.ru_utime + usage.ru_stime
    cores_busy = (machine_busy_s() - busy0) / (time.monotonic() - wall0)
    behind = stack.behind()
    answers = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    stack.drain()
    return {**measure(stack, rate, answers, cpu, behind), "machine_cores_busy": cores_busy}


def measure(stack: Stack, rate: float, answers: list, cpu: dict, behind: int) -> dict:
    accepted = [a for a in answers if a[3] == 200]
    first, last = min(a[1] for a in answers), max(a[1] for a in answers)
    span = max(last - first, 1e-9)
    items = sum(a[4] for a in accepted)
    since = int(first * 1000) - 1000
    union = " UNION ALL ".join(
        f"SELECT request_id, toUnixTimestamp64Milli(inserted_at) AS ms FROM waflow.{t} "
        f"WHERE inserted_at >= fromUnixTimestamp64Milli({since})"
        for t in TABLES
    )
    visible = dict(stack.query(f"SELECT request_id, max(ms) FROM ({union}) GROUP BY request_id"))
    queryable = sorted(int(str(visible[a[0]])) / 1000 - a[1] for a in accepted if a[0] in visible)
    answer = sorted(a[2] for a in answers)
    return {
        "offered_deliveries_per_s": rate,
        "accepted_deliveries_per_s": len(accepted) / span,
        "accepted_share": len(accepted) / len(answers),
        "items_per_s": items / span,
        "answer_p50_ms": 1000 * pct(answer, 50),
        "answer_p99_ms": 1000 * pct(answer, 99),
        "queryable_p50_s": pct(queryable, 50),
        "queryable_p95_s": pct(queryable, 95),
        "queryable_p99_s": pct(queryable, 99),
        "not_queryable": len(accepted) - len(queryable),
        "lag_at_end": behind,
        **{f"cpu_s_per_1000_items_{n}": 1000 * c / max(items, 1) for n, c in cpu.items()},
        **{f"peak_rss_mb_{n}": peak_rss_mb(pid) for n, pid in stack.pids().items()},
    }


def pct(ordered: list[float], p: float) -> float:
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else float("nan")


def sustainable(m: dict) -> bool:
    """Keeping up: what is in flight at the end of a step is about one sink batch interval (1 s)
    of items. Over capacity, lag grows all through the step (20,000 after 20 s at 650/s)."""
    return (
        m["accepted_share"] >= 0.97
        and m["answer_p99_ms"] <= 1000
        and m["lag_at_end"] <= m["items_per_s"]
    )


def median_of(runs: list[dict]) -> dict:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def ladder(stack: Stack, rates: list[float], seconds: float, runs: int, out: Path) -> list[dict]:
    steps = []
    for rate in rates:
        done = [
            step(stack, rate, seconds, seed=int(rate) * 10 + i, screen=out / f"status-{rate:g}.txt"
                 if i == runs - 1 else None)
            for i in range(runs)
        ]  # fmt: skip
        row = {**median_of(done), "runs": done}
        row["sustainable"] = sustainable(row)
        steps.append(row)
        print(markdown([row]), flush=True)
        if not row["sustainable"] and len(steps) > 1 and not steps[-2]["sustainable"]:
            break  # two unsustainable rates in a row: past the knee
    return steps


def profile(stack: Stack, rate: float, seconds: float, out: Path) -> None:
    """py-spy on every stage during one step at `rate` (not counted in the tables)."""
    spies = [
        subprocess.Popen(
            ["py-spy", "record", "--pid", str(pid), "--format", "raw", "--rate", "100",
             "-o", str(out / f"e2e-profile-{name}.txt"), "--duration", str(int(seconds))],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        for name, pid in stack.pids().items()
    ]  # fmt: skip
    step(stack, rate, seconds, seed=7, screen=None)
    for spy in spies:
        spy.wait(timeout=120)


def memory(stack: Stack, rate: float, minutes: float) -> dict:
    """RSS of each stage every 10 s under steady load; growth from minute 1 to the end."""
    pids = stack.pids()
    out = stack.work / "memory.jsonl"
    load = subprocess.Popen(
        [sys.executable, "-m", "tests.benchmarks.e2eload", "--port", str(stack.settings.http_port),
         "--rate", str(rate), "--seconds", str(minutes * 60), "--seed", "99", "--out", str(out)],
    )  # fmt: skip
    samples: list[dict[str, float]] = []
    while load.poll() is None:
        samples.append({n: rss_mb(pid) for n, pid in pids.items()})
        time.sleep(10)
    stack.drain()
    # Medians of a minute each (the sink's engine swings by tens of MB with merges): the
    # second minute of load against the last.
    warm = {n: statistics.median(s[n] for s in samples[6:12] or samples) for n in pids}
    end = {n: statistics.median(s[n] for s in samples[-6:]) for n in pids}
    return {
        "rate": rate,
        "minutes": minutes,
        "rss_mb_after_1_min": warm,
        "rss_mb_at_end": end,
        "growth": {n: end[n] / warm[n] - 1 for n in pids},
        "samples": samples,
    }


def report(out: Path) -> None:
    """The table and chart again from e2e.json (after a change to what counts as sustainable)."""
    result = json.loads((out / "e2e.json").read_text())
    for row in [*result["steps"], result["half"]]:
        row["sustainable"] = sustainable(row)
    kept = [s for s in result["steps"] if s["sustainable"]] or result["steps"][:1]
    result["highest_sustainable"] = max(kept, key=lambda s: s["items_per_s"])
    (out / "e2e.json").write_text(json.dumps(result, indent=2))
    best = result["highest_sustainable"]["offered_deliveries_per_s"]
    share = result["half"]["offered_deliveries_per_s"] / best
    label = "half of highest" if share == 0.5 else f"{share:.0%} of highest"
    (out / "e2e.md").write_text(markdown(result["steps"], result["half"], label))
    chart(result["steps"], out / "e2e.png")
    print((out / "e2e.md").read_text())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rates", default="200,400,600,800,1000,1250,1500,2000,2500,3000")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--memory-minutes", type=float, default=10)
    parser.add_argument("--memory-rate", type=float, default=0, help="default: half the highest")
    parser.add_argument("--out", default="tests/benchmarks/results")
    parser.add_argument("--report", action="store_true", help="rebuild the table and chart")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.report:
        report(out)
        return
    bootstrap = os.environ.get("WAFLOW_KAFKA_BOOTSTRAP") or broker.start(Path(".waflow"))
    stack = Stack(bootstrap, Path(tempfile.mkdtemp(prefix="waflow-e2e-")))
    stack.start()
    try:
        rates = [float(r) for r in args.rates.split(",")]
        steps = ladder(stack, rates, args.seconds, args.runs, out)
        best = max((s for s in steps if s["sustainable"]), key=lambda s: s["items_per_s"],
                   default=steps[0])  # fmt: skip
        top = best["offered_deliveries_per_s"]
        half_runs = [step(stack, top / 2, args.seconds, seed=500 + i, screen=None)
                     for i in range(args.runs)]  # fmt: skip
        half = {**median_of(half_runs), "runs": half_runs}
        half["sustainable"] = sustainable(half)
        profile(stack, top, args.seconds, out)
        mem_rate = args.memory_rate or top / 2
        mem = memory(stack, mem_rate, args.memory_minutes) if args.memory_minutes else None
    finally:
        stack.stop()
    result = {"steps": steps, "highest_sustainable": best, "half": half, "memory": mem}
    (out / "e2e.json").write_text(json.dumps(result, indent=2))
    table = markdown(steps, half)
    (out / "e2e.md").write_text(table)
    chart(steps, out / "e2e.png")
    print(table)
    print(json.dumps({"half": {k: v for k, v in half.items() if k != "runs"}, "memory": mem and {
        k: v for k, v in mem.items() if k != "samples"}}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
