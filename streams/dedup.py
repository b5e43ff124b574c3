"""Redelivery dedup: an id seen within the window is dropped. Pure over a mapping-like store.

The store is a Faust table (RocksDB, changelog-backed) in the worker and a dict in unit tests.
Capacity: one key is the id (~60 bytes for a wamid) plus an 8-byte timestamp, so 10 million
items a day over the default 7-day window is ~70 M keys, roughly 5-7 GB in RocksDB on disk and
only RocksDB's block cache in memory.
"""

from __future__ import annotations

from collections.abc import MutableMapping

DAY_MS = 24 * 3600 * 1000


def first_sighting(
    store: MutableMapping[str, int], dedup_id: str, now_ms: int, window_ms: int
) -> bool:
    """True (and remember it) when `dedup_id` was not seen in the last `window_ms`."""
    seen = store.get(dedup_id)
    if seen is not None and now_ms - seen < window_ms:
        return False
    store[dedup_id] = now_ms
    return True
