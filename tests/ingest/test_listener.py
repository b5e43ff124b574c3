"""The ingress's listener on a real uvicorn server: idle, stalled and slow connections cost the
attacker a connection each and cost signed deliveries nothing."""

from __future__ import annotations

import asyncio

import httpx

from ingest.verify import sign
from tests.ingest.test_tls import BODY, Running, start

SIGNED = {"x-hub-signature-256": sign(BODY, b"shop-secret")}


async def connect(run: Running) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = run.url.removeprefix("http://").split(":")
    return await asyncio.open_connection(host, int(port))


def head(signature: str | None, length: int) -> bytes:
    lines = ["POST /webhook HTTP/1.1", "Host: t", f"Content-Length: {length}"]
    if signature is not None:
        lines.append(f"X-Hub-Signature-256: {signature}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def test_headers_without_a_signature_get_401_while_the_body_never_comes() -> None:
    async for run in start():
        reader, writer = await connect(run)
        writer.write(head(None, 1_000_000))
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), 5)
        assert status.startswith(b"HTTP/1.1 401")
        writer.close()
        assert run.writer.records == []


async def test_idle_and_trickling_connections_are_closed_at_the_header_deadline() -> None:
    async for run in start(WAFLOW_HEADER_TIMEOUT_S="0.3"):
        idle_reader, idle = await connect(run)
        trickle_reader, trickle = await connect(run)
        trickle.write(b"POST /webhook HTTP/1.1\r\nHo")
        await trickle.drain()
        # The server closes both: the read ends with EOF, not with our 5 s timeout.
        assert await asyncio.wait_for(idle_reader.read(), 5) == b""
        assert await asyncio.wait_for(trickle_reader.read(), 5) == b""
        idle.close()
        trickle.close()


async def test_idle_and_slow_body_connections_do_not_stop_signed_deliveries() -> None:
    async for run in start(WAFLOW_HEADER_TIMEOUT_S="120", WAFLOW_BODY_TIMEOUT_S="120"):
        idle = [await connect(run) for _ in range(500)]
        slow = [await connect(run) for _ in range(50)]
        for _, writer in slow:  # a valid-looking signature, then one byte of a 10 kB body
            writer.write(head(sign(b"x" * 10_000, b"shop-secret"), 10_000) + b"x")
            await writer.drain()
        limits = httpx.Limits(max_connections=16)
        async with httpx.AsyncClient(base_url=run.url, limits=limits, timeout=30) as c:
            answers = await asyncio.gather(
                *(c.post("/webhook", content=BODY, headers=SIGNED) for _ in range(200))
            )
        assert [a.status_code for a in answers] == [200] * 200
        assert len(run.writer.records) == 200
        # The deliveries did not wait for the deadlines to clear the way: all 550 are open.
        await asyncio.sleep(0.1)
        assert not any(reader.at_eof() for reader, _ in idle + slow)
        for _, writer in idle + slow:
            writer.close()
