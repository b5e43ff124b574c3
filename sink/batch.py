"""Cut consumed records into one idempotent batch per table. Pure: no I/O."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from schemas import codec
from schemas.errors import DecodeError
from sink.errors import RowError
from sink.rows import TABLES, dedup_in_order, sink_dead_letter, to_row
from sink.writer import Batch


@dataclass(frozen=True)
class Consumed:
    topic: str
    partition: int
    offset: int
    value: bytes


@dataclass
class Cut:
    batches: list[Batch] = field(default_factory=list)
    dead_reasons: dict[str, int] = field(default_factory=dict)


def cut(records: Sequence[Consumed], now: datetime) -> Cut:
    """Group by table; the token names every (topic, partition, first-last offset) range."""
    rows: dict[str, list[tuple[str, list[Any]]]] = defaultdict(list)
    ranges: dict[str, dict[tuple[str, int], list[int]]] = defaultdict(dict)
    out = Cut()
    dead = TABLES["DeadLetter"]
    decode = codec().decode
    for rec in records:
        try:
            schema, record = decode(rec.value)
            table, key, row = to_row(schema, record)
        except (DecodeError, RowError) as exc:
            reason = exc.reason if isinstance(exc, RowError) else "undecodable"
            row = sink_dead_letter(
                rec.topic, rec.partition, rec.offset, reason, str(exc), rec.value, now
            )
            table, key = dead, row[0]
            out.dead_reasons[reason] = out.dead_reasons.get(reason, 0) + 1
        rows[table.name].append((key, row))
        span = ranges[table.name].setdefault((rec.topic, rec.partition), [rec.offset, rec.offset])
        span[0], span[1] = min(span[0], rec.offset), max(span[1], rec.offset)
    by_name = {t.name: t for t in TABLES.values()}
    for name, table_rows in rows.items():
        token = ";".join(f"{t}:{p}:{a}-{b}" for (t, p), (a, b) in sorted(ranges[name].items()))
        table = by_name[name]
        rows_once = dedup_in_order(table_rows)
        window: tuple[datetime, datetime] | None = None
        if table.time_column is not None:
            at = table.columns.index(table.time_column)
            times = [row[at] for _, row in rows_once]
            window = (min(times), max(times))
        out.batches.append(
            Batch(name, table.id_column, table.columns, rows_once, token, table.time_column, window)
        )
    return out
