from __future__ import annotations

from datetime import UTC, datetime

from schemas import codec
from sink.batch import Consumed, cut
from streams.normalize import normalize
from streams.records import SCHEMA_OF, RawMeta

META = RawMeta("waflow.webhooks.raw", 0, 1, 1_700_000_000_000, "r")
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def encoded(body: bytes) -> list[bytes]:
    return [codec().encode(SCHEMA_OF[o.kind], o.record) for o in normalize(body, META)]


def test_one_batch_per_table_token_names_offset_ranges(payloads: dict[str, bytes]) -> None:
    response = encoded(payloads["flow_response.json"])[0]
    event = encoded(payloads["endpoint_latency.json"])[0]
    records = [
        Consumed("waflow.flows.responses", 2, 10, response),
        Consumed("waflow.flows.responses", 2, 11, response),  # same id, other offset
        Consumed("waflow.flows.events", 0, 5, event),
    ]
    result = cut(records, NOW)
    by_table = {b.table: b for b in result.batches}
    assert len(by_table["flow_responses"].rows) == 1
    assert by_table["flow_responses"].token == "waflow.flows.responses:2:10-11"
    assert by_table["flow_events"].token == "waflow.flows.events:0:5-5"
    # Existing ids are looked up only within the batch's own partition-column values.
    responded = datetime.fromtimestamp(1714510003, UTC)
    assert by_table["flow_responses"].time_range == (responded, responded)
    assert by_table["flow_responses"].time_column == "responded_at"


def test_undecodable_and_out_of_range_become_dead_letters(payloads: dict[str, bytes]) -> None:
    _, record = codec().decode(encoded(payloads["flow_response.json"])[0])
    record["responded_at"] = datetime(2400, 1, 1, tzinfo=UTC)
    drift = codec().encode("FlowResponse", record)
    result = cut([Consumed("t", 0, 1, b"garbage"), Consumed("t", 0, 2, drift)], NOW)
    [batch] = result.batches
    assert batch.table == "dead_letters"
    assert result.dead_reasons == {"undecodable": 1, "out_of_range": 1}
    assert [row[2] for _, row in batch.rows] == ["undecodable", "out_of_range"]


def test_an_internal_record_on_a_typed_topic_is_a_dead_letter_not_a_crash() -> None:
    """Regression: the codec learned the internal ItemBatch schema, which has no table; the
    sink looked its table up outside its error handling and would have crashed on one."""
    misrouted = codec().encode("ItemBatch", {"items": []})
    result = cut([Consumed("t", 0, 1, misrouted)], NOW)
    assert result.dead_reasons == {"unexpected_schema": 1}


def test_in_engine_current_records_stay_avro_and_the_rest_is_decoded(
    payloads: dict[str, bytes],
) -> None:
    response = encoded(payloads["flow_response.json"])[0]
    records = [
        Consumed("waflow.flows.responses", 2, 10, response),
        Consumed("waflow.flows.responses", 2, 12, response),
        Consumed("waflow.flows.responses", 2, 11, b"garbage"),
    ]
    result = cut(records, NOW, in_engine=True)
    by_table = {b.table: b for b in result.batches}
    engine = by_table["flow_responses"]
    assert engine.avro is not None and engine.rows == ()
    assert engine.size == 2 and engine.token == "avro:waflow.flows.responses:2:10-12"
    assert [r.offset for r in engine.avro.records] == [10, 12]
    assert result.dead_reasons == {"undecodable": 1}
