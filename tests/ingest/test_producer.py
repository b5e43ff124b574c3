"""The raw writer's recovery: a producer that stays stuck is replaced (fake aiokafka class)."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import pytest
from aiokafka.errors import KafkaTimeoutError

from ingest import producer as module
from ingest.errors import BrokerUnavailableError
from ingest.producer import KafkaRawWriter, RawRecord

RECORD = RawRecord(b"{}", b"k", ())


class FakeProducer:
    made: ClassVar[list[FakeProducer]] = []

    def __init__(self, **config: Any) -> None:
        self.stuck = not FakeProducer.made  # the first one never gets an acknowledgement
        self.stopped = False
        FakeProducer.made.append(self)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        self.stopped = True

    async def send(self, *args: Any, **kwargs: Any) -> asyncio.Future[None]:
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
    writer = KafkaRawWriter("x:1", "raw", 1)
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
