"""The worker's consumer commits only what the agents confirm (streams/acks.py)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest
from faust.transport.drivers import aiokafka as driver
from faust.types import TP, ConsumerMessage

from infra.core.settings import Settings
from streams import acks
from streams.agents import create_app


def record(offset: int, partition: int = 0) -> ConsumerMessage:
    tp = TP("t.raw", partition)
    return ConsumerMessage("t.raw", partition, offset, 0.0, 0, None, b"", b"", None, tp=tp)


def consumer_of(tmp_path: Any) -> acks.ConfirmingConsumer:
    settings = Settings.from_env({"WAFLOW_DATA_DIR": str(tmp_path), "WAFLOW_APP_SECRETS": "a:s"})
    consumer = create_app(settings).consumer
    assert isinstance(consumer, acks.ConfirmingConsumer)
    return consumer


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


@pytest.mark.parametrize(
    ("acked", "committed", "commit", "left"),
    [
        ([5, 6], None, None, [5, 6]),  # no known start: nothing is committable
        ([101, 102], 100, None, [101, 102]),  # 100 not confirmed (Faust's rule commits 103)
        ([100, 102, 101, 104], 100, 103, [104]),
        ([90, 100, 101], 100, 102, []),  # 90: a confirmation of work read twice
        ([90, 105], 100, None, [105]),
    ],
)
def test_a_commit_covers_only_a_confirmed_run_from_the_committed_offset(
    acked: list[int], committed: int | None, commit: int | None, left: list[int]
) -> None:
    index = set(acked)
    assert acks.next_commit(acked, index, committed) == commit
    assert acked == left
    assert index == set(left)


async def test_a_hole_in_the_offsets_read_is_never_committed(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    consumer = consumer_of(tmp_path)
    monkeypatch.setattr(consumer.app.topics, "acks_enabled_for", lambda topic: True)
    tp = TP("t.raw", 0)
    consumer._committed_offset[tp] = 100
    # Faust reports records fetched but not delivered (a rebalance dropped them) as a gap.
    await consumer._add_gap(tp, 100, 102)
    consumer.confirm([record(102), record(103)])
    assert consumer._new_offset(tp) is None
    consumer.confirm([record(100), record(101)])
    assert consumer._new_offset(tp) == 104


def fake_broker(
    monkeypatch: pytest.MonkeyPatch,
    consumer: acks.ConfirmingConsumer,
    fetches: list[list[tuple[TP, int]]],
    log_start: Mapping[TP, int] | None = None,
) -> list[tuple[TP, int]]:
    """Fake the consumer's broker side, below Faust: each getmany hands out the next of
    `fetches`, each log starts where `log_start` says (else at 0); returns the seeks made."""
    seeks: list[tuple[TP, int]] = []

    async def fetched(self: Any, timeout: float) -> AsyncIterator[tuple[TP, ConsumerMessage]]:
        for tp, offset in fetches.pop(0):
            yield tp, record(offset, tp.partition)

    async def seek_wait(self: Any, partitions: Mapping[TP, int]) -> None:
        seeks.extend(partitions.items())

    async def earliest(*tps: TP) -> Mapping[TP, int]:
        return {tp: (log_start or {}).get(tp, 0) for tp in tps}

    monkeypatch.setattr(consumer.app.topics, "acks_enabled_for", lambda topic: True)
    monkeypatch.setattr(driver.Consumer, "getmany", fetched)
    monkeypatch.setattr(driver.Consumer, "seek_wait", seek_wait)
    monkeypatch.setattr(consumer, "earliest_offsets", earliest)
    return seeks


async def test_a_hole_in_a_fetch_is_read_again_from_the_next_offset_to_deliver(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    consumer = consumer_of(tmp_path)
    tp, other = TP("t.raw", 0), TP("t.raw", 1)
    fetches = [
        # 7 and 8 were fetched before a seek back to 5 and are delivered after it; 9 follows.
        [(tp, 5), (tp, 7), (tp, 8), (other, 3)],
        [(tp, 6), (tp, 7), (tp, 8), (tp, 9)],  # read again from 6
    ]
    seeks = fake_broker(monkeypatch, consumer, fetches)
    consumer.order.sought(tp, 5)
    got = [(at.partition, m.offset) async for at, m in consumer.getmany(1.0)]
    assert got == [(0, 5), (1, 3)]
    assert seeks == [(tp, 6)]
    got = [(at.partition, m.offset) async for at, m in consumer.getmany(1.0)]
    assert got == [(0, 6), (0, 7), (0, 8), (0, 9)]
    assert seeks == [(tp, 6)]  # no hole: no seek


async def test_a_hole_retention_deleted_counts_as_done_and_is_logged(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    consumer = consumer_of(tmp_path)
    tp = TP("t.raw", 0)
    # The log now starts at 500: 100 to 499 were never read.
    seeks = fake_broker(monkeypatch, consumer, [[(tp, 500)]], log_start={tp: 500})
    consumer.order.sought(tp, 100)
    consumer._committed_offset[tp] = 90
    with caplog.at_level(logging.ERROR, logger="waflow.streams"):
        assert [m.offset async for _, m in consumer.getmany(1.0)] == []
    assert seeks == [(tp, 500)]
    assert [r.message for r in caplog.records] == [
        "records deleted by retention before they were read"
    ]
    consumer.confirm([record(n) for n in range(90, 100)])
    assert consumer._new_offset(tp) == 500  # 100 to 499 no longer exist
    consumer._committed_offset[tp] = 500  # as Faust's commit records it
    consumer.confirm([record(500)])
    assert consumer._new_offset(tp) == 501


async def test_a_partition_never_committed_or_overtaken_by_retention_reads_from_the_log_start(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    consumer = consumer_of(tmp_path)
    fresh, behind, fine = TP("t.raw", 0), TP("t.raw", 1), TP("t.raw", 2)
    seeks = fake_broker(monkeypatch, consumer, [], log_start={behind: 50, fine: 50})
    consumer._committed_offset.update({fresh: None, behind: 20, fine: 70})
    with caplog.at_level(logging.ERROR, logger="waflow.streams"):
        await consumer._start_where_the_log_does([fresh, behind, fine])
    assert seeks == [(fresh, 0), (behind, 50)]  # aiokafka's seek_to_committed skips no-commit
    assert [consumer._committed_offset[tp] for tp in (fresh, behind, fine)] == [0, 50, 70]
    assert [r.message for r in caplog.records] == [
        "records deleted by retention before they were read"
    ]


def test_offsets_retention_deleted_count_as_done_in_a_commit() -> None:
    acked = [100, 101, 150, 151, 153]
    index = set(acked)
    assert acks.next_commit(acked, index, 100, [(102, 150)]) == 152
    assert acked == [153]
    assert acks.next_commit([], set(), 102, [(102, 150)]) is None  # nothing confirmed yet


async def test_a_failed_fetch_loop_is_handed_on(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    consumer = consumer_of(tmp_path)
    failures: list[BaseException] = []
    monkeypatch.setattr(consumer.transport, "on_fetch_failure", failures.append)

    async def broken(consumer: Any, fetcher: Any) -> None:
        raise KeyError("aiokafka's fetcher")

    monkeypatch.setattr(acks.handoff, "drain", broken)
    with pytest.raises(KeyError):
        await consumer._drain_messages(None)
    assert [type(f) for f in failures] == [KeyError]  # the worker would exit here


async def test_records_flow_control_clears_from_the_streams_buffers_are_read_again(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: Faust resumes its flow control more than once in one rebalance, and each
    resume clears the streams' buffers. Records delivered between two resumes were lost from
    the stream and never confirmed, so the partition's commit stopped there (a faults test
    stalled on it once the fetch loop handed records over without yielding)."""
    consumer = consumer_of(tmp_path)
    app = consumer.app
    tp = TP("t.raw", 0)
    fetches = [[(tp, 5), (tp, 6), (tp, 7)], [(tp, 8)], [(tp, 6), (tp, 7), (tp, 8)]]
    seeks = fake_broker(monkeypatch, consumer, fetches)
    consumer.order.sought(tp, 5)
    buffer = app.FlowControlQueue(maxsize=100, clear_on_resume=True)
    async for at, message in consumer.getmany(1.0):
        consumer._read_offset[at] = message.offset
        if message.offset > 5:  # 5 reached its agent; 6 and 7 wait in its buffer
            buffer.put_nowait(Event(message))
    app.flow_control.resume()  # clears 6 and 7 from the buffer
    assert buffer.empty()
    assert [m.offset async for _, m in consumer.getmany(1.0)] == []  # 8 waits for 6 and 7
    assert seeks == [(tp, 6)]
    assert consumer._read_offset[tp] == 6  # so Faust's fetch loop does not drop them as seen
    assert [m.offset async for _, m in consumer.getmany(1.0)] == [6, 7, 8]


async def test_the_flow_control_reports_only_what_it_clears() -> None:
    from mode.utils.queues import ThrowableQueue

    reported: list[list[Any]] = []
    flow = acks.ClearingFlowControl(reported.append)
    kept = ThrowableQueue(maxsize=10, flow_control=flow, clear_on_resume=False)
    cleared = ThrowableQueue(maxsize=10, flow_control=flow, clear_on_resume=True)
    kept.put_nowait("kept")
    flow.resume()
    assert reported == []  # nothing waiting in a queue it clears: nothing reported
    cleared.put_nowait("a")
    cleared.put_nowait("b")
    flow.resume()
    assert reported == [["a", "b"]] and cleared.empty() and kept.qsize() == 1
