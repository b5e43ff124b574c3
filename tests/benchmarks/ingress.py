"""Ingress benchmark: signed webhooks accepted per second and answer latency, with acks=all to
the local broker, beside the same server answering a bare 200 after verifying (no Kafka), in the
same run; with --tls also the Kafka server over HTTPS (certificates made for the run). Each
server is one process (one core); the load client runs in this process.

    python -m tests.benchmarks.ingress [--seconds 15] [--runs 3] [--tls]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import uvicorn
from starlette.applications import Starlette

from infra.control.loadgen import Generator
from infra.core import broker
from infra.core.settings import Settings
from infra.core.topics import ensure_topics
from ingest.producer import RawRecord
from ingest.routes import create_app
from ingest.server import serve as serve_ingress
from ingest.verify import sign
from tests.benchmarks import e2eload
from tests.benchmarks.loadclient import request, run

ENV = {"WAFLOW_APP_SECRETS": "bench=bench-secret", "WAFLOW_VERIFY_TOKEN": "v"}


class NoWriter:
    """The baseline: verify the signature and answer 200, write nothing."""

    async def write(self, record: RawRecord) -> None:
        return None


async def ready() -> bool:
    return True


def bare_app(settings: Settings) -> Starlette:
    return create_app(settings, NoWriter())


def serve(kind: str, port: int) -> None:
    settings = Settings.from_env({**os.environ, **ENV, "WAFLOW_HTTP_PORT": str(port)})
    if kind in ("kafka", "kafka-tls"):
        serve_ingress(settings)  # what `waflow ingest` runs; TLS from WAFLOW_TLS_* in the env
        return
    app = bare_app(settings)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="error",
        access_log=False,
        loop="uvloop",
        http="httptools",
    )


def bodies(n: int = 2000) -> list[bytes]:
    gen = Generator(seed=3, run="bench")
    out = []
    for _ in range(n):
        body = gen.delivery(int(time.time()), max_items=100).body
        out.append(
            request(
                "/webhook",
                body,
                {
                    "content-type": "application/json",
                    "x-hub-signature-256": sign(body, b"bench-secret"),
                },
            )
        )
    return out


def make_tls() -> tuple[dict[str, str], ssl.SSLContext]:
    """A CA and a server certificate for this run; the client trusts that CA."""
    from tests.ingest.certs import Authority

    ca = Authority("bench-ca", Path(tempfile.mkdtemp()))
    server = ca.issue("localhost", client=False, stem="server")
    env = {
        "WAFLOW_TLS_CERT": str(server.cert),
        "WAFLOW_TLS_KEY": str(server.key),
        "WAFLOW_TLS_CA_FOR_CLIENT": str(ca.pem),
    }
    return env, ssl.create_default_context(cafile=str(ca.pem))


def start(kind: str, port: int, tls: dict[str, str]) -> subprocess.Popen[bytes]:
    admin = port + 1000
    env = {**os.environ, **ENV, **(tls if kind == "kafka-tls" else {})}
    env["WAFLOW_INGEST_ADMIN_PORT"] = str(admin)
    env.pop("WAFLOW_TLS_CA_FOR_CLIENT", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.benchmarks.ingress", "--serve", kind, "--port", str(port)],
        env=env,
    )
    scheme = "https" if kind == "kafka-tls" else "http"
    verify: str | bool = tls.get("WAFLOW_TLS_CA_FOR_CLIENT", False)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if kind.startswith("kafka"):  # the producer is connected: the admin port says so
                up = httpx.get(f"http://127.0.0.1:{admin}/readyz", timeout=1).is_success
            else:  # the bare server has no admin port: any answer from the route will do
                url = f"{scheme}://localhost:{port}/webhook"
                up = httpx.get(url, timeout=1, verify=verify).status_code == 403
            if up:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"{kind} server did not become ready")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", choices=("kafka", "bare", "kafka-tls"))
    parser.add_argument("--tls", action="store_true", help="also run the Kafka server over HTTPS")
    parser.add_argument("--port", type=int, default=18080)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--out", default="tests/benchmarks/results/ingress.json")
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return
    settings = Settings.from_env({**os.environ, **ENV})
    if not os.environ.get("WAFLOW_KAFKA_BOOTSTRAP"):
        broker.start(settings.data_dir)
    asyncio.run(ensure_topics(settings))
    reqs = bodies()
    # Kafka first: the bare server then gets the same open-loop rate, which shows how much of
    # the tail at that rate is the machine (load client, scheduler) rather than the produce path.
    kinds = [("kafka", 18082), ("bare", 18081)] + ([("kafka-tls", 18083)] if args.tls else [])
    tls, client_ctx = make_tls() if args.tls else ({}, None)
    rows: dict[str, list[dict[str, float]]] = {kind: [] for kind, _ in kinds}
    for _ in range(args.runs):
        open_loop_rate = 0.0
        for kind, port in kinds:
            proc = start(kind, port, tls)
            ctx = client_ctx if kind == "kafka-tls" else None
            try:
                asyncio.run(run(port, reqs[:200], 2, args.connections, ctx))  # warm-up
                res = asyncio.run(run(port, reqs, args.seconds, args.connections, ctx))
                if kind == "kafka":  # the latency target is set at 80 % of the measured rate
                    open_loop_rate = 0.8 * res.rate
                if kind in ("kafka", "bare"):
                    steady = asyncio.run(
                        e2eload.run(
                            port, open_loop_rate, args.seconds, 3, 64, secret=b"bench-secret"
                        )
                    )
            finally:
                proc.terminate()
                proc.wait()
            rows[kind].append(
                {
                    "rps": res.rate,
                    "p50_ms": res.percentile(50) * 1000,
                    "p99_ms": res.percentile(99) * 1000,
                    "non_200": sum(v for k, v in res.statuses.items() if k != 200),
                }
            )
            if kind in ("kafka", "bare"):  # both at 80 % of the Kafka server's rate
                at80 = sorted(a[2] for a in steady)
                rows[kind][-1]["rate_80pct"] = open_loop_rate
                rows[kind][-1]["p50_ms_at_80pct"] = at80[len(at80) // 2] * 1000
                rows[kind][-1]["p99_ms_at_80pct"] = at80[int(0.99 * len(at80))] * 1000
                rows[kind][-1]["non_200_at_80pct"] = sum(a[3] != 200 for a in steady)
            print(kind, rows[kind][-1], flush=True)
    summary = {k: {m: statistics.median(r[m] for r in v) for m in v[0]} for k, v in rows.items()}
    # (open loop at 80 % of the closed-loop rate: timed from when each request was due)
    summary["ratio_kafka_over_bare"] = {"rps": summary["kafka"]["rps"] / summary["bare"]["rps"]}
    if "kafka-tls" in summary:
        summary["ratio_https_over_http"] = {
            "rps": summary["kafka-tls"]["rps"] / summary["kafka"]["rps"]
        }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"runs": rows, "median": summary}, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
