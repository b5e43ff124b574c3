"""Redelivery dedup: an id claimed within the window by another record is dropped.

Pure over bytes; `streams/claims.py` keeps the claims in RocksDB behind a changelog. The items
topic places every copy of an id on one partition, and a claim remembers the items-topic offset
of the record that won. Why the offset: a worker killed hard has already written the claim to
RocksDB while the output may still sit unsent in the producer. After the restart Faust replays
from the last commit (taken only after a producer flush), so the same offset comes back: the
claim is its own and the output is sent again, a duplicate under the same key at worst, never
a loss. Any other offset is a real redelivery.

A record carries a batch of items, so one changelog record carries that batch's claims: the
changelog costs one Kafka record per batch, not one per item. Recovery expands it again.

Capacity: a key is the id (~60 bytes for a wamid) plus a ~25-byte value, so 10 million items a
day over the default 7-day window is ~70 M keys, roughly 6-8 GB in RocksDB on disk and only
RocksDB's block cache in memory; RocksDB's TTL and the changelog's retention expire old keys.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import orjson

DAY_MS = 24 * 3600 * 1000
BATCH_PREFIX = b"@claims/"  # changelog key of a batch of claims; ids never start with "@"


def key_of(dedup_id: str) -> bytes:
    """The stored key: the id JSON-encoded, as Faust's table wrote it before batching."""
    return orjson.dumps(dedup_id)


def _claim(offset: int, now_ms: int) -> str:
    return f"{now_ms}:{offset}"


def claim_value(offset: int, now_ms: int) -> bytes:
    return orjson.dumps(_claim(offset, now_ms))


def wins(held: bytes | None, offset: int, now_ms: int, window_ms: int) -> bool:
    """True when the record at `offset` is the one to emit, given the claim held for its id."""
    if held is None:
        return True
    try:
        claimed_ms, _, claimed_offset = orjson.loads(held).partition(":")
        if now_ms - int(claimed_ms) >= window_ms:
            return True
        return int(claimed_offset) == offset
    except (ValueError, AttributeError):  # an unreadable claim is no claim
        return True


def claim_all(
    ids: Sequence[str], held: Sequence[bytes | None], offset: int, now_ms: int, window_ms: int
) -> list[bool]:
    """Which of one record's items to emit; an id the record carries twice is emitted once."""
    seen: set[str] = set()
    emit = []
    for dedup_id, claim in zip(ids, held, strict=True):
        emit.append(dedup_id not in seen and wins(claim, offset, now_ms, window_ms))
        seen.add(dedup_id)
    return emit


def batch_record(
    partition: int, offset: int, now_ms: int, ids: Sequence[str]
) -> tuple[bytes, bytes]:
    """The changelog record (key, value) for the claims one items record won. The key is
    unique per items record, so compaction keeps every batch until retention expires it."""
    key = BATCH_PREFIX + f"{partition}/{offset}".encode()
    return key, orjson.dumps({"claim": _claim(offset, now_ms), "ids": list(ids)})


def entries(key: bytes | None, value: bytes | None) -> Iterator[tuple[bytes, bytes | None]]:
    """The store writes one changelog record stands for: a batch expands to one per id; a
    per-key record (the format before batching) is itself."""
    if key is None:
        return
    if not key.startswith(BATCH_PREFIX):
        yield key, value
        return
    if value is None:
        return
    batch = orjson.loads(value)
    claim = orjson.dumps(batch["claim"])
    for dedup_id in batch["ids"]:
        yield key_of(dedup_id), claim
