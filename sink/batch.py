"""Cut consumed records into one idempotent batch per table. Pure: no I/O."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

from schemas import SINGLE_OBJECT_MARKER, codec
from schemas.errors import DecodeError
from sink import avro
from sink.errors import RowError
from sink.rows import TABLES, dedup_in_order, sink_dead_letter, to_row
from sink.writer import AvroRows, Batch, Consumed

__all__ = ["Consumed", "Cut", "cut"]


@dataclass
class Cut:
    batches: list[Batch] = field(default_factory=list)
    dead_reasons: dict[str, int] = field(default_factory=dict)


@cache
def _loadable() -> dict[bytes, str]:
    """Single-object prefix (marker and fingerprint) of every version, current or earlier, of
    each schema that has a table: the engine reads each with its own writer schema."""
    return {
        SINGLE_OBJECT_MARKER + v.fingerprint: v.name for v in codec().versions if v.name in TABLES
    }


def span_token(records: Sequence[Consumed], kind: str = "") -> str:
    """Names every (topic, partition, first-last offset) range: stable when re-read."""
    spans: dict[tuple[str, int], list[int]] = {}
    for rec in records:
        span = spans.setdefault((rec.topic, rec.partition), [rec.offset, rec.offset])
        span[0], span[1] = min(span[0], rec.offset), max(span[1], rec.offset)
    token = ";".join(f"{t}:{p}:{a}-{b}" for (t, p), (a, b) in sorted(spans.items()))
    return f"{kind}{token}"


def cut(records: Sequence[Consumed], now: datetime, in_engine: bool = False) -> Cut:
    """Group by table. With `in_engine`, records of any known version of a tabled schema stay
    Avro for the engine to decode (one batch per writer schema); the rest are decoded here."""
    out = Cut()
    loadable = _loadable() if in_engine else {}
    engine: dict[tuple[str, bytes], list[Consumed]] = defaultdict(list)
    python: dict[str, list[Consumed]] = defaultdict(list)
    rows: dict[str, list[tuple[str, list[Any]]]] = defaultdict(list)
    origins: dict[str, list[Consumed]] = defaultdict(list)
    dead = TABLES["DeadLetter"]
    decode = codec().decode
    for rec in records:
        prefix = rec.value[:10]
        name = loadable.get(prefix)
        if name is not None:
            engine[(name, prefix[2:])].append(rec)
            continue
        try:
            schema, record = decode(rec.value)
            table, key, row = to_row(schema, record)
        except (DecodeError, RowError) as exc:
            reason = exc.reason
            row = sink_dead_letter(
                rec.topic, rec.partition, rec.offset, reason, str(exc), rec.value, now
            )
            table, key = dead, row[0]
            out.dead_reasons[reason] = out.dead_reasons.get(reason, 0) + 1
        rows[table.name].append((key, row))
        origins[table.name].append(rec)
        python[table.name].append(rec)
    for (name, writer), group in engine.items():
        table = TABLES[name]
        bodies = avro.container(writer, [rec.value[10:] for rec in group])
        out.batches.append(
            Batch(
                table.name,
                table.id_column,
                table.columns,
                (),
                span_token(group, "avro:"),
                table.time_column,
                avro=AvroRows(name, bodies, group),
            )
        )
    by_name = {t.name: t for t in TABLES.values()}
    for name, table_rows in rows.items():
        table = by_name[name]
        rows_once, firsts = dedup_in_order(table_rows, origins[name])
        window: tuple[datetime, datetime] | None = None
        if table.time_column is not None:
            at = table.columns.index(table.time_column)
            times = [row[at] for _, row in rows_once]
            window = (min(times), max(times))
        token = span_token(python[name])
        out.batches.append(
            Batch(
                name, table.id_column, table.columns, rows_once, token, table.time_column, window,
                origins=firsts,
            )
        )  # fmt: skip
    return out
