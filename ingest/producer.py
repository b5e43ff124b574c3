"""Write raw deliveries to Kafka: one Protocol, one real implementation (aiokafka)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from infra.core.topics import partition_for
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


@dataclass(frozen=True)
class _Open:
    """A batch still taking records, the answer every request in it waits for, and when that
    answer is due (loop time): one timer per batch, not one per request."""

    builder: Any  # aiokafka BatchBuilder
    delivered: asyncio.Future[None]
    deadline: float


class KafkaRawWriter:
    """An idempotent acks=all producer shared by every request in flight.

    Requests are group-committed: each appends its record to the open batch of its partition
    and waits for that one batch's acknowledgement. A batch is sent at once when nothing is on
    its way to that partition, else as soon as the batch ahead of it is acknowledged: no
    linger at low load, large batches at high load. aiokafka's `send` would add a future, a
    partitioner call and an accumulator lookup per record. Placement is Kafka's default
    partitioner's, so a key keeps its partition.
    """

    RESET_AFTER_S = 15.0

    def __init__(self, config: dict[str, Any], topic: str, timeout_s: float) -> None:
        """`config`: aiokafka producer arguments (infra.core.kafka.producer); a body up to the
        raw topic's 8 MB record limit goes, and no request waits past `timeout_s`."""
        self.topic = topic
        self.timeout_s = timeout_s
        self._config = {
            **config,
            "max_request_size": 8 * 1024 * 1024,
            "request_timeout_ms": int(max(timeout_s, 5) * 1000),
        }
        self._producer: AIOKafkaProducer | None = None
        self.started = False
        self._last_ok = time.monotonic()
        self._resetting: asyncio.Task[None] | None = None
        self.resets = 0
        self._partitions = 1
        self._unkeyed = 0
        self._open: dict[int, _Open] = {}
        self._in_flight: dict[int, int] = {}
        self._sending: set[asyncio.Task[None]] = set()

    async def start(self, attempts: int = 1_000_000, pause_s: float = 1.0) -> None:
        """Connect, retrying while the broker is not there yet (the ingress still answers 503)."""
        self._producer = AIOKafkaProducer(**self._config)  # needs the running loop
        for attempt in range(attempts):
            try:
                await self._producer.start()
                self._partitions = len(await self._producer.partitions_for(self.topic))
                self.started = True
                return
            except KafkaError:
                if attempt == attempts - 1:
                    raise
                await asyncio.sleep(pause_s)

    async def stop(self) -> None:
        for partition in list(self._open):
            self._submit(partition)
        if self._sending:
            await asyncio.wait(self._sending, timeout=self.timeout_s)
        if self._producer is not None:
            await self._producer.stop()

    async def write(self, record: RawRecord) -> None:
        if not self.started or self._producer is None:
            raise BrokerUnavailableError("producer not connected yet")
        try:
            # Shielded: a cancelled request (the client went away) must not cancel the answer
            # its neighbours in the batch wait for. The batch's own deadline bounds the wait.
            await asyncio.shield(self._append(record))
        except TimeoutError as exc:
            self._failing()
            raise BrokerUnavailableError(f"no acknowledgement within {self.timeout_s}s") from exc
        except KafkaError as exc:
            self._failing()
            raise BrokerUnavailableError(f"broker refused the write: {exc}") from exc
        self._last_ok = time.monotonic()

    def _append(self, record: RawRecord) -> asyncio.Future[None]:
        if record.key is None:  # spread, as the default partitioner does
            self._unkeyed = partition = (self._unkeyed + 1) % self._partitions
        else:
            partition = partition_for(record.key, self._partitions)
        headers = list(record.headers)
        batch = self._open.get(partition)
        if batch is not None:
            if batch.builder.append(
                timestamp=None, key=record.key, value=record.body, headers=headers
            ):
                return batch.delivered
            self._submit(partition)  # full: it goes now, this record starts the next one
        assert self._producer is not None
        loop = asyncio.get_running_loop()
        delivered: asyncio.Future[None] = loop.create_future()
        delivered.add_done_callback(_retrieved)
        deadline = loop.time() + self.timeout_s
        batch = self._open[partition] = _Open(self._producer.create_batch(), delivered, deadline)
        batch.builder.append(timestamp=None, key=record.key, value=record.body, headers=headers)
        if not self._in_flight.get(partition):
            self._submit(partition)  # nothing on its way: no reason to wait
        return delivered

    def _submit(self, partition: int) -> None:
        """Close the partition's open batch and send it. Closed before it is handed over:
        aiokafka counts a batch's records for its idempotence sequence when it drains it."""
        batch = self._open.pop(partition)
        batch.builder.close()
        self._in_flight[partition] = self._in_flight.get(partition, 0) + 1
        task = asyncio.create_task(self._send(batch, partition, self._producer))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: _Open, partition: int, producer: AIOKafkaProducer | None) -> None:
        try:
            if producer is None:
                raise BrokerUnavailableError("producer not connected")
            # Past its deadline already (the batch ahead took that long): it fails at once.
            async with asyncio.timeout_at(batch.deadline):
                sent = await producer.send_batch(batch.builder, self.topic, partition=partition)
                await sent
        except Exception as exc:  # every waiting request answers 503; the platform retries
            if not batch.delivered.done():
                batch.delivered.set_exception(exc)
        else:
            if not batch.delivered.done():
                batch.delivered.set_result(None)
        finally:
            self._in_flight[partition] -= 1
            # What gathered while this batch was on its way goes next, as one batch.
            if partition in self._open and not self._in_flight[partition]:
                self._submit(partition)

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
        for batch in self._open.values():  # never sent: those requests answer 503
            batch.delivered.set_exception(BrokerUnavailableError("producer reconnecting"))
        self._open.clear()
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


def _retrieved(delivered: asyncio.Future[None]) -> None:
    # Every waiter may have timed out already; reading the outcome keeps asyncio from logging
    # "exception was never retrieved" for a batch whose answer nobody was left to hear.
    if not delivered.cancelled():
        delivered.exception()
