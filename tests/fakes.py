"""In-memory fakes of the Protocols the stages' steps are written against, kept in one place.
They record what they were asked to do; none of them is a broker or an engine."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Sequence
from types import SimpleNamespace
from typing import Any

from mode.utils.locks import Event
from mode.utils.queues import FlowControlEvent

from ingest.errors import BrokerUnavailableError
from ingest.producer import RawRecord


class FakeWriter:
    """ingest.producer.RawWriter: keeps records; fails, or waits for `hold`, on request."""

    def __init__(self, fail: bool = False, hold: asyncio.Event | None = None) -> None:
        self.records: list[RawRecord] = []
        self.fail = fail
        self.hold = hold  # when set, every write waits for it
        self.waiting = 0

    async def write(self, record: RawRecord) -> None:
        if self.hold is not None:
            self.waiting += 1
            await self.hold.wait()
            self.waiting -= 1
        if self.fail:
            raise BrokerUnavailableError("down")
        self.records.append(record)


class FakeSender:
    """streams.steps.Sender: keeps every record sent, acknowledged at once."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes, int | None]] = []

    async def send(
        self, topic: str, key: bytes | None, value: bytes, partition: int | None
    ) -> Awaitable[Any]:
        self.sent.append((topic, key, value, partition))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    def to(self, topic: str) -> list[tuple[str, bytes | None, bytes, int | None]]:
        return [s for s in self.sent if s[0] == topic]


class FakeClaims:
    """streams.steps.Claims: an id is a first sighting once, within the window."""

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}

    async def claim(
        self, partition: int, offset: int, ids: Sequence[str], now_ms: int, window_ms: int
    ) -> tuple[list[bool], Awaitable[Any] | None]:
        out = []
        for dedup_id in ids:
            first = dedup_id not in self.seen or now_ms - self.seen[dedup_id] > window_ms
            if first:
                self.seen[dedup_id] = now_ms
            out.append(first)
        return out, None


class FakeOutputs:
    """streams.steps.Outputs: records added, and how many times they were written out."""

    def __init__(self) -> None:
        self.added: list[tuple[str, bytes, bytes]] = []
        self.writes = 0

    async def add(self, topic: str, key: bytes, value: bytes) -> None:
        self.added.append((topic, key, value))

    async def write(self) -> list[Awaitable[Any]]:
        self.writes += 1
        return []


class FakeFaustConsumer:
    """The parts of Faust's consumer that streams/handoff.py reads: a fetch of records, the
    flow flags, the Conductor's lock and stream queues, and the calls it makes, recorded."""

    consumer_stopped_errors: tuple[type[BaseException], ...] = (ConnectionError,)

    def __init__(self, fetch: list[tuple[Any, Any]], queue_size: int = 10) -> None:
        self.fetch = fetch
        self.flow_active = True
        self.suspend_flow = Event()
        self.lock = asyncio.Lock()
        self.queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=queue_size)
        self.flow = FlowControlEvent(initially_suspended=False)
        self.buffer = SimpleNamespace(size=0, max_messages=100)
        topics = SimpleNamespace(
            acks_enabled_for=lambda topic: True,
            _tp_to_callback_lock=self.lock,
            _tp_index=defaultdict(set),
        )
        self.app = SimpleNamespace(
            topics=topics,
            producer=SimpleNamespace(buffer=self.buffer),
            flow_control=self.flow,
            should_stop=False,
        )
        self._read_offset: defaultdict[Any, int | None] = defaultdict(lambda: None)
        self._commit_every: int | None = None
        self._n_acked = 0
        self._stopped = asyncio.Event()
        self.diag = SimpleNamespace(set_flag=lambda flag: None, unset_flag=lambda flag: None)
        self.handed: list[Any] = []  # messages, in the order the callback got them
        self.waited_first = 0  # hand-offs that went through wait_first
        self.gaps: list[tuple[Any, int, int]] = []
        self.commits = 0

    @property
    def should_stop(self) -> bool:
        return self._stopped.is_set()

    def subscribe(self, tp: Any) -> None:
        """Give `tp` a stream channel whose queue is `self.queue`."""
        self.app.topics._tp_index[tp].add(_Channel(self.queue))

    async def callback(self, message: Any) -> None:
        self.handed.append(message)

    async def getmany(self, timeout: float) -> Any:
        fetch, self.fetch = self.fetch, []
        for tp, message in fetch:
            yield tp, message
        if not self.fetch:
            self._stopped.set()  # one fetch, then the loop ends

    async def wait_first(self, *coros: Any) -> None:
        self.waited_first += 1
        first, *others = coros
        for other in others:
            other.close()
        await first

    async def _add_gap(self, tp: Any, start: int, end: int) -> None:
        self.gaps.append((tp, start, end))

    async def commit(self) -> None:
        self.commits += 1


class _Channel:
    """A Faust topic channel, as far as the hand-off looks at it: its queue."""

    def __init__(self, queue: asyncio.Queue[Any]) -> None:
        self.queue = queue
