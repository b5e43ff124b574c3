"""The sink's one writing step: records in, rows written once, however they are decoded.

`RowWriter` decides whether a batch's rows are decoded by the embedded engine (one INSERT ...
SELECT over an Avro container, sink/avro.py) or in Python (sink/rows.py), and falls back to
Python for a batch the engine refuses, so a bad record becomes a dead letter while its
neighbours load. The caller sees only batches, and what each write did.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sink.batch import Cut, cut
from sink.errors import EngineRefused, WriteError
from sink.rows import TABLES, sink_dead_letter
from sink.writer import Batch, BatchWriter, Consumed

DEAD = TABLES["DeadLetter"]

log = logging.getLogger("waflow.sink")


@dataclass
class Loaded:
    """What one batch's write did: rows new per table, rows in the batch per table, dead
    letters by reason found while writing, and whether the engine refused the batch."""

    inserted: Counter[str] = field(default_factory=Counter)
    sizes: Counter[str] = field(default_factory=Counter)
    dead: Counter[str] = field(default_factory=Counter)
    refused: bool = False
    # Dead letters ClickHouse refused too: logged whole and counted, the one thing dropped.
    lost: int = 0


class RowWriter:
    def __init__(self, writer: BatchWriter, in_engine: bool = False) -> None:
        self.writer = writer
        self.in_engine = in_engine  # the embedded engine can decode Avro itself

    def cut(self, records: Sequence[Consumed], now: datetime) -> Cut:
        """One batch per table; current-schema records stay Avro when the engine decodes."""
        return cut(records, now, in_engine=self.in_engine)

    async def write(self, batch: Batch, now: datetime) -> Loaded:
        """Make the batch's rows present exactly once. WriteError when ClickHouse did not take
        it for a reason that may pass (retry: writing the same batch again is safe, ids already
        present are skipped). Rows it refuses for good become dead letters here, so a bad row
        never stalls its partition."""
        loaded = Loaded()
        try:
            await self._put(batch, now, loaded)
        except EngineRefused as exc:
            assert batch.avro is not None
            log.warning(
                "engine refused a batch, decoding it in Python",
                extra={"table": batch.table, "rows": batch.size, "error": str(exc)[:300]},
            )
            slow = cut(batch.avro.records, now)
            loaded = Loaded(dead=Counter(slow.dead_reasons), refused=True)
            for one in slow.batches:
                await self._put(one, now, loaded)
        return loaded

    async def _put(self, batch: Batch, now: datetime, loaded: Loaded) -> None:
        """Write one batch; on a permanent refusal, each half on its own, down to the rows at
        fault, which become dead letters (reason `rejected`)."""
        try:
            loaded.inserted[batch.table] += await self.writer.write(batch)
            loaded.sizes[batch.table] += batch.size
            return
        except WriteError as exc:
            if not exc.permanent or batch.avro is not None:
                raise
            if len(batch.rows) > 1:
                for half in batch.halves():
                    await self._put(half, now, loaded)
                return
            if batch.table == DEAD.name or not batch.origins:
                loaded.lost += len(batch.rows)
                log.critical(
                    "ClickHouse refused a dead letter; dropped and counted",
                    extra={"table": batch.table, "row": repr(batch.rows)[:2000], "error": str(exc)},
                )
                return
            dead = self._rejected(batch, exc, now)
        loaded.dead["rejected"] += 1
        await self._put(dead, now, loaded)

    @staticmethod
    def _rejected(batch: Batch, exc: WriteError, now: datetime) -> Batch:
        """The dead letter of the one row of `batch` ClickHouse refused for good."""
        [origin] = batch.origins
        [(key, _row)] = batch.rows
        payload = origin.value
        error = f"{batch.table} refused {key}: {exc}"
        line = sink_dead_letter(
            origin.topic, origin.partition, origin.offset, "rejected", error, payload, now
        )
        log.warning("row refused for good, dead-lettered", extra={"table": batch.table, "id": key})
        return Batch(
            DEAD.name, DEAD.id_column, DEAD.columns, [(line[0], line)], f"{batch.token}:rejected",
            origins=[origin],
        )  # fmt: skip
