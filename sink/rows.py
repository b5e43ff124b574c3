"""Typed records to table rows. Pure: the sink's per-row work, done once per record."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sink.errors import RowError

# DateTime64 holds 1900-01-01 .. 2299-12-31; anything outside is drift, not data.
TIME_MIN = datetime(1900, 1, 2, tzinfo=UTC)
TIME_MAX = datetime(2299, 12, 30, tzinfo=UTC)
_UINT32 = 2**32


@dataclass(frozen=True)
class Table:
    name: str
    id_column: str
    columns: tuple[str, ...]
    row: Callable[[dict[str, Any]], list[Any]]
    # The partition column: a copy of a record carries the same value, so the sink looks for
    # existing ids only between a batch's min and max of it (partition pruning keeps that check
    # from scanning the whole table). None where a copy's value can differ (dead letters).
    time_column: str | None


def _time(value: Any) -> datetime:
    if not isinstance(value, datetime) or not TIME_MIN <= value <= TIME_MAX:
        raise RowError("out_of_range", f"timestamp {value!r} is outside DateTime64's range")
    return value


def _opt_time(value: Any) -> datetime | None:
    return None if value is None else _time(value)


# Lineage positions the tables keep unsigned.
COUNTERS = ("raw_partition", "raw_offset", "entry_index", "change_index")


def _lineage(lin: dict[str, Any]) -> list[Any]:
    for key in COUNTERS:
        if lin[key] < 0:
            raise RowError("out_of_range", f"lineage {key}={lin[key]} is negative")
    if lin["raw_partition"] >= _UINT32:
        raise RowError("out_of_range", "lineage raw_partition is too large")
    return [
        lin["request_id"],
        lin["raw_partition"],
        lin["raw_offset"],
        lin["entry_index"],
        lin["change_index"],
    ]


LINEAGE = ("request_id", "raw_partition", "raw_offset", "entry_index", "change_index")


def response_row(r: dict[str, Any]) -> list[Any]:
    return [
        r["message_id"],
        r["waba_id"],
        r["phone_number_id"],
        r["display_phone_number"],
        r["context_message_id"],
        r["context_from"],
        r["wa_id"],
        r["contact_name"],
        r["flow_name"],
        r["body"],
        r["flow_token"],
        r["response_json"],
        r["response"],
        _time(r["responded_at"]),
        _time(r["received_at"]),
        *_lineage(r["lineage"]),
        r["lineage"]["item_index"],
    ]


def event_row(r: dict[str, Any]) -> list[Any]:
    errors = r["errors"]
    return [
        r["event_id"],
        r["waba_id"],
        r["flow_id"],
        r["event"],
        _time(r["event_time"]),
        r["message"],
        r["old_status"],
        r["new_status"],
        r["alert_state"],
        r["threshold"],
        r["error_rate"],
        r["p50_latency"],
        r["p90_latency"],
        r["requests_count"],
        r["availability"],
        r["warning"],
        [e["error_type"] for e in errors],
        [e["error_rate"] for e in errors],
        [e["error_count"] for e in errors],
        r["change_json"],
        _time(r["received_at"]),
        *_lineage(r["lineage"]),
    ]


def change_row(r: dict[str, Any]) -> list[Any]:
    return [
        r["change_id"],
        r["waba_id"],
        r["field"],
        r["kind"],
        r["change_json"],
        _opt_time(r["event_time"]),
        _time(r["received_at"]),
        *_lineage(r["lineage"]),
        r["lineage"]["item_index"],
    ]


def dead_row(r: dict[str, Any]) -> list[Any]:
    return [
        r["dead_letter_id"],
        r["stage"],
        r["reason"],
        r["error"],
        r["payload"],
        r["source_topic"],
        r["source_partition"],
        r["source_offset"],
        r["waba_id"],
        r["request_id"],
        _time(r["failed_at"]),
    ]


TABLES: dict[str, Table] = {
    "FlowResponse": Table(
        "flow_responses",
        "message_id",
        (
            "message_id",
            "waba_id",
            "phone_number_id",
            "display_phone_number",
            "context_message_id",
            "context_from",
            "wa_id",
            "contact_name",
            "flow_name",
            "body",
            "flow_token",
            "response_json",
            "response",
            "responded_at",
            "received_at",
            *LINEAGE,
            "item_index",
        ),
        response_row,
        "responded_at",
    ),
    "FlowEvent": Table(
        "flow_events",
        "event_id",
        (
            "event_id",
            "waba_id",
            "flow_id",
            "event",
            "event_time",
            "message",
            "old_status",
            "new_status",
            "alert_state",
            "threshold",
            "error_rate",
            "p50_latency",
            "p90_latency",
            "requests_count",
            "availability",
            "warning",
            "errors.error_type",
            "errors.error_rate",
            "errors.error_count",
            "change_json",
            "received_at",
            *LINEAGE,
        ),
        event_row,
        "event_time",
    ),
    "WebhookChange": Table(
        "webhook_changes",
        "change_id",
        (
            "change_id",
            "waba_id",
            "field",
            "kind",
            "change_json",
            "event_time",
            "received_at",
            *LINEAGE,
            "item_index",
        ),
        change_row,
        "received_at",
    ),
    "DeadLetter": Table(
        "dead_letters",
        "dead_letter_id",
        (
            "dead_letter_id",
            "stage",
            "reason",
            "error",
            "payload",
            "source_topic",
            "source_partition",
            "source_offset",
            "waba_id",
            "request_id",
            "failed_at",
        ),
        dead_row,
        None,
    ),
}


def to_row(schema: str, record: dict[str, Any]) -> tuple[Table, str, list[Any]]:
    """(table, id, row) for one decoded record; RowError when it does not fit."""
    table = TABLES.get(schema)
    if table is None:  # a schema waflow knows but never loads (the internal ItemBatch)
        raise RowError("unexpected_schema", f"a {schema} record has no table")
    try:
        return table, record[table.id_column], table.row(record)
    except (KeyError, TypeError) as exc:
        raise RowError("schema_drift", f"{schema} record lacks or mistypes {exc}") from exc


def sink_dead_letter(
    topic: str, partition: int, offset: int, reason: str, error: str, payload: bytes, now: datetime
) -> list[Any]:
    """A dead_letters row for a record the sink could not load."""
    return [
        f"{topic}/{partition}/{offset}/sink",
        "sink",
        reason,
        error[:1000],
        payload,
        topic,
        partition,
        offset,
        None,
        None,
        now,
    ]


def dedup_in_order(rows: Sequence[tuple[str, list[Any]]]) -> list[tuple[str, list[Any]]]:
    """Keep the first row of each id within a batch."""
    seen: set[str] = set()
    out = []
    for key, row in rows:
        if key not in seen:
            seen.add(key)
            out.append((key, row))
    return out
