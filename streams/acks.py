"""Explicit acknowledgement: an input offset is committable only once its outputs are acked.

Faust acknowledges on its own in three places, each of which can commit an offset whose work
was never done:
- `take_events` acks the batch in progress when its generator is closed (a stop, a crash);
- a stream acks every event it skips during a rebalance (flow control off, or an event of
  the previous generation), and those offsets then join the committable run;
- Faust then commits whatever is acked, on its timer and on a normal stop.

So the worker's consumer ignores every ack Faust makes, and counts only `confirm`, which the
agents call once the broker has acknowledged every output of a batch: typed records, dead
letters, items records and claims. Faust's commit bookkeeping is otherwise unchanged (the
highest contiguous confirmed offset per partition, on its timer and on stop), so a stop, a
crash or a rebalance at any point leaves unconfirmed work to be read again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import faust
from faust.transport.drivers import aiokafka as driver
from faust.types import EventT, Message


class ConfirmingConsumer(driver.Consumer):
    """Faust's aiokafka consumer, acknowledging only what `confirm` is given."""

    def ack(self, message: Message) -> bool:
        return False  # Faust's own acks: the stream's, on close, on skip

    def confirm(self, messages: Iterable[Message]) -> None:
        for message in messages:
            super().ack(message)


class Transport(driver.Transport):
    """The aiokafka transport with the confirming consumer."""

    Consumer = ConfirmingConsumer


def install(app: faust.App) -> None:
    """Give `app` the confirming consumer (before it starts)."""
    app.transport = Transport(app.conf.broker_consumer, app)


def confirm(app: faust.App, events: Sequence[EventT[Any]]) -> None:
    """Make `events`' offsets committable: call only once all their outputs are acked."""
    consumer = app.consumer
    assert isinstance(consumer, ConfirmingConsumer)  # install() made it
    consumer.confirm(event.message for event in events)


async def confirm_when_sent(
    app: faust.App, events: Sequence[EventT[Any]], sent: Sequence[Awaitable[Any]]
) -> None:
    """Confirm `events` once every send in `sent` is acknowledged; a failed send confirms
    nothing (the worker exits on it, and the events are read again after the restart)."""
    await asyncio.gather(*sent)
    confirm(app, events)


class Confirmer:
    """Confirms each batch in the background once its sends are acknowledged, so an agent
    takes its next batch while the broker acknowledges the last; at most `limit` batches
    wait at once (`add` waits for room). A failed send confirms nothing and is handed to
    `on_failure`, which ends the worker."""

    def __init__(
        self,
        app: faust.App,
        on_failure: Callable[[asyncio.Future[Any]], None],
        limit: int = 8,
    ) -> None:
        self.app = app
        self.on_failure = on_failure
        self.limit = limit
        self.pending: set[asyncio.Future[None]] = set()

    async def add(self, events: Sequence[EventT[Any]], sent: Sequence[Awaitable[Any]]) -> None:
        while len(self.pending) >= self.limit:
            await asyncio.wait(self.pending, return_when=asyncio.FIRST_COMPLETED)
        done = asyncio.ensure_future(confirm_when_sent(self.app, events, sent))
        self.pending.add(done)
        done.add_done_callback(self.pending.discard)
        done.add_done_callback(self.on_failure)
