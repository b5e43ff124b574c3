"""The sink's health: unhealthy once a batch has waited for its commit longer than allowed."""

from __future__ import annotations

import time
from typing import cast

from sink.consumer import SinkLoop
from sink.load import RowWriter
from sink.metrics import SinkMetrics
from sink.writer import BatchWriter
from tests.conftest import make_settings


async def test_stalled_names_the_wait_only_past_the_limit() -> None:
    rows = RowWriter(cast(BatchWriter, None))
    loop = SinkLoop(make_settings(WAFLOW_SINK_STALL_SECONDS="30"), rows, SinkMetrics())
    assert loop.stalled() == ""  # nothing waiting
    loop.waiting_since = time.monotonic() - 5
    assert loop.stalled() == ""  # waiting, within the limit
    loop.waiting_since = time.monotonic() - 31
    assert "no commit for over 30 s" in loop.stalled()
