"""What the business decides about its records, applied to each typed record before it leaves
the stream stage. Pure: a record in, a record out.

- **The flow of a response**: the platform never names it; a business that puts it in the flow
  token sets WAFLOW_FLOW_TOKEN_PATTERN, a regular expression with a named group `flow`
  (`^(?P<flow>\\d+):`), and `FlowResponse.flow_id` is that group.
- **Personal data** (WAFLOW_PII): `keep` leaves phone numbers, names and usernames as sent;
  `hash` replaces each with a keyed hash (HMAC-SHA-256 with WAFLOW_PII_KEY, 32 hex digits), the
  same for the same value, so joins and distinct counts still work; `drop` removes them. It
  reaches the typed columns (`wa_id`, `contact_name`, `username`), the same values inside the
  kept JSON (`message_json`, `change_json`: `from`, `wa_id`, `recipient_id`, `phone`,
  `profile.name`, `username`; not `context.from`, the business's own number), and a dead
  letter's payload (scrubbed when it is JSON, withheld when it is not). The raw topic keeps
  what the platform sent, for `WAFLOW_RAW_RETENTION_DAYS`: replay needs it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, replace
from typing import Any

import orjson

from infra.core.settings import Settings
from streams.records import DLQ, EVENTS, RESPONSES, Output

PII_MODES = ("keep", "hash", "drop")
# Keys whose value is a person's phone number or username wherever they sit in a payload.
_PERSONAL = frozenset({"from", "wa_id", "recipient_id", "phone", "username"})
_WITHHELD = b""


@dataclass(frozen=True)
class Policy:
    flow_token: re.Pattern[str] | None = None
    pii: str = "keep"
    pii_key: bytes = b""

    def apply(self, out: Output) -> Output:
        if out.kind == EVENTS or (self.pii == "keep" and self.flow_token is None):
            return out  # flow events name no person
        record = dict(out.record)
        if out.kind == RESPONSES:
            if self.flow_token is not None:
                record["flow_id"] = self.flow_of(record.get("flow_token"))
            if self.pii != "keep":
                for name in ("wa_id", "contact_name", "username"):
                    record[name] = self.person(record.get(name))
                record["message_json"] = self._json_text(record.get("message_json"))
        elif self.pii == "keep":
            return out
        elif out.kind == DLQ:
            record["payload"] = self._payload(record["payload"])
            if not record["payload"]:
                record["error"] += f" (payload withheld: not JSON, WAFLOW_PII={self.pii})"
        else:
            record["change_json"] = self._json_text(record["change_json"])
        return replace(out, record=record)

    def flow_of(self, token: Any) -> str | None:
        if self.flow_token is None or not isinstance(token, str):
            return None
        found = self.flow_token.search(token)
        return found.group("flow") if found else None

    def person(self, value: Any) -> Any:
        """A phone number, name or username under the mode."""
        if value is None or self.pii == "keep":
            return value
        if self.pii == "drop":
            return None
        text = value if isinstance(value, str) else orjson.dumps(value).decode()
        return hmac.new(self.pii_key, text.encode(), hashlib.sha256).hexdigest()[:32]

    def scrub(self, value: Any, under: str = "") -> Any:
        """A JSON value with every personal field replaced under the mode."""
        if isinstance(value, dict):
            out = {}
            for key, item in value.items():
                # context.from is the business's own number (the message replied to).
                personal = (key in _PERSONAL and not (key == "from" and under == "context")) or (
                    key == "name" and under == "profile"
                )
                if personal and not isinstance(item, dict | list):
                    if self.pii != "drop":
                        out[key] = self.person(item)
                else:
                    out[key] = self.scrub(item, key)
            return out
        if isinstance(value, list):
            return [self.scrub(item, under) for item in value]
        return value

    def _json_text(self, text: Any) -> Any:
        if not isinstance(text, str):
            return text
        return orjson.dumps(self.scrub(orjson.loads(text))).decode()

    def _payload(self, payload: bytes) -> bytes:
        try:
            return orjson.dumps(self.scrub(orjson.loads(payload)))
        except orjson.JSONDecodeError:
            return _WITHHELD  # not JSON: nothing tells what in it is personal


KEEP = Policy()


def policy_of(settings: Settings) -> Policy:
    pattern = settings.flow_token_pattern
    return Policy(re.compile(pattern) if pattern else None, settings.pii, settings.pii_key.encode())
