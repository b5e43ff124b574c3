"""The worker's consumer commits only what the agents confirm (streams/acks.py)."""

from __future__ import annotations

import asyncio
from typing import Any

from faust.types import TP, ConsumerMessage

from infra.core.settings import Settings
from streams import acks
from streams.agents import create_app


def record(offset: int) -> ConsumerMessage:
    return ConsumerMessage("t.raw", 0, offset, 0.0, 0, None, b"", b"", None, tp=TP("t.raw", 0))


async def test_fausts_own_acks_are_ignored_and_confirm_counts(tmp_path: Any) -> None:
    settings = Settings.from_env({"WAFLOW_DATA_DIR": str(tmp_path), "WAFLOW_APP_SECRETS": "a:s"})
    app = create_app(settings)
    consumer = app.consumer
    assert isinstance(consumer, acks.ConfirmingConsumer)
    held = record(7)
    # The paths Faust acks by: a stream's event ack (on close, on skip) ends in consumer.ack.
    assert held.ack(consumer) is False
    assert consumer.ack(held) is False
    assert not held.acked
    consumer.confirm([held])
    assert held.acked


class Event:
    def __init__(self, message: ConsumerMessage) -> None:
        self.message = message


async def test_a_batch_is_confirmed_only_once_its_sends_are_and_at_most_limit_wait(
    tmp_path: Any,
) -> None:
    settings = Settings.from_env({"WAFLOW_DATA_DIR": str(tmp_path), "WAFLOW_APP_SECRETS": "a:s"})
    app = create_app(settings)
    failures: list[BaseException | None] = []
    confirmer = acks.Confirmer(app, lambda done: failures.append(done.exception()), limit=2)
    loop = asyncio.get_running_loop()
    sends = [loop.create_future() for _ in range(3)]
    events = [Event(record(n)) for n in range(3)]
    await confirmer.add([events[0]], [sends[0]])
    await confirmer.add([events[1]], [sends[1]])
    third = asyncio.ensure_future(confirmer.add([events[2]], [sends[2]]))
    await asyncio.sleep(0.01)
    assert not third.done()  # two batches wait: the third waits for room
    assert not any(e.message.acked for e in events)
    sends[1].set_result(None)
    await asyncio.wait_for(third, 1)
    assert [e.message.acked for e in events] == [False, True, False]  # out of order is fine
    sends[0].set_exception(RuntimeError("broker refused"))
    sends[2].set_result(None)
    await asyncio.gather(*confirmer.pending, return_exceptions=True)
    await asyncio.sleep(0)
    assert [e.message.acked for e in events] == [False, True, True]  # a failed send: never
    assert [type(f).__name__ for f in failures if f] == ["RuntimeError"]
