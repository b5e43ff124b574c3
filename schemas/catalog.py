"""The catalog of kinds: for each kind of typed record, its schema, topic, table, id and time
column, in one place. Every stage and command reads names from here (topic names are
`<WAFLOW_TOPIC_PREFIX>.<topic>`; see infra/core/settings.py `Topics`).

A table's columns are the schema's fields, flattened (schemas/io.waflow.*.avsc): a nested
record's fields become columns of their own (`lineage.raw_offset` -> `raw_offset`), an array of
records becomes a Nested column per field (`errors` -> `errors.error_type`, ...). The sink builds
its rows from these names, never by position.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from fastavro.schema import expand_schema

from schemas.codec import codec

RAW_TOPIC = "webhooks.raw"  # what the platform sent, as the ingress wrote it
ITEMS_TOPIC = "streams.items"  # internal: normalized items, placed by dedup id
SENDS_TOPIC = "flows.sends"  # the business's flow sends, JSON (sink/sends.py)
SENDS_TABLE = "flow_sends"
STATUSES_TABLE = "message_statuses"  # filled from webhook_changes in ClickHouse
SCHEMAS_TOPIC = "schemas"  # every writer schema, keyed by fingerprint (schemas.codec.publication)
STREAMS_GROUP = "streams"  # consumer groups: `<prefix>-streams`, `<prefix>-sink`
SINK_GROUP = "sink"


@dataclass(frozen=True)
class Kind:
    kind: str  # the short name the stages pass around
    schema: str  # the Avro record name (io.waflow.<schema>)
    topic: str  # the typed topic, after the prefix
    table: str  # the ClickHouse table
    id_field: str  # the dedup id: the Kafka key's source and the table's unique column
    # The table's partition column: a copy of a record carries the same value, so the sink
    # looks for existing ids only within a batch's range of it. None where a copy's value can
    # differ (dead letters).
    time_column: str | None
    excluded: tuple[str, ...] = ()  # flattened fields the table has no column for


RESPONSES = Kind(
    "responses", "FlowResponse", "flows.responses", "flow_responses", "message_id", "responded_at"
)
EVENTS = Kind(
    "events",
    "FlowEvent",
    "flows.events",
    "flow_events",
    "event_id",
    "event_time",
    excluded=("item_index",),  # a flows change is a whole change, never an item
)
OTHER = Kind(
    "other", "WebhookChange", "webhooks.other", "webhook_changes", "change_id", "received_at"
)
DLQ = Kind("dlq", "DeadLetter", "webhooks.dlq", "dead_letters", "dead_letter_id", None)
KINDS = (RESPONSES, EVENTS, OTHER, DLQ)
TYPED = (RESPONSES, EVENTS, OTHER)  # what normalize makes; DLQ holds what it could not
BY_KIND = {k.kind: k for k in KINDS}
BY_SCHEMA = {k.schema: k for k in KINDS}


@dataclass(frozen=True)
class Column:
    """One table column and where its value sits in a decoded record."""

    name: str
    field: str  # the record's field
    sub: str | None = None  # the nested record's field, or the array items' field
    many: bool = False  # an array of records: one value per item
    time: bool = False  # timestamp-millis: checked against DateTime64's range
    optional: bool = False


def _plain(t: Any) -> Any:
    return next(x for x in t if x != "null") if isinstance(t, list) else t


def _is_time(t: Any) -> bool:
    t = _plain(t)
    return isinstance(t, dict) and t.get("logicalType") == "timestamp-millis"


@cache
def columns(schema: str) -> tuple[Column, ...]:
    """The table columns of `schema`'s current version, in the schema's field order."""
    kind = BY_SCHEMA[schema]
    expanded: dict[str, Any] = expand_schema(codec().schemas[schema])  # type: ignore[assignment]
    out: list[Column] = []
    for f in expanded["fields"]:
        t = _plain(f["type"])
        optional = isinstance(f["type"], list)
        if isinstance(t, dict) and t["type"] == "record":
            out += [
                Column(s["name"], f["name"], s["name"], time=_is_time(s["type"]))
                for s in t["fields"]
            ]
        elif isinstance(t, dict) and t["type"] == "array" and isinstance(t["items"], dict):
            out += [
                Column(f"{f['name']}.{s['name']}", f["name"], s["name"], many=True)
                for s in t["items"]["fields"]
            ]
        else:
            out.append(Column(f["name"], f["name"], time=_is_time(f["type"]), optional=optional))
    return tuple(c for c in out if c.name not in kind.excluded)


# Each table's time column for retention (WAFLOW_CLICKHOUSE_TTL_DAYS) and its default in days
# (0: kept): the flows' own records (responses, events, sends) are kept, the message traffic
# around them 90 days, failures 30 (the raw topic keeps the bodies for replay meanwhile).
RETENTION: dict[str, tuple[str, int]] = {
    RESPONSES.table: ("responded_at", 0),
    EVENTS.table: ("event_time", 0),
    OTHER.table: ("received_at", 90),
    DLQ.table: ("failed_at", 30),
    STATUSES_TABLE: ("received_at", 90),
    SENDS_TABLE: ("sent_at", 0),
}
