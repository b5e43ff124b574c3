"""Raw delivery bytes in, typed records and dead letters out. Pure: no I/O, no clock.

Every entry, change and messages[]/statuses[] item is its own record; a bad item becomes a dead
letter with its reason while the rest of the delivery goes on.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from streams.dead import dead_letter
from streams.errors import PayloadError
from streams.records import CHANGE, EVENTS, Output, RawMeta
from streams.split import split_messages
from streams.values import as_seconds_ms, lineage, opt_float, opt_str, req_str


def normalize(body: bytes, meta: RawMeta) -> list[Output]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return [dead_letter(meta, "invalid_json", str(exc), body, "")]
    entries = doc.get("entry") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        return [dead_letter(meta, "bad_envelope", "no entry[] array", body, "")]
    out: list[Output] = []
    for ei, entry in enumerate(entries):
        try:
            out.extend(normalize_entry(entry, ei, meta))
        except PayloadError as exc:
            out.append(dead_letter(meta, exc.reason, str(exc), orjson.dumps(entry), f"{ei}"))
    return out


def normalize_entry(entry: Any, ei: int, meta: RawMeta) -> list[Output]:
    if not isinstance(entry, dict):
        raise PayloadError("bad_entry", "entry is not an object")
    waba_id = req_str(entry, "id")
    entry_ms = as_seconds_ms(entry.get("time"))
    changes = entry.get("changes")
    if not isinstance(changes, list):
        raise PayloadError("bad_entry", "entry.changes is not an array")
    out: list[Output] = []
    for ci, change in enumerate(changes):
        try:
            if not isinstance(change, dict):
                raise PayloadError("bad_change", "change is not an object")
            field = change.get("field")
            value = change.get("value")
            if field == "flows":
                out.append(flow_event(value, waba_id, entry_ms, (ei, ci), meta))
            else:
                out.extend(split_messages(value, field, waba_id, entry_ms, (ei, ci), meta))
        except PayloadError as exc:
            path = f"{ei}.{ci}"
            out.append(dead_letter(meta, exc.reason, str(exc), orjson.dumps(change), path, waba_id))
    return out


def flow_event(
    value: Any, waba_id: str, entry_ms: int | None, where: tuple[int, int], meta: RawMeta
) -> Output:
    if not isinstance(value, dict):
        raise PayloadError("bad_flow_event", "flows change value is not an object")
    canonical = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    event_id = hashlib.sha256(
        b"|".join((waba_id.encode(), str(entry_ms).encode(), b"flows", canonical))
    ).hexdigest()[:32]
    flow_id = req_str(value, "flow_id")
    errors = value.get("errors") or []
    if not isinstance(errors, list) or not all(isinstance(e, dict) for e in errors):
        raise PayloadError("bad_flow_event", "errors is not an array of objects")
    record = {
        "event_id": event_id,
        "waba_id": waba_id,
        "flow_id": flow_id,
        "event": req_str(value, "event"),
        "event_time": entry_ms if entry_ms is not None else meta.received_ms,
        "message": opt_str(value, "message"),
        "old_status": opt_str(value, "old_status"),
        "new_status": opt_str(value, "new_status"),
        "alert_state": opt_str(value, "alert_state"),
        "threshold": opt_float(value, "threshold"),
        "error_rate": opt_float(value, "error_rate"),
        "p50_latency": opt_float(value, "p50_latency"),
        "p90_latency": opt_float(value, "p90_latency"),
        "requests_count": opt_float(value, "requests_count"),
        "availability": opt_float(value, "availability"),
        "warning": opt_str(value, "warning"),
        "errors": [
            {
                "error_type": opt_str(e, "error_type") or "",
                "error_rate": opt_float(e, "error_rate"),
                "error_count": opt_float(e, "error_count"),
            }
            for e in errors
        ],
        "change_json": orjson.dumps(value).decode(),
        "received_at": meta.received_ms,
        "lineage": lineage(meta, where[0], where[1], CHANGE),
        "app": meta.app or None,
    }
    return Output(EVENTS, flow_id.encode(), event_id, record)
