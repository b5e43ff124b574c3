"""The ingress against the compiled reference gateway (../shared/peers/gopeer) and against the
previous release, in one run, on one broker, topic and set of signed bodies.

Each server is pinned to core 0 (`taskset`); the broker and the compiled load client
(tests/benchmarks/goload) share core 1, as the issue's outside measurement did. Per run, each
system gets the closed-loop maximum at 64 connections; then, at fractions of the gateway's
median maximum, the open-loop latency (timed from when each request was due) for the
latency-throughput chart. Writes peer.json, peer.md and peer.png under tests/benchmarks/results.

    python -m tests.benchmarks.peer [--seconds 10] [--runs 3] [--previous 8173f0a]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from infra.control.loadgen import Generator
from infra.core import broker
from infra.core.settings import Settings
from infra.core.topics import ensure_topics
from ingest.verify import sign
from tests.conftest import ROOT

WORK = ROOT / ".waflow" / "bench"
GOPEER = ROOT.parent / "shared" / "peers" / "gopeer"
SECRET = "bench-secret"
ENV = {"WAFLOW_APP_SECRETS": f"bench={SECRET}", "WAFLOW_VERIFY_TOKEN": "v"}
SYSTEMS = ("gopeer", "waflow", "previous")
PORTS = {"gopeer": 18190, "waflow": 18191, "previous": 18192}
FRACTIONS = (0.25, 0.5, 0.75, 0.9)


def build(previous: str) -> tuple[Path, Path, Path]:
    """The gateway, the load client and a checkout of the previous release, built once."""
    WORK.mkdir(parents=True, exist_ok=True)
    gopeer, goload = WORK / "gopeer", WORK / "goload"
    if not gopeer.exists():
        subprocess.run(["bash", str(GOPEER / "build.sh"), str(gopeer)], check=True)
    if not goload.exists():
        here = Path(__file__).parent / "goload"
        subprocess.run(["go", "build", "-o", str(goload), "."], cwd=here, check=True)
    tree = WORK / f"previous-{previous}"
    if not tree.exists():
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), previous],
            check=True,
        )
    return gopeer, goload, tree


def requests_file(n: int = 2000) -> Path:
    gen = Generator(seed=3, run="peer")
    path = WORK / "requests.jsonl"
    with path.open("w") as out:
        for _ in range(n):
            body = gen.delivery(int(time.time()), max_items=100).body
            line = {"body": base64.b64encode(body).decode(), "sig": sign(body, SECRET.encode())}
            out.write(json.dumps(line) + "\n")
    return path


def start(system: str, settings: Settings, gopeer: Path, tree: Path) -> subprocess.Popen[bytes]:
    port = PORTS[system]
    env = {**os.environ, **ENV, "WAFLOW_HTTP_PORT": str(port), "WAFLOW_LOG_LEVEL": "WARNING"}
    env["WAFLOW_INGEST_ADMIN_PORT"] = str(port + 1000)
    env["WAFLOW_KAFKA_BOOTSTRAP"] = settings.kafka_bootstrap
    pin = ["taskset", "-c", "0"]
    if system == "gopeer":
        cmd = [str(gopeer), "-addr", f"127.0.0.1:{port}", "-brokers", settings.kafka_bootstrap]
        cmd += ["-topic", settings.topics.raw, "-secrets", SECRET]
        proc = subprocess.Popen([*pin, *cmd], stderr=subprocess.DEVNULL)
    elif system == "waflow":
        cmd = [sys.executable, "-m", "infra.control.cli", "ingest"]
        proc = subprocess.Popen([*pin, *cmd], env=env, cwd=ROOT)
    else:
        env["PYTHONPATH"] = str(tree)
        proc = subprocess.Popen(
            [*pin, sys.executable, "-m", "infra.cli", "ingest"], env=env, cwd=tree
        )
    body = b'{"entry": []}'
    headers = {"x-hub-signature-256": sign(body, SECRET.encode())}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            url = f"http://127.0.0.1:{port}/webhook"
            if httpx.post(url, content=body, headers=headers, timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"{system} did not answer a signed POST in 60 s")


def load(
    goload: Path, requests: Path, port: int, seconds: float, rate: float = 0
) -> dict[str, Any]:
    cmd = ["taskset", "-c", "1", str(goload), "-url", f"http://127.0.0.1:{port}/webhook"]
    cmd += ["-requests", str(requests), "-c", "64", "-d", str(seconds), "-rate", str(rate)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def pin_broker(data_dir: Path) -> None:
    """The broker's JVM on core 1, beside the load client."""
    for node in broker.nodes_for(data_dir):
        if node.pid_file.exists():
            pid = node.pid_file.read_text().strip()
            subprocess.run(
                ["taskset", "-a", "-p", "-c", "1", pid], capture_output=True, check=False
            )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--previous", default="8173f0a", help="the previous release's commit")
    parser.add_argument("--out", default="tests/benchmarks/results/peer")
    args = parser.parse_args()
    if shutil.which("taskset") is None or shutil.which("go") is None:
        sys.exit("needs taskset (util-linux) and Go")
    gopeer, goload, tree = build(args.previous)
    settings = Settings.from_env({**os.environ, **ENV})
    if not os.environ.get("WAFLOW_KAFKA_BOOTSTRAP"):
        broker.start(settings.data_dir)
        pin_broker(settings.data_dir)
    asyncio.run(ensure_topics(settings))
    requests = requests_file()
    closed: dict[str, list[dict[str, Any]]] = {s: [] for s in SYSTEMS}
    curve: dict[str, list[dict[str, Any]]] = {s: [] for s in SYSTEMS}
    for run in range(args.runs):
        for system in SYSTEMS:
            proc = start(system, settings, gopeer, tree)
            try:
                load(goload, requests, PORTS[system], 2)  # warm-up
                closed[system].append(load(goload, requests, PORTS[system], args.seconds))
                print(run, system, closed[system][-1], flush=True)
            finally:
                proc.terminate()
                proc.wait()
    best = statistics.median(r["rps"] for r in closed["gopeer"])
    for system in SYSTEMS:
        proc = start(system, settings, gopeer, tree)
        try:
            for fraction in FRACTIONS:
                point = load(goload, requests, PORTS[system], args.seconds, fraction * best)
                curve[system].append(point)
                print(system, fraction, point, flush=True)
        finally:
            proc.terminate()
            proc.wait()
    report(closed, curve, Path(args.out), args.previous)


def report(
    closed: dict[str, list[dict[str, Any]]],
    curve: dict[str, list[dict[str, Any]]],
    out: Path,
    previous: str,
) -> None:
    metrics = ("rps", "p50_ms", "p99_ms")
    median = {s: {m: statistics.median(r[m] for r in closed[s]) for m in metrics} for s in SYSTEMS}
    per_run = {
        "waflow_over_gopeer": [
            w["rps"] / g["rps"] for w, g in zip(closed["waflow"], closed["gopeer"], strict=True)
        ],
        "previous_over_gopeer": [
            p["rps"] / g["rps"] for p, g in zip(closed["previous"], closed["gopeer"], strict=True)
        ],
        "waflow_over_previous": [
            w["rps"] / p["rps"] for w, p in zip(closed["waflow"], closed["previous"], strict=True)
        ],
    }
    ratios = {k: statistics.median(v) for k, v in per_run.items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    data = {"closed": closed, "curve": curve, "median": median, "ratios": ratios, "runs": per_run}
    out.with_suffix(".json").write_text(json.dumps(data, indent=2))
    lines = [
        "# Ingress against the compiled gateway and the previous release",
        "",
        f"One run of `python -m tests.benchmarks.peer` (previous release: {previous}). Each server",
        "pinned to core 0; the broker and the compiled load client on core 1; 64 connections;",
        "the same broker, topic and signed bodies. Medians of the runs; ratios per run, then",
        "their median.",
        "",
        "| system | accepted/s | p50 ms | p99 ms |",
        "| --- | --- | --- | --- |",
        *(
            f"| {s} | {median[s]['rps']:,.0f} | {median[s]['p50_ms']:.1f} | "
            f"{median[s]['p99_ms']:.1f} |"
            for s in SYSTEMS
        ),
        "",
        "| ratio | median | per run |",
        "| --- | --- | --- |",
        *(
            f"| {k} | {ratios[k]:.2f} | {', '.join(f'{x:.2f}' for x in per_run[k])} |"
            for k in ratios
        ),
        "",
        "Open loop at fractions of the gateway's maximum (latency from when each request was due):",
        "",
        "| system | offered/s | accepted/s | p50 ms | p99 ms |",
        "| --- | --- | --- | --- | --- |",
        *(
            f"| {s} | {p['offered_rps']:,.0f} | {p['rps']:,.0f} | {p['p50_ms']:.1f} | "
            f"{p['p99_ms']:.1f} |"
            for s in SYSTEMS
            for p in curve[s]
        ),
    ]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for s in SYSTEMS:
        ax.plot([p["rps"] for p in curve[s]], [p["p99_ms"] for p in curve[s]], "o-", label=s)
    ax.set_xlabel("accepted requests/s (open loop)")
    ax.set_ylabel("p99 latency, ms")
    ax.set_yscale("log")
    ax.legend()
    ax.set_title("Ingress: waflow, previous release, compiled gateway")
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=100)


if __name__ == "__main__":
    main()
