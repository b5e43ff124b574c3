"""The RowWriter keeps the engine-or-Python choice: a batch the engine refuses is decoded in
Python, its bad record counted as a dead letter, its good ones written."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from schemas import codec
from sink.batch import Consumed
from sink.errors import EngineRefused, WriteError
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


class RefusesBadRows:
    """A BatchWriter fake: refuses for good any batch holding a row whose id starts with
    "bad", and records what it wrote."""

    def __init__(self, transient: bool = False) -> None:
        self.written: list[tuple[str, str]] = []
        self.transient = transient

    async def write(self, batch: Batch) -> int:
        keys = [key for key, _ in batch.rows]
        if any(key.startswith("bad") for key in keys) or (
            batch.table == "dead_letters" and self.transient
        ):
            raise WriteError("Code: 53. DB::Exception: Type mismatch", permanent=not self.transient)
        self.written += [(batch.table, key) for key in keys]
        return len(keys)


def rows_batch(keys: list[str]) -> Batch:
    origins = [Consumed("typed", 0, i, f"value-{k}".encode()) for i, k in enumerate(keys)]
    rows = [(k, [k]) for k in keys]
    return Batch("flow_responses", "message_id", ("message_id",), rows, "t:0:0-9", origins=origins)


async def test_a_row_refused_for_good_is_a_dead_letter_and_its_neighbours_load() -> None:
    writer = RefusesBadRows()
    keys = [f"m{i}" for i in range(9)]
    keys[5] = "bad-5"
    loaded = await RowWriter(writer).write(rows_batch(keys), NOW)
    assert loaded.dead == {"rejected": 1}
    assert loaded.inserted == {"flow_responses": 8, "dead_letters": 1}
    assert sorted(k for t, k in writer.written if t == "flow_responses") == sorted(
        k for k in keys if k != "bad-5"
    )
    [(_, dead_id)] = [w for w in writer.written if w[0] == "dead_letters"]
    assert dead_id == "typed/0/5/sink"  # names the record the row came from


async def test_a_transient_refusal_is_retried_by_the_caller_not_split() -> None:
    with pytest.raises(WriteError):
        await RowWriter(RefusesBadRows(transient=True)).write(rows_batch(["a", "bad"]), NOW)


async def test_a_refused_dead_letter_is_counted_as_lost_never_a_stall() -> None:
    class Refuses(RefusesBadRows):
        async def write(self, batch: Batch) -> int:
            if batch.table == "dead_letters":
                raise WriteError("Code: 53. DB::Exception: no", permanent=True)
            return await super().write(batch)

    loaded = await RowWriter(Refuses()).write(rows_batch(["a", "bad"]), NOW)
    assert (loaded.lost, loaded.inserted["flow_responses"]) == (1, 1)
