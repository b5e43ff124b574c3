"""The refusal log: the first few refusals of an interval in full, the rest as one count line."""

from __future__ import annotations

import logging

import pytest

from ingest.refusals import FULL_LINES, RefusalLog


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_each_interval_logs_the_first_few_in_full_then_one_summary(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="t")
    clock = Clock()
    refusals = RefusalLog(logging.getLogger("t"), 10.0, clock)
    for i in range(100):
        refusals.refused("webhook refused", "bad_signature" if i % 4 else "too_large", {"i": i})
    assert len(caplog.records) == FULL_LINES
    clock.now = 10.0  # the next refusal opens a new interval: the summary comes first
    refusals.refused("webhook refused", "too_large", {"i": 100})
    summary = caplog.records[FULL_LINES]
    assert summary.__dict__["counts"] == {"bad_signature": 72, "too_large": 23}
    assert summary.__dict__["total"] == 100 - FULL_LINES
    assert caplog.records[FULL_LINES + 1].__dict__["i"] == 100  # in full again


def test_a_quiet_interval_writes_no_summary(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="t")
    refusals = RefusalLog(logging.getLogger("t"), 10.0, Clock())
    refusals.refused("webhook refused", "bad_signature", {})
    refusals.flush()
    assert len(caplog.records) == 1
