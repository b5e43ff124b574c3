"""streams/handoff.py: a record goes straight to its streams only when that cannot wait."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP

from streams.handoff import at_once, drain
from tests.fakes import FakeFaustConsumer

RAW = TP("raw", 0)


def record(offset: int, topic: str = "raw") -> Any:
    return SimpleNamespace(topic=topic, partition=0, offset=offset)


def ready() -> FakeFaustConsumer:
    consumer = FakeFaustConsumer([])
    consumer.subscribe(RAW)
    return consumer


async def test_at_once_when_nothing_would_wait() -> None:
    assert at_once(ready(), RAW)


async def test_not_at_once_while_the_flow_is_suspended() -> None:
    consumer = ready()
    consumer.suspend_flow.set()
    assert not at_once(consumer, RAW)
    consumer = ready()
    consumer.flow_active = False
    assert not at_once(consumer, RAW)


async def test_not_at_once_while_the_app_flow_control_is_stopped() -> None:
    consumer = ready()
    consumer.flow.suspend()
    assert not at_once(consumer, RAW)


async def test_not_at_once_while_a_rebalance_holds_the_callbacks() -> None:
    consumer = ready()
    async with consumer.lock:
        assert not at_once(consumer, RAW)
    assert at_once(consumer, RAW)


async def test_not_at_once_with_a_full_producer_buffer_or_stream_queue() -> None:
    consumer = ready()
    consumer.buffer.size = 101
    assert not at_once(consumer, RAW)
    consumer = ready()
    for n in range(10):
        consumer.queue.put_nowait(n)
    assert not at_once(consumer, RAW)


async def test_drain_hands_records_over_in_order_and_keeps_faust_s_offset_rules() -> None:
    fetch = [(RAW, record(n)) for n in (5, 6, 9, 4, 9, 10)]
    consumer = FakeFaustConsumer(fetch)
    consumer.subscribe(RAW)
    await drain(consumer, SimpleNamespace(_stopped=asyncio.Event()))
    # 4 was read before (dropped, as Faust does); 9 again is kept, as Faust keeps it.
    assert [m.offset for m in consumer.handed] == [5, 6, 9, 9, 10]
    assert consumer.gaps == [(RAW, 7, 9)]
    assert consumer._read_offset[RAW] == 10
    assert consumer.waited_first == 0


async def test_drain_goes_through_wait_first_when_the_hand_off_could_wait() -> None:
    consumer = FakeFaustConsumer([(RAW, record(n)) for n in range(3)])
    consumer.subscribe(RAW)
    consumer.flow.suspend()
    await drain(consumer, SimpleNamespace(_stopped=asyncio.Event()))
    assert consumer.waited_first == 3
    assert [m.offset for m in consumer.handed] == [0, 1, 2]


async def test_drain_commits_every_n_acked_as_faust_does() -> None:
    consumer = FakeFaustConsumer([(RAW, record(n)) for n in range(3)])
    consumer._commit_every = 2
    consumer._n_acked = 2
    await drain(consumer, SimpleNamespace(_stopped=asyncio.Event()))
    assert consumer.commits == 1 and consumer._n_acked == 0


async def test_drain_ends_quietly_on_a_stopped_consumer_only_while_the_app_stops() -> None:
    consumer = FakeFaustConsumer([(RAW, record(0))])

    async def broken(message: Any) -> None:
        raise ConnectionError("consumer stopped")

    consumer.callback = broken  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        await drain(consumer, SimpleNamespace(_stopped=asyncio.Event()))
    consumer = FakeFaustConsumer([(RAW, record(0))])
    consumer.callback = broken  # type: ignore[method-assign]
    consumer.app.should_stop = True
    await drain(consumer, SimpleNamespace(_stopped=asyncio.Event()))
