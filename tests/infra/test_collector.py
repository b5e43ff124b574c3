"""The stages' garbage-collector setting, observed: the young generation is collected far less
often once the start-up objects are frozen and the threshold raised."""

from __future__ import annotations

import gc

from infra.core.collector import settle


def young_collections(allocations: int) -> int:
    seen = 0

    def count(phase: str, info: dict[str, int]) -> None:
        nonlocal seen
        seen += phase == "start" and info["generation"] == 0

    gc.callbacks.append(count)
    try:
        kept = [[] for _ in range(allocations)]  # container objects: what gen0 counts
        del kept
    finally:
        gc.callbacks.remove(count)
    return seen


def test_settle_makes_young_collections_rarer_and_freezes_what_start_up_built() -> None:
    before_threshold = gc.get_threshold()
    try:
        gc.collect()
        default = young_collections(200_000)
        settle()
        assert gc.get_freeze_count() > 0  # start-up objects are no longer scanned
        settled = young_collections(200_000)
        assert settled * 10 < default, (settled, default)
    finally:
        gc.unfreeze()
        gc.set_threshold(*before_threshold)
