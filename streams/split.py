"""Split a non-flows change into flow responses (nfm_reply messages) and everything else."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from streams.dead import dead_letter
from streams.errors import PayloadError
from streams.records import CHANGE, OTHER, RESPONSES, Output, RawMeta
from streams.values import as_seconds_ms, lineage, opt_str, req_str


def split_messages(
    value: Any,
    field: Any,
    waba_id: str,
    entry_ms: int | None,
    where: tuple[int, int],
    meta: RawMeta,
) -> list[Output]:
    """One record per messages[] and statuses[] item; one for a change with neither."""
    field_name = field if isinstance(field, str) else orjson.dumps(field).decode()
    items = _items(value, "messages") + _items(value, "statuses")
    if not items:
        return [whole_change(value, field_name, waba_id, entry_ms, where, meta)]
    assert isinstance(value, dict)  # _items found lists, so value is an object
    contacts = _contacts(value)
    metadata = _object(value, "metadata")
    out: list[Output] = []
    for key, index, item in items:
        at = (where[0], where[1], index)
        try:
            if key == "messages" and is_flow_response(item):
                out.append(flow_response(item, waba_id, metadata, contacts, at, meta))
            else:
                out.append(other_item(item, key, field_name, waba_id, at, meta))
        except PayloadError as exc:  # one bad item never costs its neighbours
            path = f"{at[0]}.{at[1]}.{key}.{index}"
            out.append(dead_letter(meta, exc.reason, str(exc), orjson.dumps(item), path, waba_id))
    return out


def is_flow_response(message: dict[str, Any]) -> bool:
    """`interactive.type == "nfm_reply"`: the message's own `type` is not required, since an
    nfm_reply says what it is whatever the field beside it says."""
    interactive = message.get("interactive")
    return isinstance(interactive, dict) and interactive.get("type") == "nfm_reply"


def flow_response(
    message: dict[str, Any],
    waba_id: str,
    metadata: dict[str, Any],
    contacts: Contacts,
    at: tuple[int, int, int],
    meta: RawMeta,
) -> Output:
    """A flow response. The sender is whoever the message names: a phone number (`from`), a
    business-scoped user id (`from_user_id`, since 2026), or both; the contact of either fills
    in what the message leaves out. A response is never a dead letter for a missing number."""
    reply = message["interactive"].get("nfm_reply")
    if not isinstance(reply, dict):
        raise PayloadError("bad_flow_response", "interactive.nfm_reply is not an object")
    response_json = reply.get("response_json")
    if isinstance(response_json, dict):  # sent as an object, not as JSON text: keep it so
        response, response_json = response_json, orjson.dumps(response_json).decode()
    elif not isinstance(response_json, str):
        raise PayloadError("bad_response_json", "nfm_reply.response_json is not a string")
    else:
        try:
            response = orjson.loads(response_json)
        except orjson.JSONDecodeError as exc:
            raise PayloadError(
                "bad_response_json", f"response_json does not decode: {exc}"
            ) from exc
    if not isinstance(response, dict):
        raise PayloadError("bad_response_json", "response_json is not a JSON object")
    responded_ms = as_seconds_ms(message.get("timestamp"))
    if responded_ms is None:
        raise PayloadError("bad_timestamp", "message timestamp is missing")
    context = _object(message, "context")
    message_id = req_str(message, "id")
    wa_id = opt_str(message, "from") or None
    user_id = opt_str(message, "from_user_id") or None
    contact = contacts.find(user_id, wa_id)
    token = response.get("flow_token")
    record = {
        "message_id": message_id,
        "waba_id": waba_id,
        "phone_number_id": opt_str(metadata, "phone_number_id") or "",
        "display_phone_number": opt_str(metadata, "display_phone_number") or "",
        "context_message_id": opt_str(context, "id"),
        "context_from": opt_str(context, "from"),
        "wa_id": wa_id or contact.get("wa_id"),
        "contact_name": contact.get("name"),
        "flow_name": opt_str(reply, "name"),
        "body": opt_str(reply, "body"),
        "flow_token": None if token is None else _text(token),
        "response_json": response_json,
        "response": {str(k): _text(v) for k, v in response.items()},
        "responded_at": responded_ms,
        "received_at": meta.received_ms,
        "lineage": lineage(meta, *at),
        "app": meta.app or None,
        "user_id": user_id or contact.get("user_id"),
        "parent_user_id": opt_str(message, "from_parent_user_id") or contact.get("parent_user_id"),
        "username": contact.get("username"),
        "message_json": orjson.dumps(message).decode(),
    }
    return Output(RESPONSES, message_id.encode(), message_id, record)


def other_item(
    item: dict[str, Any],
    key: str,
    field: str,
    waba_id: str,
    at: tuple[int, int, int],
    meta: RawMeta,
) -> Output:
    item_json = orjson.dumps(item)
    kind_value = item.get("type") if key == "messages" else item.get("status")
    if key == "statuses":
        kind = f"status.{_text(kind_value)}"
        change_id = f"{_text(item.get('id'))}:{_text(kind_value)}:{_text(item.get('timestamp'))}"
    else:
        kind = f"message.{_text(kind_value)}"
        change_id = _text(item.get("id")) if item.get("id") else _hash(waba_id, field, item_json)
    try:
        event_ms = as_seconds_ms(item.get("timestamp"))
    except PayloadError:
        event_ms = None  # kept as received in change_json; the time is only a convenience
    record = {
        "change_id": change_id,
        "waba_id": waba_id,
        "field": field,
        "kind": kind,
        "change_json": item_json.decode(),
        "event_time": event_ms,
        "received_at": meta.received_ms,
        "lineage": lineage(meta, *at),
        "app": meta.app or None,
    }
    return Output(OTHER, waba_id.encode(), change_id, record)


def whole_change(
    value: Any,
    field: str,
    waba_id: str,
    entry_ms: int | None,
    where: tuple[int, int],
    meta: RawMeta,
) -> Output:
    value_json = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    change_id = _hash(waba_id, field, str(entry_ms).encode() + value_json)
    record = {
        "change_id": change_id,
        "waba_id": waba_id,
        "field": field,
        "kind": "change",
        "change_json": orjson.dumps(value).decode(),
        "event_time": entry_ms,
        "received_at": meta.received_ms,
        "lineage": lineage(meta, where[0], where[1], CHANGE),
        "app": meta.app or None,
    }
    return Output(OTHER, waba_id.encode(), change_id, record)


def _items(value: Any, key: str) -> list[tuple[str, int, dict[str, Any]]]:
    found = value.get(key) if isinstance(value, dict) else None
    if not isinstance(found, list):
        return []
    if not all(isinstance(item, dict) for item in found):
        raise PayloadError("bad_change", f"{key}[] has an item that is not an object")
    return [(key, i, item) for i, item in enumerate(found)]


class Contacts:
    """A change's contacts[], found by business-scoped user id or by phone number."""

    def __init__(self, found: list[dict[str, str]]) -> None:
        self.by_user = {c["user_id"]: c for c in found if "user_id" in c}
        self.by_phone = {c["wa_id"]: c for c in found if "wa_id" in c}
        self.only = found[0] if len(found) == 1 else {}

    def find(self, user_id: str | None, wa_id: str | None) -> dict[str, str]:
        """The sender's contact: by BSUID first, then by phone; a lone contact when the message
        names neither (its sender is then the only one the change has)."""
        if user_id is not None and user_id in self.by_user:
            return self.by_user[user_id]
        if wa_id is not None and wa_id in self.by_phone:
            return self.by_phone[wa_id]
        return self.only if user_id is None and wa_id is None else {}


_CONTACT_IDS = ("wa_id", "user_id", "parent_user_id")


def _contacts(value: dict[str, Any]) -> Contacts:
    """The readable parts of contacts[]; an odd contact is skipped, never an error."""
    found: list[dict[str, str]] = []
    contacts = value.get("contacts")
    for contact in contacts if isinstance(contacts, list) else []:
        if not isinstance(contact, dict):
            continue
        one = {k: v for k in _CONTACT_IDS if isinstance(v := contact.get(k), str) and v}
        profile = contact.get("profile")
        if isinstance(profile, dict):
            for key in ("name", "username"):
                if isinstance(v := profile.get(key), str) and v:
                    one[key] = v
        found.append(one)
    return Contacts(found)


def _object(parent: dict[str, Any], key: str) -> dict[str, Any]:
    found = parent.get(key)
    return found if isinstance(found, dict) else {}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _hash(waba_id: str, field: str, data: bytes) -> str:
    return hashlib.sha256(b"|".join((waba_id.encode(), field.encode(), data))).hexdigest()[:32]
