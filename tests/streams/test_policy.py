"""The business's policy on each typed record: the flow named by the token, and personal data
kept, hashed with a key, or dropped, in the typed columns and inside the kept JSON."""

from __future__ import annotations

import re

import orjson
import pytest

from streams.normalize import normalize
from streams.policy import KEEP, Policy, policy_of
from streams.records import DLQ, RESPONSES, RawMeta
from tests.conftest import make_settings

META = RawMeta("waflow.webhooks.raw", 0, 3, 1_700_000_000_000, "r", app="shop")
KEY = b"0123456789abcdef"
STATUS = orjson.dumps(
    {"entry": [{"id": "w", "changes": [{"field": "messages", "value": {
        "statuses": [{"id": "wamid.s", "status": "read", "timestamp": "1",
                      "recipient_id": "16505551234", "recipient_user_id": "US.1"}],
        "contacts": [{"profile": {"name": "Ana", "username": "ana"}, "wa_id": "16505551234"}],
    }}]}]}
)  # fmt: skip


def response(payloads: dict[str, bytes], policy: Policy) -> dict[str, object]:
    [out] = [policy.apply(o) for o in normalize(payloads["flow_response.json"], META)]
    assert out.kind == RESPONSES
    return out.record


def test_keep_changes_nothing(payloads: dict[str, bytes]) -> None:
    for body in [*payloads.values(), STATUS, b"not json"]:
        for out in normalize(body, META):
            assert KEEP.apply(out) is out


def test_hash_is_keyed_stable_and_reaches_the_json(payloads: dict[str, bytes]) -> None:
    record = response(payloads, Policy(pii="hash", pii_key=KEY))
    assert record["wa_id"] != "16505551234" and len(str(record["wa_id"])) == 32
    assert record["contact_name"] != "Sheena Nelson"
    again = response(payloads, Policy(pii="hash", pii_key=KEY))
    assert again["wa_id"] == record["wa_id"]  # joins and distinct counts still work
    other_key = response(payloads, Policy(pii="hash", pii_key=b"another-key-0000"))
    assert other_key["wa_id"] != record["wa_id"]
    message = orjson.loads(str(record["message_json"]))
    assert message["from"] == record["wa_id"]
    assert message["context"]["from"] == record["context_from"] == "15550783881"  # business
    assert b"16505551234" not in orjson.dumps(record)


def test_drop_removes_people_and_keeps_the_rest(payloads: dict[str, bytes]) -> None:
    record = response(payloads, Policy(pii="drop"))
    assert (record["wa_id"], record["contact_name"], record["username"]) == (None, None, None)
    message = orjson.loads(str(record["message_json"]))
    assert "from" not in message and message["interactive"]["nfm_reply"]["name"] == "flow"
    [change] = [Policy(pii="drop").apply(o) for o in normalize(STATUS, META)]
    kept = orjson.loads(change.record["change_json"])
    assert kept["recipient_user_id"] == "US.1" and "recipient_id" not in kept


def test_a_dead_letter_payload_is_scrubbed_or_withheld() -> None:
    bad_item = orjson.dumps(
        {"entry": [{"id": "w", "changes": [{"field": "messages", "value": {
            "messages": [{"from": "16505551234", "id": "m", "type": "interactive",
                          "interactive": {"type": "nfm_reply", "nfm_reply": {
                              "response_json": "{not json"}}}]}}]}]}
    )  # fmt: skip
    [dead] = [Policy(pii="drop").apply(o) for o in normalize(bad_item, META)]
    assert dead.kind == DLQ and b"16505551234" not in dead.record["payload"]
    [unreadable] = [Policy(pii="drop").apply(o) for o in normalize(b"\xff16505551234", META)]
    assert unreadable.record["payload"] == b""
    assert "withheld" in unreadable.record["error"]


def test_the_token_rule_names_the_flow(payloads: dict[str, bytes]) -> None:
    record = response(payloads, Policy(re.compile(r"^(?P<flow>AQAAAAAC)")))
    assert record["flow_id"] == "AQAAAAAC"
    assert response(payloads, Policy(re.compile(r"^(?P<flow>\d+):")))["flow_id"] is None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"WAFLOW_FLOW_TOKEN_PATTERN": "(unclosed"}, "not a regular expression"),
        ({"WAFLOW_FLOW_TOKEN_PATTERN": r"^(\d+):"}, "named group `flow`"),
        ({"WAFLOW_PII": "mask"}, "keep, hash or drop"),
        ({"WAFLOW_PII": "hash"}, "WAFLOW_PII_KEY"),
        ({"WAFLOW_CLICKHOUSE_TTL_DAYS": "nope=3"}, "no table"),
        ({"WAFLOW_CLICKHOUSE_TTL_DAYS": "dead_letters=x"}, "not table=days"),
    ],
)
def test_policy_settings_say_what_is_wrong(env: dict[str, str], message: str) -> None:
    with pytest.raises(Exception, match=message):
        make_settings(**env)


def test_settings_build_the_policy() -> None:
    settings = make_settings(
        WAFLOW_FLOW_TOKEN_PATTERN=r"^(?P<flow>\d+):", WAFLOW_PII="hash", WAFLOW_PII_KEY=KEY.decode()
    )
    policy = policy_of(settings)
    assert policy.flow_of("12:x") == "12" and policy.pii == "hash"
    assert "0123456789" not in repr(settings)
