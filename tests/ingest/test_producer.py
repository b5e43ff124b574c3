"""The raw writer's recovery: a producer that stays stuck is replaced (fake aiokafka class)."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import pytest
from aiokafka.errors import KafkaTimeoutError
from aiokafka.producer.message_accumulator import BatchBuilder

from ingest import producer as module
from ingest.errors import BrokerUnavailableError
from ingest.producer import KafkaRawWriter, RawRecord

RECORD = RawRecord(b"{}", b"k", ())


class FakeProducer:
    """aiokafka's producer as the writer uses it: batches in, one acknowledgement per batch."""

    made: ClassVar[list[FakeProducer]] = []

    def __init__(self, **config: Any) -> None:
        self.stuck = not FakeProducer.made  # the first one never gets an acknowledgement
        self.stopped = False
        self.batches: list[tuple[int, int]] = []  # (partition, records)
        FakeProducer.made.append(self)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        self.stopped = True

    async def partitions_for(self, topic: str) -> set[int]:
        return {0, 1, 2}

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(16 * 1024, 0, is_transactional=False)

    async def send_batch(self, batch: BatchBuilder, topic: str, *, partition: int) -> Any:
        # aiokafka fixes a batch's idempotence sequence when it drains it: a record appended
        # after hand-over broke the sequence (OutOfOrderSequenceNumber from the broker).
        assert batch.closed(), "a batch must be closed before it is handed to the producer"
        self.batches.append((partition, batch.record_count()))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.stuck:
            done.set_exception(KafkaTimeoutError())
        else:
            done.set_result(None)
        return done


async def test_a_stuck_producer_is_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: after a whole-cluster restart every write timed out until a manual restart."""
    FakeProducer.made.clear()
    monkeypatch.setattr(module, "AIOKafkaProducer", FakeProducer)
    writer = KafkaRawWriter({"bootstrap_servers": "x:1"}, "raw", 1)
    writer.RESET_AFTER_S = 0.0
    await writer.start()
    with pytest.raises(BrokerUnavailableError):
        await writer.write(RECORD)
    for _ in range(100):
        if writer.resets:
            break
        await asyncio.sleep(0.01)
    await writer.write(RECORD)  # the new producer takes it
    assert writer.resets == 1
    assert len(FakeProducer.made) == 2 and FakeProducer.made[0].stopped


async def test_concurrent_requests_share_batches_and_each_hears_its_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    FakeProducer.made.clear()
    FakeProducer.made.append(FakeProducer())  # taken as the stuck one; the writer's works
    monkeypatch.setattr(module, "AIOKafkaProducer", FakeProducer)
    writer = KafkaRawWriter({"bootstrap_servers": "x:1"}, "raw", 1)
    await writer.start()
    records = [RawRecord(b"x" * 500, b"waba-%d" % (i % 5), ()) for i in range(300)]
    await asyncio.gather(*(writer.write(r) for r in records))
    sent = FakeProducer.made[-1].batches
    assert sum(n for _, n in sent) == 300
    assert len(sent) < 30  # group-committed, not one request per record
    await writer.stop()


async def test_a_failed_batch_fails_every_request_in_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 200 only after the broker acknowledged: a refused batch is a 503 for all its requests."""
    FakeProducer.made.clear()
    monkeypatch.setattr(module, "AIOKafkaProducer", FakeProducer)  # the first one is stuck
    writer = KafkaRawWriter({"bootstrap_servers": "x:1"}, "raw", 1)
    await writer.start()
    outcomes = await asyncio.gather(
        *(writer.write(RawRecord(b"{}", b"k", ())) for _ in range(20)), return_exceptions=True
    )
    assert all(isinstance(o, BrokerUnavailableError) for o in outcomes)


class SilentProducer(FakeProducer):
    """A broker that takes batches and never answers."""

    async def send_batch(self, batch: BatchBuilder, topic: str, *, partition: int) -> Any:
        self.batches.append((partition, batch.record_count()))
        return asyncio.get_running_loop().create_future()  # never done


async def test_a_batch_that_is_never_acknowledged_answers_by_its_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One timer per batch: the request in flight and the one waiting behind it both hear 503
    within the produce timeout, and a cancelled request does not cancel its neighbour."""
    monkeypatch.setattr(module, "AIOKafkaProducer", SilentProducer)
    writer = KafkaRawWriter({"bootstrap_servers": "x:1"}, "raw", 0.2)
    writer.RESET_AFTER_S = 60.0
    await writer.start()
    loop = asyncio.get_running_loop()
    started = loop.time()
    first = asyncio.create_task(writer.write(RECORD))
    await asyncio.sleep(0.01)  # the first batch is on its way; these wait in the next one
    behind = [asyncio.create_task(writer.write(RECORD)) for _ in range(2)]
    await asyncio.sleep(0.01)
    behind[0].cancel()
    results = await asyncio.gather(first, *behind, return_exceptions=True)
    assert isinstance(results[0], BrokerUnavailableError)
    assert isinstance(results[1], asyncio.CancelledError)
    assert isinstance(results[2], BrokerUnavailableError)
    assert loop.time() - started < 1.0
