"""Write raw deliveries to Kafka: one Protocol, one real implementation (aiokafka)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from ingest.errors import BrokerUnavailableError

log = logging.getLogger("waflow.ingest")


@dataclass(frozen=True)
class RawRecord:
    """What the ingress keeps of a request: the exact bytes and where they came from."""

    body: bytes
    key: bytes | None
    headers: tuple[tuple[str, bytes], ...]


class RawWriter(Protocol):
    async def write(self, record: RawRecord) -> None:
        """Return only once the record is durable; raise BrokerUnavailableError otherwise."""


class KafkaRawWriter:
    """An idempotent acks=all producer shared by every request in flight.

    Concurrent requests land in the same batches (linger_ms, lz4), so throughput comes from
    batching rather than from one round trip per request.
    """

    RESET_AFTER_S = 15.0

    def __init__(self, bootstrap: str, topic: str, timeout_s: float, linger_ms: int = 5) -> None:
        self.topic = topic
        self.timeout_s = timeout_s
        self._config = dict(
            bootstrap_servers=bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=linger_ms,
            compression_type="lz4",
            max_request_size=8 * 1024 * 1024,
            max_batch_size=1024 * 1024,
            request_timeout_ms=int(max(timeout_s, 5) * 1000),
        )
        self._producer: AIOKafkaProducer | None = None
        self.started = False
        self._last_ok = time.monotonic()
        self._resetting: asyncio.Task[None] | None = None
        self.resets = 0

    async def start(self, attempts: int = 1_000_000, pause_s: float = 1.0) -> None:
        """Connect, retrying while the broker is not there yet (the ingress still answers 503)."""
        self._producer = AIOKafkaProducer(**self._config)  # needs the running loop
        for attempt in range(attempts):
            try:
                await self._producer.start()
                self.started = True
                return
            except KafkaError:
                if attempt == attempts - 1:
                    raise
                await asyncio.sleep(pause_s)

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()

    async def write(self, record: RawRecord) -> None:
        if not self.started or self._producer is None:
            raise BrokerUnavailableError("producer not connected yet")
        try:
            async with asyncio.timeout(self.timeout_s):
                pending = await self._producer.send(
                    self.topic, record.body, key=record.key, headers=list(record.headers)
                )
                await pending
        except TimeoutError as exc:
            self._failing()
            raise BrokerUnavailableError(f"no acknowledgement within {self.timeout_s}s") from exc
        except KafkaError as exc:
            self._failing()
            raise BrokerUnavailableError(f"broker refused the write: {exc}") from exc
        self._last_ok = time.monotonic()

    def _failing(self) -> None:
        """After RESET_AFTER_S without one acknowledged write, start over with a new producer.

        The chaos suite found aiokafka's producer stuck after all three brokers of a cluster
        restarted: every write timed out for four minutes, until the ingress was restarted.
        """
        stale = time.monotonic() - self._last_ok > self.RESET_AFTER_S
        if stale and self._resetting is None:
            self._resetting = asyncio.create_task(self._reset())

    async def _reset(self) -> None:
        old, self.started = self._producer, False  # 503 meanwhile; the platform retries
        log.warning("no write acknowledged for a while: reconnecting the producer")
        try:
            await self.start()
            self.resets += 1
            self._last_ok = time.monotonic()
        finally:
            self._resetting = None
            if old is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(old.stop(), 5)

    async def ready(self) -> bool:
        """True while the producer can reach a broker (for /readyz)."""
        if not self.started or self._producer is None:
            return False
        try:
            async with asyncio.timeout(1.0):
                return bool(await self._producer.client.force_metadata_update())
        except (TimeoutError, KafkaError):
            return False
