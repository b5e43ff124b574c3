"""Thin Faust agents wiring the pure functions to topics.

Two steps, because a redelivered item can come back re-batched under another WABA's key and so
on another raw partition: `normalize` types every item and re-keys it by its dedup id onto an
internal topic; `dedup` reads that co-partitioned topic against a RocksDB table and routes first
sightings to the typed topics. Offsets are acked only after the outputs are acknowledged.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import time
import weakref
from collections.abc import Awaitable
from typing import Any

import faust
import faust.streams as faust_streams
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from infra.settings import Settings
from schemas import codec
from streams.dead import dead_letter
from streams.dedup import DAY_MS, claim
from streams.encode import typed
from streams.metrics import StreamMetrics
from streams.records import DLQ, RawMeta, kind_of

log = logging.getLogger("waflow.streams")
# Faust's RocksDB defaults are per partition: 3 x 64 MB memtables and a 2 GB block cache, so a
# worker's RSS kept growing with its partitions (+23 % in a 10-minute run). Claims are small and
# looked up mostly as "absent" (bloom filters), so a small cache costs little: at most about
# 32 MB per partition.
ROCKSDB_MEMORY = {
    "write_buffer_size": 8 * 1024**2,
    "max_write_buffer_number": 2,
    "block_cache_size": 16 * 1024**2,
}


def create_app(settings: Settings, metrics: StreamMetrics | None = None) -> faust.App:
    stats = metrics or StreamMetrics()
    app_id = f"{settings.topics.prefix}-streams"
    app = faust.App(
        app_id,
        broker=f"kafka://{settings.kafka_bootstrap.split(',')[0]}",
        store="rocksdb://",
        datadir=str(settings.data_dir / "streams"),
        topic_replication_factor=settings.replication_factor,
        topic_partitions=settings.raw_partitions,
        web_port=settings.streams_port,
        web_host=settings.metrics_host,
        broker_commit_interval=1.0,
        producer_acks=-1,
        producer_linger_ms=5,
        producer_compression_type="lz4",
        consumer_auto_offset_reset="earliest",
        processing_guarantee=settings.streams_guarantee,
        stream_buffer_maxsize=16384,
        broker_max_poll_records=4000,
    )
    t = settings.topics
    final = {"responses": t.responses, "events": t.events, "other": t.other}
    items_in = stats.records_in.labels(t.items)
    final_out = {kind: stats.records_out.labels(name) for kind, name in final.items()}
    raw = app.topic(
        t.raw, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )
    items = app.topic(
        t.items,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.raw_partitions,
    )
    window_ms = settings.dedup_window_days * DAY_MS
    secrets = settings.app_secrets if settings.streams_verify else ()
    # RocksDB (through rocksdict) with a TTL and a changelog that is compacted *and* expires
    # after the window: both the local store and the topic stay bounded.
    claims = app.Table(
        "claims",
        key_type=str,
        value_type=str,
        partitions=settings.raw_partitions,
        options={"driver": "rocksdict", "ttl": window_ms // 1000, **ROCKSDB_MEMORY},
        changelog_topic=app.topic(
            t.claims_changelog,
            partitions=settings.raw_partitions,
            compacting=True,
            deleting=True,
            retention=window_ms / 1000,
        ),
    )

    @app.agent(raw)
    async def normalize_raw(stream: Any) -> None:
        await or_die("normalize_raw", normalize_batches(stream))

    async def normalize_batches(stream: Any) -> None:
        async for batch in stream.take_events(1000, within=0.05):
            started = time.perf_counter()
            pending: list[Awaitable[Any]] = []
            for event in batch:
                msg = event.message
                meta = RawMeta.of(
                    msg.topic,
                    msg.partition,
                    msg.offset,
                    int(msg.timestamp * 1000),
                    dict(msg.headers or ()),
                )
                for out, value in typed(msg.value or b"", meta, secrets):
                    if out.kind == DLQ:
                        stats.dead_letters.labels(out.record["reason"]).inc()
                        pending.append(
                            await app.producer.send(t.dlq, out.key, value, None, None, None)
                        )
                        stats.records_out.labels(t.dlq).inc()
                    else:
                        pending.append(
                            await app.producer.send(
                                t.items,
                                out.dedup_id.encode(),
                                value,
                                None,
                                None,
                                [("waflow-kind", out.kind.encode()), ("waflow-key", out.key)],
                            )
                        )
            await asyncio.gather(*pending)
            stats.records_in.labels(t.raw).inc(len(batch))
            stats.latency.observe(time.perf_counter() - started)

    @app.agent(items)
    async def dedup_items(stream: Any) -> None:
        await or_die("dedup_items", dedup_events(stream))

    async def dedup_events(stream: Any) -> None:
        send = app.producer.send
        async for batch in stream.take_events(1000, within=0.05):
            items_in.inc(len(batch))
            now_ms = int(time.time() * 1000)
            for event in batch:
                # The claims table writes to the partition of the "current event"; in a batch
                # that must be this event, not the batch's last one.
                token = set_current_event(event)
                try:
                    await dedup_one(event.message, now_ms, send)
                finally:
                    reset_current_event(token)

    async def dedup_one(msg: Any, now_ms: int, send: Any) -> None:
        dedup_id = (msg.key or b"").decode(errors="replace")
        if not claim(claims, dedup_id, msg.offset, now_ms, window_ms):
            stats.duplicates.inc()
            return
        headers = dict(msg.headers or ())
        kind = kind_of(headers)
        if kind is None:  # not written by normalize_raw: keep it, never crash on it
            meta = RawMeta(msg.topic, msg.partition, msg.offset, now_ms, "")
            dead = dead_letter(meta, "foreign_record", "no waflow-kind", msg.value or b"", "")
            stats.dead_letters.labels("foreign_record").inc()
            await send(t.dlq, b"", codec().encode("DeadLetter", dead.record), None, None, None)
            return
        # Not awaited per record: Faust flushes the producer before it commits this offset,
        # so the output is durable before the input is marked done. A flush also returns when
        # a send *failed*, so a failure ends the worker before that commit.
        sent = await send(final[kind], headers.get("waflow-key"), msg.value, None, None, None)
        asyncio.ensure_future(sent).add_done_callback(exit_on_failure)
        final_out[kind].inc()

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        # aiohttp refuses a charset inside content_type=, so the header is set whole.
        return web.bytes(
            generate_latest(stats.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    app.conf.stream_wait_empty = False
    return app


async def or_die(agent: str, work: Awaitable[None]) -> None:
    """Run an agent's loop; any failure but Faust's own cancel (stop, rebalance) ends the worker."""
    try:
        await work
    except asyncio.CancelledError:
        raise
    except BaseException as exc:
        die(agent, exc)


def exit_on_failure(sent: asyncio.Future[Any]) -> None:
    if not sent.cancelled() and sent.exception() is not None:
        die("dedup_items", sent.exception() or RuntimeError("send failed"))


def die(agent: str, exc: BaseException) -> None:
    """End the worker at once, without Faust's shutdown: a crashed agent left alone would have
    its in-flight events acked and committed, losing them (the chaos suite saw 1,035 items go
    this way). Exiting skips that commit; the supervisor restarts the worker, which resumes
    from the last commit, and the claims table re-emits what was in flight."""
    log.critical("agent failed, exiting for a restart", extra={"agent": agent}, exc_info=exc)
    logging.shutdown()
    os._exit(70)


def set_current_event(event: Any) -> contextvars.Token[Any]:
    # Faust keeps the event being processed in a context variable that tables read to pick
    # the store and changelog partition; take_events leaves it at the batch's last event.
    return faust_streams._current_event.set(weakref.ref(event))


def reset_current_event(token: contextvars.Token[Any]) -> None:
    faust_streams._current_event.reset(token)
