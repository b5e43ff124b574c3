"""Fewer, fuller fetches for the worker's consumer.

Faust builds its aiokafka consumer with `fetch_min_bytes=1`: the broker answers a fetch as soon
as any partition has one record. Under steady load the worker then fetches a few records at a
time, and every fetch crosses from Faust's consumer thread to the worker's event loop and on
through Faust's per-fetch bookkeeping. Waiting for 64 KB or 100 ms, whichever comes first,
batches that work. At 600 deliveries/s on the 2-core benchmark machine (docs/benchmarks.md)
it halved POST-to-queryable p95 (medians of 3: 7.3 s to 3.7 s) and the raw backlog left at the
end of a step; a fetch waits at most 100 ms more when traffic is light.
"""

from __future__ import annotations

from typing import Any

import aiokafka
from faust.transport.drivers import aiokafka as driver

FETCH_MIN_BYTES = 64 * 1024
FETCH_MAX_WAIT_MS = 100


class FetchingThread(driver.AIOKafkaConsumerThread):
    """Faust's consumer thread with the fetch sizes above."""

    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # Faust passes neither setting through; aiokafka reads both when the consumer starts
        # its fetcher (tests/streams/test_fetch.py checks they arrive).
        consumer._fetch_min_bytes = FETCH_MIN_BYTES
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer
