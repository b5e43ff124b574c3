"""In-memory fakes of the Protocols the stages' steps are written against, kept in one place.
They record what they were asked to do; none of them is a broker or an engine."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import Any

from ingest.errors import BrokerUnavailableError
from ingest.producer import RawRecord


class FakeWriter:
    """ingest.producer.RawWriter: keeps records; fails, or waits for `hold`, on request."""

    def __init__(self, fail: bool = False, hold: asyncio.Event | None = None) -> None:
        self.records: list[RawRecord] = []
        self.fail = fail
        self.hold = hold  # when set, every write waits for it
        self.waiting = 0

    async def write(self, record: RawRecord) -> None:
        if self.hold is not None:
            self.waiting += 1
            await self.hold.wait()
            self.waiting -= 1
        if self.fail:
            raise BrokerUnavailableError("down")
        self.records.append(record)


class FakeSender:
    """streams.steps.Sender: keeps every record sent, acknowledged at once."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes, int | None]] = []

    async def send(
        self, topic: str, key: bytes | None, value: bytes, partition: int | None
    ) -> Awaitable[Any]:
        self.sent.append((topic, key, value, partition))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    def to(self, topic: str) -> list[tuple[str, bytes | None, bytes, int | None]]:
        return [s for s in self.sent if s[0] == topic]


class FakeClaims:
    """streams.steps.Claims: an id is a first sighting once, within the window."""

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}

    async def claim(
        self, partition: int, offset: int, ids: Sequence[str], now_ms: int, window_ms: int
    ) -> tuple[list[bool], Awaitable[Any] | None]:
        out = []
        for dedup_id in ids:
            first = dedup_id not in self.seen or now_ms - self.seen[dedup_id] > window_ms
            if first:
                self.seen[dedup_id] = now_ms
            out.append(first)
        return out, None


class FakeOutputs:
    """streams.steps.Outputs: records added, and how many times they were written out."""

    def __init__(self) -> None:
        self.added: list[tuple[str, bytes, bytes]] = []
        self.writes = 0

    async def add(self, topic: str, key: bytes, value: bytes) -> None:
        self.added.append((topic, key, value))

    async def write(self) -> list[Awaitable[Any]]:
        self.writes += 1
        return []
