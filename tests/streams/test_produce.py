import asyncio
from typing import Any

from aiokafka.producer.message_accumulator import BatchBuilder

from streams.produce import BatchWriter


class FakeProducer:
    """aiokafka's batch API, recording what was submitted."""

    def __init__(self, batch_size: int) -> None:
        self.batch_size = batch_size
        self.sent: list[tuple[str, int, int]] = []

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(self.batch_size, 0, is_transactional=False)

    async def send_batch(self, batch: BatchBuilder, topic: str, *, partition: int) -> Any:
        assert batch.closed()
        self.sent.append((topic, partition, batch.record_count()))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


async def test_records_leave_in_full_batches_per_partition_and_none_is_left_behind() -> None:
    producer = FakeProducer(batch_size=4096)
    finished: list[asyncio.Future[Any]] = []
    writer = BatchWriter(producer, {"out": 3}, finished.append)
    for i in range(200):
        await writer.add("out", b"waba-%d" % (i % 7), b"x" * 200)
    sends = await writer.write()
    await asyncio.sleep(0)  # done callbacks run on the loop
    assert sum(n for _, _, n in producer.sent) == 200
    assert all(topic == "out" and 0 <= p < 3 for topic, p, _ in producer.sent)
    assert max(n for _, _, n in producer.sent) > 10  # batches, not one record each
    assert len(finished) == len(producer.sent)
    # every send, including those of batches that filled up before write(): the dedup agent
    # confirms its input only once all of them are acknowledged
    assert len(sends) == len(producer.sent)
    assert await writer.write() == []
    assert sum(n for _, _, n in producer.sent) == 200  # nothing sent twice
