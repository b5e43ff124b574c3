from __future__ import annotations

import gc

from infra.core.collector import YOUNG, settle


def test_settle_freezes_start_up_objects_and_raises_the_young_threshold() -> None:
    before = gc.get_threshold()
    try:
        settle()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold()[0] == YOUNG
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
