"""Write raw deliveries to Kafka: one Protocol, one real implementation (aiokafka)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from ingest.errors import BrokerUnavailableError


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
            raise BrokerUnavailableError(f"no acknowledgement within {self.timeout_s}s") from exc
        except KafkaError as exc:
            raise BrokerUnavailableError(f"broker refused the write: {exc}") from exc

    async def ready(self) -> bool:
        """True while the producer can reach a broker (for /readyz)."""
        if not self.started or self._producer is None:
            return False
        try:
            async with asyncio.timeout(1.0):
                return bool(await self._producer.client.force_metadata_update())
        except (TimeoutError, KafkaError):
            return False
