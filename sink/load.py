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
from sink.errors import EngineRefused
from sink.writer import Batch, BatchWriter, Consumed

log = logging.getLogger("waflow.sink")


@dataclass(frozen=True)
class Loaded:
    """What one batch's write did: rows new per table, rows in the batch per table, dead
    letters by reason found while writing, and whether the engine refused the batch."""

    inserted: Counter[str] = field(default_factory=Counter)
    sizes: Counter[str] = field(default_factory=Counter)
    dead: Counter[str] = field(default_factory=Counter)
    refused: bool = False


class RowWriter:
    def __init__(self, writer: BatchWriter, in_engine: bool = False) -> None:
        self.writer = writer
        self.in_engine = in_engine  # the embedded engine can decode Avro itself

    def cut(self, records: Sequence[Consumed], now: datetime) -> Cut:
        """One batch per table; current-schema records stay Avro when the engine decodes."""
        return cut(records, now, in_engine=self.in_engine)

    async def write(self, batch: Batch, now: datetime) -> Loaded:
        """Make the batch's rows present exactly once. WriteError when ClickHouse did not take
        it: writing the same batch again is safe (ids already present are skipped)."""
        try:
            inserted = await self.writer.write(batch)
            return Loaded(Counter({batch.table: inserted}), Counter({batch.table: batch.size}))
        except EngineRefused as exc:
            assert batch.avro is not None
            log.warning(
                "engine refused a batch, decoding it in Python",
                extra={"table": batch.table, "rows": batch.size, "error": str(exc)[:300]},
            )
            slow = cut(batch.avro.records, now)
            loaded = Loaded(dead=Counter(slow.dead_reasons), refused=True)
            for one in slow.batches:
                loaded.inserted[one.table] += await self.writer.write(one)
                loaded.sizes[one.table] += one.size
            return loaded
