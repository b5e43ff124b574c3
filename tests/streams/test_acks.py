"""The worker's consumer commits only what the agents confirm (streams/acks.py)."""

from __future__ import annotations

from typing import Any

from faust.types import TP, ConsumerMessage

from infra.core.settings import Settings
from streams import acks
from streams.agents import create_app


def record(offset: int) -> ConsumerMessage:
    return ConsumerMessage("t.raw", 0, offset, 0.0, 0, None, b"", b"", None, tp=TP("t.raw", 0))


async def test_fausts_own_acks_are_ignored_and_confirm_counts(tmp_path: Any) -> None:
    settings = Settings.from_env({"WAFLOW_DATA_DIR": str(tmp_path), "WAFLOW_APP_SECRETS": "a:s"})
    app = create_app(settings)
    consumer = app.consumer
    assert isinstance(consumer, acks.ConfirmingConsumer)
    held = record(7)
    # The paths Faust acks by: a stream's event ack (on close, on skip) ends in consumer.ack.
    assert held.ack(consumer) is False
    assert consumer.ack(held) is False
    assert not held.acked
    consumer.confirm([held])
    assert held.acked
