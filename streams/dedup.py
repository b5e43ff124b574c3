"""Redelivery dedup: an id claimed within the window by another record is dropped.

Pure over a mapping-like store: a Faust table (RocksDB, changelog-backed) in the worker, a dict
in unit tests. The items topic is keyed by dedup id, so every copy of an id lands on one
partition; a claim remembers the offset of the copy that won. Why the offset: a worker killed
hard has already written the claim to RocksDB while the output may still sit unsent in the
producer. After the restart Faust replays from the last commit (taken only after a producer
flush), so the same offset comes back: the claim is its own and the output is sent again, a
duplicate under the same key at worst, never a loss. Any other offset is a real redelivery.

Capacity: a key is the id (~60 bytes for a wamid) plus a ~25-byte value, so 10 million items a
day over the default 7-day window is ~70 M keys, roughly 6-8 GB in RocksDB on disk and only
RocksDB's block cache in memory; RocksDB's TTL and the changelog's retention expire old keys.
"""

from __future__ import annotations

from collections.abc import MutableMapping

DAY_MS = 24 * 3600 * 1000


def claim(
    store: MutableMapping[str, str], dedup_id: str, offset: int, now_ms: int, window_ms: int
) -> bool:
    """True (and remember it) when the record at `offset` is the one to emit for `dedup_id`."""
    held = store.get(dedup_id)
    if held is not None:
        claimed_ms, _, claimed_offset = held.partition(":")
        if now_ms - int(claimed_ms) < window_ms:
            return int(claimed_offset) == offset
    store[dedup_id] = f"{now_ms}:{offset}"
    return True
