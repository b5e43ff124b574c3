"""Faust's fetch loop, handing a record to its streams directly when the hand-off cannot wait.

Faust's `Consumer._drain_messages` (faust-streaming 0.15.3) hands every fetched record over as
`await self.wait_first(callback(message), self.suspend_flow.wait())`, so that a hand-off held
up when a rebalance stops the flow gives way to it. `wait_first` makes four tasks and an
`asyncio.wait` for that: about 80 us a record (`python -m tests.benchmarks.drain`), 8 % of the
stream worker's CPU at 300 deliveries/s (py-spy).

The hand-off (the Conductor's `on_message` for the record's partition) can only wait on four
things: the Conductor's callback lock (held while a rebalance rebuilds the callbacks), the
app's flow control (stopped during a rebalance), Faust's producer buffer (table writes, which
the worker does not make) and a full stream buffer. When none of them would wait, and the flow
is not suspended, `drain` awaits the hand-off directly: it runs to the end without giving up
the event loop, so nothing can change under it. Otherwise it goes through `wait_first`, as
Faust does. Everything else is Faust's loop: the read offsets, the gap check, the periodic
commit, a yield to the loop every 100 records.
"""

from __future__ import annotations

import asyncio
from typing import Any

from faust.transport.consumer import CONSUMER_FETCHING
from faust.types import TP

YIELD_EVERY = 100  # records handed over before the loop lets other tasks run (Faust's number)


def at_once(consumer: Any, tp: TP) -> bool:
    """True when handing `tp`'s next record to its streams cannot wait."""
    app = consumer.app
    conductor = app.topics
    buffer = app.producer.buffer
    return (
        consumer.flow_active
        and not consumer.suspend_flow.is_set()
        and app.flow_control.is_active()
        and not conductor._tp_to_callback_lock.locked()
        and buffer.size <= buffer.max_messages
        and not any(channel.queue.full() for channel in conductor._tp_index.get(tp, ()))
    )


async def drain(consumer: Any, fetcher: Any) -> None:
    """Faust's `_drain_messages` loop with the direct hand-off above. Like Faust's, it ends
    quietly when the app is stopping and raises anything else."""
    since_yield = 0
    try:
        while not (consumer._stopped.is_set() or fetcher._stopped.is_set()):
            consumer.diag.set_flag(CONSUMER_FETCHING)
            records = consumer.getmany(timeout=1.0)
            await asyncio.sleep(0)  # getmany can return at once, again and again
            if not consumer.should_stop:
                since_yield = await _hand_over(consumer, records, since_yield)
            consumer.diag.unset_flag(CONSUMER_FETCHING)
    except consumer.consumer_stopped_errors:
        if not consumer.app.should_stop:
            raise
    except asyncio.CancelledError:
        if not consumer.app.should_stop:
            raise
    finally:
        consumer.diag.unset_flag(CONSUMER_FETCHING)


async def _hand_over(consumer: Any, records: Any, since_yield: int) -> int:
    """Each record of one fetch to its streams; returns the records since the last yield."""
    callback = consumer.callback
    read_offset = consumer._read_offset
    acks_enabled_for = consumer.app.topics.acks_enabled_for
    commit_every = consumer._commit_every
    async for tp, message in records:
        since_yield += 1
        if since_yield > YIELD_EVERY:
            await asyncio.sleep(0)
            since_yield = 0
        offset = message.offset
        last = read_offset[tp]
        if last is not None and offset < last:
            continue  # read before: Faust drops it too
        if last and offset - last > 1 and acks_enabled_for(message.topic):
            await consumer._add_gap(tp, last + 1, offset)
        if commit_every is not None and consumer._n_acked >= commit_every:
            consumer._n_acked = 0
            await consumer.commit()
        if at_once(consumer, tp):
            await callback(message)
        else:
            await consumer.wait_first(callback(message), consumer.suspend_flow.wait())
        read_offset[tp] = offset
    return since_yield
