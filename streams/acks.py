"""Explicit acknowledgement: an input offset is committable only once its outputs are acked.

Faust acknowledges on its own in three places, each of which can commit an offset whose work
was never done:
- `take_events` acks the batch in progress when its generator is closed (a stop, a crash);
- a stream acks every event it skips during a rebalance (flow control off, or an event of
  the previous generation), and those offsets then join the committable run;
- Faust then commits whatever is acked, on its timer and on a normal stop.

So the worker's consumer ignores every ack Faust makes, and counts only `confirm`, which the
agents call once the broker has acknowledged every output of a batch: typed records, dead
letters, items records and claims. Faust commits on its timer and on stop, as before.

What it commits is decided here, because Faust's own rule can pass over offsets nobody
processed (faust-streaming 0.15.3, `transport/consumer.py`), and a kill then loses them:
- `_new_offset` commits the first run of acked offsets without checking that it starts at the
  committed offset: one missing offset before the run is let through, and with no commit yet
  any number are;
- `_add_gap` marks every offset between the last record read and the next as done. It is meant
  for compacted topics and transaction markers, but it also fires for records Faust fetched
  and did not deliver (dropped in a rebalance, or read from a position a seek had just undone);
- aiokafka's `seek_to_committed` leaves a partition with no committed offset where it was,
  so a rebalance does not read its dropped records again;
- its flow control clears the records waiting in the streams' buffers each time it resumes,
  and it resumes more than once in one rebalance, with records flowing in between: those
  records were delivered and are never processed, so their offsets are never confirmed and
  the partition's commit stops there until the next rebalance.

Here an offset is committed only when it and every offset before it since the last commit is
confirmed (`next_commit`); each partition's records reach the agents in offset order, a hole
being read again from the broker (streams/order.py), as is a record flow control cleared
(`ClearingFlowControl`); and after a rebalance a partition with no
commit, or whose commit retention has overtaken, starts from the log start. Under
`exactly_once` Faust's rules are kept: transaction markers are real gaps there
(docs/guarantees.md).
"""

from __future__ import annotations

import asyncio
import bisect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

import faust
from aiokafka.errors import IllegalStateError
from faust.transport.drivers import aiokafka as driver
from faust.types import TP, EventT, Message
from mode.utils.queues import FlowControlEvent

from streams import handoff
from streams.fetch import FetchingThread
from streams.order import Order

log = logging.getLogger("waflow.streams")


def next_commit(
    acked: list[int],
    index: set[int],
    committed: int | None,
    absent: Sequence[tuple[int, int]] = (),
) -> int | None:
    """The offset to commit for one partition, or None while the next offset to read,
    `committed`, is not confirmed. Takes the committed run out of `acked` (and `index`), and
    confirmations below `committed` (work read twice) with it. `absent`: [start, end) ranges
    the log no longer has (retention), which count as done. Kafka's convention: a committed
    offset is the next one to read."""
    if committed is None or not acked:
        return None
    acked.sort()
    done = bisect.bisect_left(acked, committed)  # already committed: read twice
    end = committed
    while True:
        if done < len(acked) and acked[done] == end:
            done += 1
            end += 1
            continue
        past = next((hi for lo, hi in absent if lo <= end < hi), None)
        if past is None:
            break
        end = past
        done = bisect.bisect_left(acked, end)
    taken, acked[:done] = acked[:done], []
    index.difference_update(taken)
    return end if end > committed else None


class ConfirmingConsumer(driver.Consumer):
    """Faust's aiokafka consumer, acknowledging only what `confirm` is given (and fetching
    in fuller responses, streams/fetch.py)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.order: Order[TP] = Order()  # raw and items records in offset order (streams/order.py)
        self.absent: dict[TP, list[tuple[int, int]]] = {}  # offsets retention deleted unread

    def _new_consumer_thread(self) -> FetchingThread:
        return FetchingThread(self, loop=self.loop, beacon=self.beacon)

    def ack(self, message: Message) -> bool:
        return False  # Faust's own acks: the stream's, on close, on skip

    def _new_offset(self, tp: TP) -> int | None:
        if self.in_transaction:
            return super()._new_offset(tp)
        committed = self._committed_offset[tp]
        absent = self.absent.get(tp, [])
        if absent and committed is not None:
            absent[:] = [(lo, hi) for lo, hi in absent if hi > committed]
        return next_commit(self._acked[tp], self._acked_index[tp], committed, absent)

    async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        if self.in_transaction:
            await super()._add_gap(tp, offset_from, offset_to)
        # Otherwise no offset counts as done unless confirmed (or deleted unread, `absent`):
        # a jump in the offsets Faust read is records it did not deliver, read again here.

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:
        if self.in_transaction:
            async for tp, message in super().getmany(timeout):
                yield tp, message
            return
        acking = self.app.topics.acks_enabled_for
        async for tp, message in super().getmany(timeout):
            if not acking(tp.topic) or self.order.deliver(tp, message.offset):
                yield tp, message
        await self._read_holes_again()

    async def _read_holes_again(self) -> None:
        """Seek each partition with a hole back to its next offset to deliver, or to the log
        start if retention deleted that offset unread (logged, and never waited for)."""
        holes = self.order.take_holes()
        if not holes:
            return
        starts = await self.earliest_offsets(*holes)
        for tp, expected in holes.items():
            start = starts.get(tp, 0)
            if start > expected:
                self._deleted_unread(tp, expected, start)
            try:
                await self.seek_wait({tp: max(expected, start)})
            except IllegalStateError:  # revoked meanwhile: its next owner reads it
                self.order.sought(tp, None)

    def _deleted_unread(self, tp: TP, first: int, start: int) -> None:
        log.error(
            "records deleted by retention before they were read",
            extra={"partition": str(tp), "records": start - first},
        )
        self.absent.setdefault(tp, []).append((first, start))

    async def seek(self, partition: TP, offset: int) -> None:
        await super().seek(partition, offset)
        self.order.sought(partition, offset)

    async def seek_wait(self, partitions: Mapping[TP, int]) -> None:
        # On the consumer's thread: Faust's `seek` changes aiokafka's fetcher from the
        # event loop's thread while that thread may be fetching (a KeyError in aiokafka's
        # `fetched_records` crashed the fetcher when this file used it).
        await super().seek_wait(partitions)
        for tp, offset in partitions.items():
            self.order.sought(tp, offset)

    async def perform_seek(self) -> None:
        assigned = self.assignment()
        await super().perform_seek()
        acking = [tp for tp in assigned if self.app.topics.acks_enabled_for(tp.topic)]
        for tp in acking:
            self.order.sought(tp, self._committed_offset[tp])
        await self._start_where_the_log_does(acking)

    async def _start_where_the_log_does(self, tps: Sequence[TP]) -> None:
        """After a seek to the committed offsets: a partition never committed is read from
        the log start (aiokafka leaves it where it was), as is one whose committed offset
        retention has since deleted; either way that is the offset to commit from."""
        if not tps:
            return
        starts = await self.earliest_offsets(*tps)
        for tp in tps:
            start = starts.get(tp, 0)
            committed = self._committed_offset[tp]
            if committed is not None and committed >= start:
                continue
            if committed is not None:
                self._deleted_unread(tp, committed, start)
            await self.seek_wait({tp: start})
            self._committed_offset[tp] = start

    def cleared(self, events: Iterable[Any]) -> None:
        """Records flow control cleared from the streams' buffers before an agent took them:
        each partition is read again from the first of them (and Faust's read position moved
        back with it, or its fetch loop would drop the records read again as seen)."""
        if self.in_transaction:
            return
        first: dict[TP, int] = {}
        for event in events:
            message = getattr(event, "message", None)
            if message is not None:
                first[message.tp] = min(first.get(message.tp, message.offset), message.offset)
        for tp, offset in first.items():
            read = self._read_offset[tp]
            if self.order.dropped(tp, offset) and read is not None and read > offset:
                self._read_offset[tp] = offset

    def confirm(self, messages: Iterable[Message]) -> None:
        for message in messages:
            super().ack(message)

    async def _drain_messages(self, fetcher: Any) -> None:
        """The fetch loop: Faust's, handing records over directly when that cannot wait
        (streams/handoff.py; Faust's own under `exactly_once`). When it fails, Faust logs that
        its Fetcher crashed and the worker stays up holding its partitions, reading nothing:
        hand the failure on."""
        try:
            if self.in_transaction:
                await super()._drain_messages(fetcher)
            else:
                await handoff.drain(self, fetcher)
        except Exception as exc:
            on_failure = getattr(self.transport, "on_fetch_failure", None)
            if on_failure is not None and not self.app.should_stop:
                on_failure(exc)
            raise


class ClearingFlowControl(FlowControlEvent):
    """Faust's flow control (mode's FlowControlEvent), telling `on_clear` which events it
    clears from the streams' buffers."""

    def __init__(self, on_clear: Callable[[list[Any]], None], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.on_clear = on_clear

    def clear(self) -> None:
        # asyncio.Queue keeps its items in `_queue`, which mode's own clear() empties too.
        waiting = [event for queue in self._queues for event in queue._queue]  # type: ignore[attr-defined]
        if waiting:
            self.on_clear(waiting)
        super().clear()


class Transport(driver.Transport):
    """The aiokafka transport with the confirming consumer."""

    Consumer = ConfirmingConsumer
    on_fetch_failure: Callable[[BaseException], None] | None = None


def install(
    app: faust.App, on_fetch_failure: Callable[[BaseException], None] | None = None
) -> None:
    """Give `app` the confirming consumer and the flow control that reports what it clears
    (before it starts, and before any stream exists); `on_fetch_failure` is called if Faust's
    fetch loop fails (the worker ends itself there)."""
    transport = Transport(app.conf.broker_consumer, app)
    transport.on_fetch_failure = on_fetch_failure
    app.transport = transport
    app.flow_control = ClearingFlowControl(lambda events: _cleared(app, events), loop=app.loop)


def _cleared(app: faust.App, events: list[Any]) -> None:
    consumer = app.consumer
    if isinstance(consumer, ConfirmingConsumer):
        consumer.cleared(events)


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
