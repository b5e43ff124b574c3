"""Sizes: a typed record too large for Kafka becomes a dead letter, and a dead letter keeps a
bounded prefix of its payload with the raw record's position for the rest."""

from __future__ import annotations

import orjson

from schemas import codec
from streams.encode import MAX_RECORD_BYTES, typed
from streams.records import DLQ, RESPONSES, RawMeta

META = RawMeta("waflow.webhooks.raw", 3, 41, 1_700_000_000_000, "req-1")


def delivery(answer_bytes: int) -> bytes:
    message = {
        "from": "1",
        "id": "wamid.1",
        "timestamp": "1700000000",
        "type": "interactive",
        "interactive": {
            "type": "nfm_reply",
            "nfm_reply": {"response_json": orjson.dumps({"a": "x" * answer_bytes}).decode()},
        },
    }
    value = {"metadata": {"phone_number_id": "2"}, "messages": [message]}
    doc = {"entry": [{"id": "77", "changes": [{"field": "messages", "value": value}]}]}
    return orjson.dumps(doc)


def test_a_response_under_the_limit_stays_a_response() -> None:
    [(out, value)] = typed(delivery(1000), META)
    assert out.kind == RESPONSES and len(value) < MAX_RECORD_BYTES


def test_a_response_over_the_limit_is_a_too_large_dead_letter_with_a_cut_payload() -> None:
    body = delivery(MAX_RECORD_BYTES)
    [(out, value)] = typed(body, META, payload_bytes=4096)
    assert out.kind == DLQ and out.record["reason"] == "too_large"
    assert out.dedup_id == "waflow.webhooks.raw/3/41/0.0.0"
    assert out.record["payload"] == body[:4096]
    assert "raw record waflow.webhooks.raw/3/41 has it whole" in out.record["error"]
    assert out.record["waba_id"] == "77"
    assert len(value) < 8192 and codec().decode(value)[0] == "DeadLetter"


def test_a_huge_body_that_is_not_json_keeps_only_a_prefix() -> None:
    body = b"\x00" + b"y" * (4 * 1024 * 1024)
    [(out, value)] = typed(body, META, payload_bytes=1024)
    assert (out.record["reason"], len(out.record["payload"])) == ("invalid_json", 1024)
    assert len(value) < 4096
