"""Each partition's records reach the agents in offset order, each once, none passed over.

Faust's fetch loop can hand records on out of order: records fetched before a seek of their
partition are still delivered after it (the seek reset Faust's read position, so the next one
looks like a jump), and records it fetched but dropped in a rebalance leave a hole that only a
later seek fills. It then counts the hole as done. And when its flow control resumes, Faust
clears the records still waiting in the streams' buffers, delivered but never processed,
however the flow ran since the last seek (`dropped`). `Order` keeps the next offset each
partition should deliver: a record at it is delivered; one below it was delivered already;
one above it means a hole, and the consumer reads the partition again from the expected
offset once the fetch in hand is through (streams/acks.py). The topics it guards (raw and
items) are neither compacted nor transactional, so a hole is never offsets the log lacks,
except below the log start when retention overtakes a lagging worker; the consumer asks the
broker for that case.

Pure: offsets in, decisions out.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)  # a topic-partition


class Order(Generic[K]):
    """The next offset to deliver, per partition, and the partitions with a hole."""

    def __init__(self) -> None:
        self.expected: dict[K, int] = {}
        self.holes: set[K] = set()

    def sought(self, tp: K, offset: int | None) -> None:
        """The partition now reads from `offset` (None: from wherever it stands)."""
        self.holes.discard(tp)
        if offset is None:
            self.expected.pop(tp, None)
        else:
            self.expected[tp] = offset

    def deliver(self, tp: K, offset: int) -> bool:
        """True when the record at `offset` is the partition's next; else it is skipped."""
        expected = self.expected.get(tp)
        if expected is None or offset == expected:
            self.expected[tp] = offset + 1
            return True
        if offset > expected:
            self.holes.add(tp)
        return False

    def dropped(self, tp: K, offset: int) -> bool:
        """A record delivered at `offset` never reached an agent (Faust cleared it from a
        stream's buffer): the partition is read again from there. False when it was not
        delivered to begin with, or the partition has been read from elsewhere since."""
        expected = self.expected.get(tp)
        if expected is None or offset >= expected:
            return False
        self.expected[tp] = offset
        self.holes.add(tp)
        return True

    def take_holes(self) -> dict[K, int]:
        """Each partition with a hole and the offset to read it again from; clears them."""
        holes = {tp: self.expected[tp] for tp in self.holes}
        self.holes.clear()
        return holes
