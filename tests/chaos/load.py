"""The chaos suite's load generator, in its own process: signed realistic deliveries with unique
ids at a steady rate; every answer is recorded with the ids of the items the delivery carried.

At most MAX_IN_FLIGHT requests are out at once. A delivery that comes due while that many wait
(the ingress is down, or the machine is slow) is recorded as not sent (status -1) instead of
queued: a queue without bound made httpx's pool quadratic and the suite's length unbounded on a
slow machine, while the record keeps the accounting exact (its items were never offered).

    python -m tests.chaos.load --url http://127.0.0.1:8080 --rate 40 --seconds 600 --out a.jsonl
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

import httpx
import orjson

from infra.control.loadgen import Generator
from ingest.verify import sign
from streams.normalize import normalize
from streams.records import RawMeta

META = RawMeta("raw", 0, 0, 0, "")
MAX_IN_FLIGHT = 64  # the client's connection pool
NOT_SENT = -1


async def post(client: httpx.AsyncClient, url: str, body: bytes, secret: bytes) -> int:
    try:
        r = await client.post(
            url, content=body, headers={"x-hub-signature-256": sign(body, secret)}
        )
        return r.status_code
    except httpx.HTTPError:
        return 0  # no answer: the platform would retry, so its items may appear at most once


async def main(url: str, rate: float, seconds: float, out: str, secret: bytes) -> None:
    gen = Generator(seed=int(time.time()), wabas=200, run=uuid.uuid4().hex[:8])
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    pending: set[asyncio.Task[None]] = set()
    with open(out, "ab") as sink:
        async with httpx.AsyncClient(timeout=15, limits=limits) as client:

            def record(status: int, body: bytes) -> None:
                ids = [[o.kind, o.dedup_id] for o in normalize(body, META)]
                sink.write(orjson.dumps({"status": status, "ids": ids, "t": time.time()}) + b"\n")

            async def one(body: bytes) -> None:
                record(await post(client, f"{url}/webhook", body, secret), body)

            started = time.monotonic()
            sent = 0
            while time.monotonic() - started < seconds:
                due = int((time.monotonic() - started) * rate)
                for _ in range(due - sent):
                    body = gen.delivery(int(time.time()), 100).body
                    if len(pending) >= MAX_IN_FLIGHT:
                        record(NOT_SENT, body)
                        continue
                    task = asyncio.create_task(one(body))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
                sent = max(sent, due)
                await asyncio.sleep(0.01)
            await asyncio.gather(*pending)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--rate", type=float, default=40, help="deliveries per second")
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--out", required=True)
    parser.add_argument("--secret", default="shop-secret")
    a = parser.parse_args()
    asyncio.run(main(a.url, a.rate, a.seconds, a.out, a.secret.encode()))
