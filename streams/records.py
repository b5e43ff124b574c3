"""The values the stream stage passes around: raw metadata in, typed outputs out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

RESPONSES, EVENTS, OTHER, DLQ = "responses", "events", "other", "dlq"
CHANGE = -1  # item_index of a record that stands for a whole change
SCHEMA_OF = {
    RESPONSES: "FlowResponse",
    EVENTS: "FlowEvent",
    OTHER: "WebhookChange",
    DLQ: "DeadLetter",
}


@dataclass(frozen=True)
class RawMeta:
    """Where a raw record sits and what the ingress recorded with it."""

    topic: str
    partition: int
    offset: int
    received_ms: int
    request_id: str
    signature: str = ""  # the ingress's X-Hub-Signature-256, for the optional re-verify

    @classmethod
    def of(
        cls, topic: str, partition: int, offset: int, timestamp_ms: int, headers: dict[str, bytes]
    ) -> RawMeta:
        """From a raw record's position and the headers the ingress wrote. A missing or
        malformed receive time falls back to the Kafka timestamp, never to a crash."""
        try:
            received = int(headers.get("waflow-received-ms") or timestamp_ms)
        except ValueError:
            received = timestamp_ms
        return cls(
            topic,
            partition,
            offset,
            received,
            headers.get("waflow-request-id", b"").decode(errors="replace"),
            headers.get("x-hub-signature-256", b"").decode(errors="replace"),
        )


@dataclass(frozen=True)
class Output:
    """One typed record: which topic kind, its Kafka key, its dedup id and the record itself."""

    kind: str
    key: bytes
    dedup_id: str
    record: dict[str, Any]


def kind_of(headers: dict[str, bytes]) -> str | None:
    """Which typed topic an items-topic record goes to; None for a record waflow did not write."""
    kind = headers.get("waflow-kind", b"").decode(errors="replace")
    return kind if kind in (RESPONSES, EVENTS, OTHER) else None
