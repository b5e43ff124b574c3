"""The end-to-end benchmark's load generator, in its own process: open loop at a fixed rate of
realistic signed deliveries over keep-alive connections on raw asyncio streams (httpx costs
more CPU per request than the server under test).

Bodies are made and signed before the clock starts. Each answer is written as one JSON line:
[x-request-id, wall-clock send time, answer seconds, status, items]. A request is timed from
the moment it was due, not when a connection came free, so a stalled server shows as latency
instead of as a slower offered rate (no coordinated omission).

    python -m tests.benchmarks.e2eload --port 8080 --rate 500 --seconds 20 --out step.jsonl
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

import orjson

from infra.control.loadgen import Generator
from ingest.verify import sign
from tests.benchmarks.loadclient import request
from tests.conftest import SECRETS

SECRET = SECRETS.split(",")[0].split("=")[1].encode()


def bodies(
    rate: float, seconds: float, seed: int, secret: bytes, hot: float = 0.0
) -> list[tuple[bytes, int]]:
    """(HTTP request bytes, items) for every delivery of the step, in send order; `hot` of
    them from one WABA (a dominant tenant)."""
    gen = Generator(seed=seed, wabas=200, run=uuid.uuid4().hex[:8], hot=hot)
    out = []
    for _ in range(int(rate * seconds)):
        d = gen.delivery(int(time.time()), max_items=100)
        headers = {"content-type": "application/json", "x-hub-signature-256": sign(d.body, secret)}
        out.append((request("/webhook", d.body, headers), d.items))
    return out


async def connection(port: int, queue: asyncio.Queue[tuple[bytes, int, float] | None], out: list):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while (job := await queue.get()) is not None:
            raw, items, due = job
            wall = time.time() - (time.perf_counter() - due)
            writer.write(raw)
            status_line = await reader.readline()
            length, request_id = 0, ""
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.lower() == b"content-length":
                    length = int(value)
                elif name.lower() == b"x-request-id":
                    request_id = value.strip().decode()
            await reader.readexactly(length)
            status = int(status_line.split()[1]) if status_line else 0
            out.append((request_id, wall, time.perf_counter() - due, status, items))
    finally:
        writer.close()


async def run(
    port: int,
    rate: float,
    seconds: float,
    seed: int,
    connections: int,
    started_file: str = "",
    secret: bytes = SECRET,
    hot: float = 0.0,
) -> list:
    jobs = bodies(rate, seconds, seed, secret, hot)
    queue: asyncio.Queue[tuple[bytes, int, float] | None] = asyncio.Queue()
    out: list = []
    workers = [asyncio.create_task(connection(port, queue, out)) for _ in range(connections)]
    started = time.perf_counter()
    if started_file:  # tells the benchmark the clock runs (for its mid-step status screen)
        open(started_file, "w").close()
    for i, (raw, items) in enumerate(jobs):
        due = started + i / rate
        if (wait := due - time.perf_counter()) > 0:
            await asyncio.sleep(wait)
        queue.put_nowait((raw, items, due))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rate", type=float, required=True, help="deliveries per second")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--connections", type=int, default=128)
    parser.add_argument("--out", required=True)
    parser.add_argument("--started", default="", help="a file created when the clock starts")
    parser.add_argument("--hot", type=float, default=0.0, help="share of one WABA's deliveries")
    args = parser.parse_args()
    answers = asyncio.run(
        run(
            args.port, args.rate, args.seconds, args.seed, args.connections, args.started,
            hot=args.hot,
        )
    )  # fmt: skip
    with open(args.out, "wb") as f:
        for answer in answers:
            f.write(orjson.dumps(answer) + b"\n")


if __name__ == "__main__":
    main()
