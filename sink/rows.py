"""Typed records to table rows. Pure: the sink's per-row work, done once per record."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from schemas.catalog import DLQ, KINDS, Column, Kind, columns
from sink.errors import RowError

# DateTime64 holds 1900-01-01 .. 2299-12-31; anything outside is drift, not data.
TIME_MIN = datetime(1900, 1, 2, tzinfo=UTC)
TIME_MAX = datetime(2299, 12, 30, tzinfo=UTC)
_UINT32 = 2**32
T = TypeVar("T")


@dataclass(frozen=True)
class Table:
    name: str
    id_column: str
    columns: tuple[str, ...]
    row: Callable[[dict[str, Any]], list[Any]]
    # The partition column: the sink looks for existing ids only between a batch's min and max
    # of it (schemas/catalog.py says why); None where a copy's value can differ (dead letters).
    time_column: str | None


def _time(value: Any) -> datetime:
    if not isinstance(value, datetime) or not TIME_MIN <= value <= TIME_MAX:
        raise RowError("out_of_range", f"timestamp {value!r} is outside DateTime64's range")
    return value


# Lineage positions the tables keep unsigned.
COUNTERS = ("raw_partition", "raw_offset", "entry_index", "change_index")


def _counter(name: str, value: Any) -> Any:
    if value < 0:
        raise RowError("out_of_range", f"lineage {name}={value} is negative")
    if name == "raw_partition" and value >= _UINT32:
        raise RowError("out_of_range", "lineage raw_partition is too large")
    return value


def _getter(column: Column) -> Callable[[dict[str, Any]], Any]:
    """How one column's value is read from a decoded record, and checked."""
    field, sub = column.field, column.sub
    if column.many:
        return lambda r: [item[sub] for item in r[field]]
    if sub is not None and column.name in COUNTERS:
        return lambda r: _counter(column.name, r[field][sub])
    if sub is not None:
        return lambda r: r[field][sub]
    if column.time and column.optional:
        return lambda r: None if r[field] is None else _time(r[field])
    if column.time:
        return lambda r: _time(r[field])
    return lambda r: r[field]


def _table(kind: Kind) -> Table:
    cols = columns(kind.schema)
    getters = tuple(_getter(c) for c in cols)

    def row(record: dict[str, Any]) -> list[Any]:
        return [get(record) for get in getters]

    return Table(kind.table, kind.id_field, tuple(c.name for c in cols), row, kind.time_column)


TABLES: dict[str, Table] = {kind.schema: _table(kind) for kind in KINDS}


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
    record = {
        "dead_letter_id": f"{topic}/{partition}/{offset}/sink",
        "stage": "sink",
        "reason": reason,
        "error": error[:1000],
        "payload": payload,
        "source_topic": topic,
        "source_partition": partition,
        "source_offset": offset,
        "waba_id": None,
        "request_id": None,
        "failed_at": now,
        "app": None,
    }
    return TABLES[DLQ.schema].row(record)


def dedup_in_order(
    rows: Sequence[tuple[str, list[Any]]], origins: Sequence[T]
) -> tuple[list[tuple[str, list[Any]]], list[T]]:
    """Keep the first row of each id within a batch, with where it came from."""
    seen: set[str] = set()
    out, kept = [], []
    for (key, row), origin in zip(rows, origins, strict=True):
        if key not in seen:
            seen.add(key)
            out.append((key, row))
            kept.append(origin)
    return out, kept
