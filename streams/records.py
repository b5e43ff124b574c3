"""The values the stream stage passes around: raw metadata in, typed outputs out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from schemas import catalog
from schemas.envelope import RawMeta

__all__ = ["CHANGE", "DLQ", "EVENTS", "OTHER", "RESPONSES", "SCHEMA_OF", "Output", "RawMeta"]

# The kinds of typed record (schemas/catalog.py has each one's schema, topic and table).
RESPONSES, EVENTS, OTHER, DLQ = (k.kind for k in catalog.KINDS)
CHANGE = -1  # item_index of a record that stands for a whole change
SCHEMA_OF = {k.kind: k.schema for k in catalog.KINDS}


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
