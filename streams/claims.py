"""The claims table: Faust's RocksDB table, claimed a whole items record at a time.

Faust's table API writes one key at a time, and each write sends its own changelog record:
with one item per write that was the stream stage's largest cost. This table keeps Faust's
partition assignment, changelog recovery, standbys and offset bookkeeping, and changes two
things: `claim` reads and writes a record's ids in one RocksDB multi-get and one write batch and
sends one changelog record for them; recovery expands such a record back into its keys.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from functools import partial
from typing import Any, cast

import rocksdict
from faust.stores.rocksdb import RocksDBOptions, Store
from faust.tables.table import Table
from faust.types import TP, EventT

from streams.dedup import batch_record, claim_all, claim_value, entries, key_of

# One memory budget for the whole store, whatever the number of partitions (the cache is
# WAFLOW_CLAIMS_CACHE_MB, handed down in the table's options): Faust opens each
# partition with its own block cache and memtables, and keeps index and filter blocks outside
# any cache. At 4,500 items/s that let the worker's RSS climb 32 % in 10 minutes (244 to 322
# MB) as per-partition caches filled. Claims are looked up mostly as "absent": 10 bloom bits a
# key (1 % false positives; Faust's default of 3 gives about 15 %) spares the cache most reads.
# Memtables are charged to that same cache, so WAFLOW_CLAIMS_CACHE_MB bounds all of it: with a
# separate 16 MB memtable budget the worker's RSS still grew 18 % over a 10-minute run as both
# filled. The memtables flush at half the cache at most.
MEMTABLE_SHARE = 0.5
BLOOM_BITS_PER_KEY = 10


class BoundedOptions(RocksDBOptions):
    """Faust's rocksdict options with one shared cache and one shared memtable budget."""

    def __init__(self, cache_bytes: int, **options: Any) -> None:
        super().__init__(**options)
        self.cache = rocksdict.Cache(cache_bytes)  # data, index and filter blocks, all partitions
        self.memtables = rocksdict.WriteBufferManager.new_write_buffer_manager_with_cache(
            int(cache_bytes * MEMTABLE_SHARE), False, self.cache
        )

    def as_options(self) -> Any:
        options = rocksdict.Options(raw_mode=True)
        options.create_if_missing(True)
        if self.max_open_files is not None:
            options.set_max_open_files(self.max_open_files)
        options.set_write_buffer_size(self.write_buffer_size)
        options.set_max_write_buffer_number(self.max_write_buffer_number)
        options.set_target_file_size_base(self.target_file_size_base)
        options.set_write_buffer_manager(self.memtables)
        table = rocksdict.BlockBasedOptions()
        table.set_bloom_filter(BLOOM_BITS_PER_KEY, True)
        table.set_block_cache(self.cache)
        table.set_cache_index_and_filter_blocks(True)
        table.set_pin_l0_filter_and_index_blocks_in_cache(True)
        table.set_index_type(rocksdict.BlockBasedIndexType.binary_search())
        options.set_block_based_table_factory(table)
        return options


class ClaimStore(Store):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Same settings as Faust parsed them (TTL, buffer sizes), under the shared budget.
        base = self.rocksdb_options
        self.rocksdb_options = BoundedOptions(
            cache_bytes=base.extra_options["cache_bytes"],
            max_open_files=base.max_open_files,
            write_buffer_size=base.write_buffer_size,
            max_write_buffer_number=base.max_write_buffer_number,
            target_file_size_base=base.target_file_size_base,
            use_rocksdict=True,
            ttl=base.ttl,
        )

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

    async def claim(
        self, partition: int, offset: int, ids: Sequence[str], now_ms: int, window_ms: int
    ) -> tuple[list[bool], Awaitable[Any] | None]:
        """Which of the items record's ids to emit, and the send of their changelog record.

        Stored before the output is sent: a kill in between replays the record, whose own
        offset then wins again (dedup.wins), so nothing is lost. The changelog record goes
        straight to the producer, not through Faust's send buffer, whose flush can return
        with records still queued (a stop then loses them, and a new disk re-emits what they
        claimed); the caller confirms the input only once this send is acknowledged.
        """
        store = self.data
        assert isinstance(store, ClaimStore)  # _new_store_by_url made it
        emit = store.claim(partition, ids, offset, now_ms, window_ms)
        won = [dedup_id for dedup_id, keep in zip(ids, emit, strict=True) if keep]
        if not won:
            return emit, None
        key, value = batch_record(partition, offset, now_ms, won)
        topic = self.changelog_topic.get_topic_name()
        # Faust's aiokafka producer returns aiokafka's future for the record.
        sent = cast(
            asyncio.Future[Any],
            await self.app.producer.send(topic, key, value, partition, None, None),
        )
        sent.add_done_callback(partial(self._logged, store, topic, partition))
        return emit, sent

    @staticmethod
    def _logged(store: ClaimStore, topic: str, partition: int, sent: asyncio.Future[Any]) -> None:
        """Record the changelog offset in the store, as Faust's own send does: a restart on
        the same disk then recovers only what follows it."""
        if not sent.cancelled() and sent.exception() is None:
            store.set_persisted_offset(TP(topic, partition), sent.result().offset)
