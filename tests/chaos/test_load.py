"""The chaos load generator keeps its bound: while the server does not answer, deliveries past
MAX_IN_FLIGHT are recorded as not sent instead of piling up, and every due delivery is recorded."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson

from tests.chaos.load import MAX_IN_FLIGHT, NOT_SENT, main


async def test_a_stalled_server_gets_at_most_the_bound_and_the_rest_is_recorded(
    tmp_path: Path,
) -> None:
    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(1.5)  # read nothing, answer nothing, then hang up
        writer.close()

    server = await asyncio.start_server(stall, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    out = tmp_path / "answers.jsonl"
    async with server:
        await main(f"http://127.0.0.1:{port}", rate=200, seconds=1.0, out=str(out), secret=b"s")
    rows = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    statuses = [row["status"] for row in rows]
    assert len(rows) >= 150  # every due delivery has its line, sent or not
    assert statuses.count(NOT_SENT) >= len(rows) - MAX_IN_FLIGHT
    assert len(rows) - statuses.count(NOT_SENT) <= MAX_IN_FLIGHT  # never more out at once
    assert all(row["ids"] for row in rows)
