"""The worker's consumer fetches in fuller responses (streams/fetch.py)."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from aiokafka import AIOKafkaConsumer

from infra.core.settings import Settings
from streams.agents import create_app
from streams.fetch import FETCH_MAX_WAIT_MS, FETCH_MIN_BYTES, FetchingThread


def test_the_worker_consumer_waits_for_fuller_fetches(tmp_path: Any) -> None:
    env = {"WAFLOW_DATA_DIR": str(tmp_path), "WAFLOW_APP_SECRETS": "a:s"}
    app = create_app(Settings.from_env(env))

    async def build() -> AIOKafkaConsumer:
        thread = app.consumer._new_consumer_thread()
        assert isinstance(thread, FetchingThread)
        return thread._create_worker_consumer(app.transport)

    consumer = asyncio.run(build())
    assert consumer._fetch_min_bytes == FETCH_MIN_BYTES
    assert consumer._fetch_max_wait_ms == FETCH_MAX_WAIT_MS


def test_aiokafka_still_starts_its_fetcher_from_those_attributes() -> None:
    # FetchingThread sets private attributes; an aiokafka that renamed them would silently
    # fetch with its defaults again.
    source = inspect.getsource(AIOKafkaConsumer.start)
    assert "fetch_min_bytes=self._fetch_min_bytes" in source
    assert "fetch_max_wait_ms=self._fetch_max_wait_ms" in source
