"""Who sent a flow response, as the platform says it since 2026: a phone number, a
business-scoped user id (BSUID), or both; and the numbers it sends with fractions."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest

from streams.normalize import normalize
from streams.records import DLQ, EVENTS, RESPONSES, RawMeta

META = RawMeta("waflow.webhooks.raw", 0, 7, 1_700_000_000_000, "r", app="shop")
BSUID = "US.13491208655302741918"


def response(payloads: dict[str, bytes], contact: dict[str, Any], message: dict[str, Any]) -> Any:
    doc = orjson.loads(payloads["flow_response.json"])
    value = doc["entry"][0]["changes"][0]["value"]
    value["contacts"] = [contact]
    base = value["messages"][0]
    base.pop("from")
    base.update(message)
    [out] = normalize(orjson.dumps(doc), META)
    return out


def test_a_username_user_without_a_phone_number_is_a_response_not_a_dead_letter(
    payloads: dict[str, bytes],
) -> None:
    out = response(
        payloads,
        {"profile": {"name": "Ana", "username": "ana.b"}, "user_id": BSUID,
         "parent_user_id": "US.ENT.1"},
        {"from_user_id": BSUID},
    )  # fmt: skip
    assert out.kind == RESPONSES
    r = out.record
    assert (r["wa_id"], r["user_id"], r["parent_user_id"]) == (None, BSUID, "US.ENT.1")
    assert (r["contact_name"], r["username"], r["app"]) == ("Ana", "ana.b", "shop")


def test_a_phone_only_user_is_matched_on_the_phone_number(payloads: dict[str, bytes]) -> None:
    out = response(payloads, {"profile": {"name": "Bo"}, "wa_id": "1650"}, {"from": "1650"})
    r = out.record
    assert (r["wa_id"], r["user_id"], r["contact_name"], r["username"]) == (
        "1650", None, "Bo", None,
    )  # fmt: skip


def test_both_ids_and_the_contact_found_by_bsuid_among_several(payloads: dict[str, bytes]) -> None:
    doc = orjson.loads(payloads["flow_response.json"])
    value = doc["entry"][0]["changes"][0]["value"]
    value["contacts"] = [
        {"profile": {"name": "Other"}, "wa_id": "1999", "user_id": "US.9"},
        {"profile": {"name": "Cy"}, "wa_id": "1650", "user_id": BSUID},
    ]
    value["messages"][0].update({"from": "1650", "from_user_id": BSUID})
    [out] = normalize(orjson.dumps(doc), META)
    assert (out.record["wa_id"], out.record["user_id"], out.record["contact_name"]) == (
        "1650", BSUID, "Cy",
    )  # fmt: skip


def test_the_message_fills_in_from_its_contact_and_keeps_its_own_json(
    payloads: dict[str, bytes],
) -> None:
    out = response(
        payloads, {"profile": {"name": "Di"}, "wa_id": "1650", "user_id": BSUID},
        {"from": "1650", "new_field": {"x": 1}},
    )  # fmt: skip
    assert out.record["user_id"] == BSUID  # the message named only the phone
    kept = orjson.loads(out.record["message_json"])
    assert kept["new_field"] == {"x": 1} and kept["id"].startswith("wamid.")


def test_a_response_naming_nobody_is_kept_with_no_identity(payloads: dict[str, bytes]) -> None:
    out = response(payloads, {"profile": {"name": "Ed"}, "wa_id": "1650"}, {})
    assert out.kind == RESPONSES  # the lone contact is the sender
    assert (out.record["wa_id"], out.record["contact_name"]) == ("1650", "Ed")


@pytest.mark.parametrize("field", ["requests_count", "error_count"])
def test_fractional_counts_are_numbers_not_dead_letters(
    payloads: dict[str, bytes], field: str
) -> None:
    doc = orjson.loads(payloads["client_error_rate.json"])
    value = doc["entry"][0]["changes"][0]["value"]
    if field == "requests_count":
        value["requests_count"] = 12.5
    else:
        value["errors"][0]["error_count"] = 12.5
    [out] = normalize(orjson.dumps(doc), META)
    assert out.kind == EVENTS
    record = out.record
    assert (record[field] if field == "requests_count" else record["errors"][0][field]) == 12.5


def test_every_record_and_dead_letter_carries_the_app(payloads: dict[str, bytes]) -> None:
    outs = [o for body in payloads.values() for o in normalize(body, META)]
    outs += normalize(b"not json", META)
    assert {o.kind for o in outs} >= {RESPONSES, EVENTS, DLQ}
    assert all(o.record["app"] == "shop" for o in outs)
    unlabelled = normalize(payloads["flow_response.json"], dataclasses.replace(META, app=""))
    assert unlabelled[0].record["app"] is None


def test_an_nfm_reply_without_the_message_type_or_with_an_object_is_a_response(
    payloads: dict[str, bytes],
) -> None:
    doc = orjson.loads(payloads["flow_response.json"])
    message = doc["entry"][0]["changes"][0]["value"]["messages"][0]
    del message["type"]
    reply = message["interactive"]["nfm_reply"]
    reply["response_json"] = {"flow_token": "t", "rating": 5}
    [out] = normalize(orjson.dumps(doc), META)
    assert out.kind == RESPONSES
    assert out.record["response"] == {"flow_token": "t", "rating": "5"}
    assert orjson.loads(out.record["response_json"]) == {"flow_token": "t", "rating": 5}
