"""The RowWriter keeps the engine-or-Python choice: a batch the engine refuses is decoded in
Python, its bad record counted as a dead letter, its good ones written."""

from __future__ import annotations

from datetime import UTC, datetime

from schemas import codec
from sink.batch import Consumed
from sink.errors import EngineRefused
from sink.load import RowWriter
from sink.writer import Batch
from streams.normalize import normalize
from streams.records import SCHEMA_OF, RawMeta

NOW = datetime(2026, 1, 1, tzinfo=UTC)
META = RawMeta("waflow.webhooks.raw", 0, 1, 1_700_000_000_000, "r")


class RefusingEngine:
    """A BatchWriter fake: refuses every Avro batch, takes every decoded one."""

    def __init__(self) -> None:
        self.written: list[Batch] = []

    async def write(self, batch: Batch) -> int:
        if batch.avro is not None:
            raise EngineRefused("a row fails the checks")
        self.written.append(batch)
        return len(batch.rows)


async def test_a_refused_batch_is_decoded_in_python_and_its_bad_record_dead_lettered(
    payloads: dict[str, bytes],
) -> None:
    [out] = normalize(payloads["flow_response.json"], META)
    good = codec().encode(SCHEMA_OF[out.kind], out.record)
    broken = good[:30]  # the current schema's header, a body cut short
    records = [Consumed("t", 0, 1, good), Consumed("t", 0, 2, broken)]
    engine = RefusingEngine()
    rows = RowWriter(engine, in_engine=True)
    [batch] = rows.cut(records, NOW).batches
    assert batch.avro is not None  # the engine was to decode it
    loaded = await rows.write(batch, NOW)
    assert loaded.refused
    assert loaded.dead == {"undecodable": 1}
    assert loaded.inserted == {"flow_responses": 1, "dead_letters": 1}
    assert {b.table for b in engine.written} == {"flow_responses", "dead_letters"}


async def test_without_the_engine_rows_are_decoded_here(payloads: dict[str, bytes]) -> None:
    [out] = normalize(payloads["flow_response.json"], META)
    value = codec().encode(SCHEMA_OF[out.kind], out.record)
    rows = RowWriter(RefusingEngine(), in_engine=False)
    [batch] = rows.cut([Consumed("t", 0, 1, value)], NOW).batches
    assert batch.avro is None
    loaded = await rows.write(batch, NOW)
    assert (loaded.refused, loaded.inserted) == (False, {"flow_responses": 1})
