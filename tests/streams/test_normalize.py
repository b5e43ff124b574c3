from __future__ import annotations

import orjson

from streams.normalize import normalize
from streams.records import DLQ, EVENTS, OTHER, RESPONSES, RawMeta

META = RawMeta("waflow.webhooks.raw", 3, 77, 1_700_000_000_000, "req-1")


def by_kind(outputs: list) -> dict[str, list]:
    out: dict[str, list] = {}
    for o in outputs:
        out.setdefault(o.kind, []).append(o)
    return out


def test_every_sample_payload_types_cleanly(payloads: dict[str, bytes]) -> None:
    for name, body in payloads.items():
        outputs = normalize(body, META)
        assert len(outputs) == 1, name
        assert outputs[0].kind == (RESPONSES if name == "flow_response.json" else EVENTS), name


def test_flow_response_fields(payloads: dict[str, bytes]) -> None:
    [out] = normalize(payloads["flow_response.json"], META)
    r = out.record
    assert out.key == r["message_id"].encode() == out.dedup_id.encode()
    assert r["waba_id"] == "102290129340398"
    assert r["phone_number_id"] == "106540352242922"
    assert r["display_phone_number"] == "15550783881"
    assert r["context_message_id"].startswith("wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJB")
    assert (r["wa_id"], r["contact_name"]) == ("16505551234", "Sheena Nelson")
    assert (r["flow_name"], r["body"]) == ("flow", "Sent")
    assert r["flow_token"] == "AQAAAAACS5FpgQ_cAAAAAD0QI3s."
    assert r["response"]["optional_param1"] == "<value1>"
    assert r["responded_at"] == 1714510003000
    assert r["received_at"] == META.received_ms
    assert r["lineage"] == {
        "request_id": "req-1",
        "raw_partition": 3,
        "raw_offset": 77,
        "entry_index": 0,
        "change_index": 0,
        "item_index": 0,
    }


def test_flow_event_floats_missing_old_status_and_unknown_event(payloads: dict[str, bytes]) -> None:
    [created] = normalize(payloads["flow_status_change_created.json"], META)
    assert created.record["old_status"] is None
    assert created.record["new_status"] == "DRAFT"
    assert created.key == b"6627390910605886"
    [rate] = normalize(payloads["client_error_rate.json"], META)
    assert rate.record["error_rate"] == 14.28
    assert rate.record["errors"][0] == {
        "error_type": "INVALID_SCREEN_TRANSITION",
        "error_rate": 66.66,
        "error_count": 2,
    }
    doc = orjson.loads(payloads["endpoint_latency.json"])
    doc["entry"][0]["changes"][0]["value"]["event"] = "FLOW_VERSION_EXPIRY_WARNING"
    doc["entry"][0]["changes"][0]["value"]["p90_latency"] = "8000.5"  # numbers as strings
    [unknown] = normalize(orjson.dumps(doc), META)
    assert unknown.kind == EVENTS
    assert unknown.record["event"] == "FLOW_VERSION_EXPIRY_WARNING"
    assert unknown.record["p90_latency"] == 8000.5


def test_event_id_is_deterministic_and_distinguishes(payloads: dict[str, bytes]) -> None:
    a = normalize(payloads["flow_status_change_published.json"], META)[0]
    again = normalize(
        payloads["flow_status_change_published.json"], RawMeta("t", 0, 1, 5, "other")
    )[0]
    b = normalize(payloads["flow_status_change_created.json"], META)[0]
    assert a.dedup_id == again.dedup_id != b.dedup_id


def message(mid: str, kind: str = "nfm", response_json: str = '{"flow_token":"t","q":"Ωmega ✅"}'):
    if kind == "nfm":
        return {
            "from": "1",
            "id": mid,
            "timestamp": "1714510003",
            "type": "interactive",
            "interactive": {
                "type": "nfm_reply",
                "nfm_reply": {"name": "flow", "body": "Sent", "response_json": response_json},
            },
        }
    return {
        "from": "1",
        "id": mid,
        "timestamp": "1714510003",
        "type": "text",
        "text": {"body": "héllo"},
    }


def delivery() -> bytes:
    entries = []
    for e in range(3):
        changes = []
        for c in range(2):
            value = {
                "messaging_product": "whatsapp",
                "metadata": {"phone_number_id": "p", "display_phone_number": "d"},
                "contacts": [{"profile": {"name": "Łukasz Żółć"}, "wa_id": "1"}],
                "messages": [
                    message(f"m{e}{c}a"),
                    message(f"m{e}{c}b", "text"),
                    message(f"m{e}{c}c", response_json="{not json"),
                ],
                "statuses": [{"id": f"s{e}{c}", "status": "read", "timestamp": "1"}],
            }
            changes.append({"field": "messages", "value": value})
        entries.append({"id": f"waba{e}", "time": 1, "changes": changes})
    return orjson.dumps({"object": "whatsapp_business_account", "entry": entries})


def test_batched_delivery_every_item_its_own_record() -> None:
    kinds = by_kind(normalize(delivery(), META))
    assert len(kinds[RESPONSES]) == 6
    assert len(kinds[OTHER]) == 12  # 6 text messages + 6 statuses
    assert len(kinds[DLQ]) == 6  # the malformed response_json, next to its good neighbours
    assert {d.record["reason"] for d in kinds[DLQ]} == {"bad_response_json"}
    assert kinds[RESPONSES][0].record["contact_name"] == "Łukasz Żółć"
    assert kinds[RESPONSES][0].record["response"]["q"] == "Ωmega ✅"
    assert {o.record["kind"] for o in kinds[OTHER]} == {"message.text", "status.read"}
    assert kinds[RESPONSES][5].record["lineage"]["entry_index"] == 2


def test_missing_flow_token_is_null() -> None:
    body = orjson.dumps(
        {
            "entry": [
                {
                    "id": "w",
                    "changes": [
                        {
                            "field": "messages",
                            "value": {
                                "messages": [message("m1", response_json='{"a": [1, {"b": null}]}')]
                            },
                        }
                    ],
                }
            ]
        }
    )
    [out] = normalize(body, META)
    assert out.record["flow_token"] is None
    assert out.record["response"] == {"a": '[1,{"b":null}]'}


def test_invalid_json_and_bad_shapes_become_dead_letters() -> None:
    [bad] = normalize(b'{"entry": [', META)
    assert (bad.kind, bad.record["reason"], bad.record["payload"]) == (
        DLQ,
        "invalid_json",
        b'{"entry": [',
    )
    outs = normalize(
        orjson.dumps(
            {
                "entry": [
                    5,
                    {
                        "id": "w",
                        "changes": [
                            {"field": "flows", "value": {"event": "X"}},
                            "nope",
                            {"field": "account_update", "value": {"event": "VERIFIED"}},
                        ],
                    },
                ]
            }
        ),
        META,
    )
    assert [o.kind for o in outs] == [DLQ, DLQ, DLQ, OTHER]
    assert outs[3].record["field"] == "account_update"
