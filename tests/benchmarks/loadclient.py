"""A small keep-alive HTTP/1.1 load client on raw asyncio streams (httpx costs more CPU per
request than the server under test). Closed loop: `connections` requests in flight."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else 0.0

    @property
    def rate(self) -> float:
        return self.statuses.get(200, 0) / self.seconds if self.seconds else 0.0


def request(path: str, body: bytes, headers: dict[str, str]) -> bytes:
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return (
        f"POST {path} HTTP/1.1\r\nhost: bench\r\ncontent-length: {len(body)}\r\n{head}\r\n".encode()
        + body
    )


async def _worker(
    port: int,
    requests: Sequence[bytes],
    start: int,
    stride: int,
    deadline: float,
    result: Result,
    tls: ssl.SSLContext | None,
) -> None:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=tls, server_hostname="localhost" if tls else None
    )
    i = start
    try:
        while time.perf_counter() < deadline:
            sent = time.perf_counter()
            writer.write(requests[i % len(requests)])
            i += stride
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            status = int(status_line.split()[1])
            result.latencies.append(time.perf_counter() - sent)
            result.statuses[status] = result.statuses.get(status, 0) + 1
    finally:
        writer.close()


async def run(
    port: int,
    requests: Sequence[bytes],
    seconds: float,
    connections: int = 64,
    tls: ssl.SSLContext | None = None,
) -> Result:
    result = Result()
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(
        *(
            _worker(port, requests, n, connections, deadline, result, tls)
            for n in range(connections)
        )
    )
    result.seconds = time.perf_counter() - started
    return result
