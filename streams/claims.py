"""The claims table: Faust's RocksDB table, claimed a whole items record at a time.

Faust's table API writes one key at a time, and each write sends its own changelog record:
with one item per write that was the stream stage's largest cost. This table keeps Faust's
partition assignment, changelog recovery, standbys and offset bookkeeping, and changes two
things: `claim` reads and writes a record's ids in one RocksDB multi-get and one write batch and
sends one changelog record for them; recovery expands such a record back into its keys.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import rocksdict
from faust.stores.rocksdb import Store
from faust.tables.table import Table
from faust.types import TP, EventT

from streams.dedup import batch_record, claim_all, claim_value, entries, key_of


class ClaimStore(Store):
    def claim(
        self, partition: int, ids: Sequence[str], offset: int, now_ms: int, window_ms: int
    ) -> list[bool]:
        db = self._db_for_partition(partition)
        keys = [key_of(dedup_id) for dedup_id in ids]
        emit = claim_all(ids, db.get(keys), offset, now_ms, window_ms)
        value = claim_value(offset, now_ms)
        batch = rocksdict.WriteBatch(raw_mode=True)
        for key, won in zip(keys, emit, strict=True):
            if won:
                batch.put(key, value)
        db.write(batch)
        return emit

    def apply_changelog_batch(
        self,
        batch: Iterable[EventT[Any]],
        to_key: Callable[[Any], Any],
        to_value: Callable[[Any], Any],
    ) -> None:
        """Faust's recovery and standby path, with batch records expanded (see dedup.entries)."""
        writes: defaultdict[int, Any] = defaultdict(lambda: rocksdict.WriteBatch(raw_mode=True))
        offsets: dict[TP, int] = {}
        for event in batch:
            msg = event.message
            offsets[msg.tp] = max(msg.offset, offsets.get(msg.tp, -1))
            for key, value in entries(msg.key, msg.value):
                if value is None:
                    writes[msg.partition].delete(key)
                else:
                    writes[msg.partition].put(key, value)
        for partition, write in writes.items():
            self._db_for_partition(partition).write(write)
        for tp, offset in offsets.items():
            self.set_persisted_offset(tp, offset)


class ClaimsTable(Table[str, str]):
    def _new_store_by_url(self, url: Any) -> ClaimStore:
        return ClaimStore(
            url,
            self.app,
            self,
            table_name=self.name,
            key_type=self.key_type,
            key_serializer=self.key_serializer,
            value_serializer=self.value_serializer,
            value_type=self.value_type,
            loop=self.loop,
            options=self.options,
        )

    def claim(
        self, partition: int, offset: int, ids: Sequence[str], now_ms: int, window_ms: int
    ) -> list[bool]:
        """Which of the items record's ids to emit; their claims are stored, then logged.

        Stored before the output is sent: a kill in between replays the record, whose own
        offset then wins again (dedup.wins), so nothing is lost.
        """
        store = self.data
        assert isinstance(store, ClaimStore)  # _new_store_by_url made it
        emit = store.claim(partition, ids, offset, now_ms, window_ms)
        won = [dedup_id for dedup_id, keep in zip(ids, emit, strict=True) if keep]
        if won:
            key, value = batch_record(partition, offset, now_ms, won)
            self.send_changelog(partition, key, value, "raw", "raw")
        return emit
