"""`waflow reconcile`: what reached the raw topic, against what ClickHouse holds (rows plus dead
letters), per time window and WABA.

The expected side comes from the same pure normalizer the stream stage runs, so a gap means an
item was lost between the raw topic and its table, not a difference of interpretation. Items
the platform redelivered count once, in the window where they first arrived.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from infra.control.raw import RawReader
from infra.core.settings import Settings
from schemas.catalog import BY_KIND
from streams.normalize import normalize
from streams.records import RawMeta

TABLE_OF = {kind.kind: (kind.table, kind.id_field) for kind in BY_KIND.values()}
CHUNK = 4000  # ids per lookup: keeps each query under ClickHouse's default max_query_size


@dataclass
class Expected:
    """dedup id -> (kind, window start ms, WABA) for every item of the raw records read."""

    items: dict[str, tuple[str, int, str]] = field(default_factory=dict)
    raw_records: int = 0


@dataclass(frozen=True)
class Line:
    window_ms: int
    waba_id: str
    expected: int
    found: int
    missing: int


def expect(records: Iterable[tuple[RawMeta, bytes]], window_ms: int) -> Expected:
    out = Expected()
    for meta, body in records:
        out.raw_records += 1
        window = meta.received_ms - meta.received_ms % window_ms
        for item in normalize(body, meta):
            waba = item.record.get("waba_id") or ""
            out.items.setdefault(item.dedup_id, (item.kind, window, waba))
    return out


def compare(expected: Expected, present: set[str]) -> list[Line]:
    """One line per (window, WABA), in time order."""
    counts: dict[tuple[int, str], list[int]] = defaultdict(lambda: [0, 0])
    for dedup_id, (_, window, waba) in expected.items.items():
        cell = counts[(window, waba)]
        cell[0] += 1
        cell[1] += dedup_id in present
    return [
        Line(window, waba, n, found, n - found)
        for (window, waba), (n, found) in sorted(counts.items())
    ]


def lookup(expected: Expected, run_sql: Callable[[str], list[list[object]]], db: str) -> set[str]:
    """The expected ids that ClickHouse has, table by table, in chunks."""
    by_kind: dict[str, list[str]] = defaultdict(list)
    for dedup_id, (kind, _, _) in expected.items.items():
        by_kind[kind].append(dedup_id)
    present: set[str] = set()
    for kind, ids in by_kind.items():
        table, column = TABLE_OF[kind]
        for i in range(0, len(ids), CHUNK):
            quoted = ",".join(_quote(x) for x in ids[i : i + CHUNK])
            rows = run_sql(
                f"SELECT DISTINCT {column} FROM {db}.{table} WHERE {column} IN ({quoted})"
            )
            present.update(str(r[0]) for r in rows)
    return present


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


async def read_raw(settings: Settings, since_ms: int, until_ms: int) -> list[tuple[RawMeta, bytes]]:
    """Raw records received in [since, until), read up to the log end as it was at the start."""
    out: list[tuple[RawMeta, bytes]] = []
    async with RawReader(settings, since_ms, until_ms) as reader:
        async for _, records in reader.batches():
            out.extend(records)
    return out


def now_ms() -> int:
    return int(time.time() * 1000)
