"""The business's flow sends, from its JSON records on the `<prefix>.flows.sends` topic to
`flow_sends` rows. Pure: no I/O.

Each record is one JSON object (docs/analytics.md):

    {"flow_id": "1234", "message_id": "wamid...", "flow_token": "...", "sent_at": 1767225600,
     "waba_id": "..."}

`flow_id` and `sent_at` (epoch seconds, or an ISO 8601 string) are required, and at least one
of `message_id` (the sent message's wamid) and `flow_token`. A record that is not that becomes
a dead letter with reason `bad_flow_send`, and its neighbours load.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from schemas.catalog import SENDS_TABLE
from sink.batch import Cut, span_token
from sink.errors import RowError
from sink.rows import TABLES, TIME_MAX, TIME_MIN, sink_dead_letter
from sink.writer import Batch, Consumed

COLUMNS = ("send_id", "flow_id", "message_id", "flow_token", "waba_id", "sent_at")


def send_row(value: bytes) -> tuple[str, list[Any]]:
    """(send id, row) of one record; RowError when it is not a flow send."""
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise RowError("bad_flow_send", f"not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise RowError("bad_flow_send", "not a JSON object")
    flow_id, message_id, token, waba = (
        _text(doc, name) for name in ("flow_id", "message_id", "flow_token", "waba_id")
    )
    if flow_id is None:
        raise RowError("bad_flow_send", "flow_id is missing")
    if message_id is None and token is None:
        raise RowError("bad_flow_send", "neither message_id nor flow_token is given")
    sent_at = _time(doc.get("sent_at"))
    # The same send given twice is one row: its id is the message's, or the token's.
    key = f"{flow_id}|{message_id or ''}|{token or ''}"
    send_id = hashlib.sha256(key.encode()).hexdigest()[:32]
    return send_id, [send_id, flow_id, message_id, token, waba, sent_at]


def cut_sends(records: Sequence[Consumed], now: datetime) -> Cut:
    """One batch of flow_sends rows and one of dead letters (either may be absent)."""
    rows: dict[str, list[Any]] = {}
    origins: dict[str, Consumed] = {}
    dead: list[tuple[str, list[Any]]] = []
    dead_origins: list[Consumed] = []
    reasons: dict[str, int] = {}
    for rec in records:
        try:
            send_id, row = send_row(rec.value)
            rows.setdefault(send_id, row)
            origins.setdefault(send_id, rec)
        except RowError as exc:
            line = sink_dead_letter(
                rec.topic, rec.partition, rec.offset, exc.reason, str(exc), rec.value, now
            )
            dead.append((line[0], line))
            dead_origins.append(rec)
            reasons[exc.reason] = reasons.get(exc.reason, 0) + 1
    token = span_token(records, "sends:")
    out = Cut(dead_reasons=reasons)
    if rows:
        times = [row[-1] for row in rows.values()]
        out.batches.append(
            Batch(
                SENDS_TABLE, "send_id", COLUMNS, list(rows.items()), token, "sent_at",
                (min(times), max(times)), origins=list(origins.values()),
            )
        )  # fmt: skip
    if dead:
        table = TABLES["DeadLetter"]
        out.batches.append(Batch(table.name, table.id_column, table.columns, dead, f"{token}:dead"))
    return out


def _text(doc: dict[str, Any], name: str) -> str | None:
    value = doc.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise RowError("bad_flow_send", f"{name} is {type(value).__name__}, expected a string")


def _time(value: Any) -> datetime:
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            at = datetime.fromtimestamp(value, UTC)
        elif isinstance(value, str):
            at = datetime.fromisoformat(value)
            at = at if at.tzinfo else at.replace(tzinfo=UTC)
        else:
            raise RowError("bad_flow_send", "sent_at is missing")
    except (ValueError, OverflowError, OSError) as exc:
        raise RowError("bad_flow_send", f"sent_at {value!r} is not a time") from exc
    if not TIME_MIN <= at <= TIME_MAX:
        raise RowError("bad_flow_send", f"sent_at {value!r} is out of range")
    return at
