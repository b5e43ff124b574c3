"""Thin Faust agents wiring the pure functions to topics.

Two steps, because a redelivered item can come back re-batched under another WABA's key and so
on another raw partition: `normalize` types every item and places it, by its dedup id, on an
internal topic, one `ItemBatch` record per partition (streams/items.py); `dedup` reads that
co-partitioned topic against a RocksDB table (streams/claims.py) and writes first sightings to
the typed topics in producer batches (streams/produce.py). Offsets are committed only after the
outputs are acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable
from typing import Any

import faust
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from infra.core import kafka
from infra.core.settings import Settings
from schemas import codec
from schemas.errors import SchemaError
from streams.claims import ClaimsTable
from streams.dead import dead_letter
from streams.dedup import DAY_MS
from streams.encode import typed
from streams.items import pack, unpack
from streams.metrics import StreamMetrics
from streams.produce import BatchWriter
from streams.records import DLQ, Output, RawMeta

log = logging.getLogger("waflow.streams")
# Faust's RocksDB defaults are per partition: 3 x 64 MB memtables and a 2 GB block cache.
# Memtables of 4 MB; streams/claims.py puts every partition under one cache
# (WAFLOW_CLAIMS_CACHE_MB) and one 16 MB memtable budget.
ROCKSDB_MEMORY = {"write_buffer_size": 4 * 1024**2, "max_write_buffer_number": 2}


def create_app(settings: Settings, metrics: StreamMetrics | None = None) -> faust.App:
    stats = metrics or StreamMetrics()
    app_id = settings.topics.streams_group
    app = faust.App(
        app_id,
        broker=kafka.faust_broker(settings),
        broker_credentials=kafka.faust_credentials(settings),
        store="rocksdb://",
        datadir=str(settings.data_dir / "streams"),
        topic_replication_factor=settings.replication_factor,
        topic_partitions=settings.raw_partitions,
        # The admin listener: /metrics, /healthz, /readyz (never the public webhook listener).
        web_port=settings.admin_port_of("streams"),
        web_host=settings.admin_host,
        broker_commit_interval=1.0,
        **kafka.faust_producer(),
        producer_linger_ms=5,
        # Outputs go as whole batches (streams/produce.py); 16 KB ones held a dozen items.
        producer_max_batch_size=256 * 1024,
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
    payload_bytes = settings.dlq_payload_bytes
    # RocksDB (through rocksdict) with a TTL and a changelog that is compacted *and* expires
    # after the window: both the local store and the topic stay bounded.
    claims = ClaimsTable(
        app,
        name="claims",
        beacon=app.tables.beacon,
        key_type=str,
        value_type=str,
        partitions=settings.raw_partitions,
        options={
            "driver": "rocksdict",
            "ttl": window_ms // 1000,
            "cache_bytes": settings.claims_cache_mb * 1024**2,
            **ROCKSDB_MEMORY,
        },
        changelog_topic=app.topic(
            t.claims_changelog,
            partitions=settings.raw_partitions,
            compacting=True,
            deleting=True,
            retention=window_ms / 1000,
        ),
    )
    app.tables.add(claims)

    @app.agent(raw)
    async def normalize_raw(stream: Any) -> None:
        await or_die("normalize_raw", normalize_batches(stream))

    async def normalize_batches(stream: Any) -> None:
        partitions = 0
        async for batch in stream.take_events(1000, within=0.05):
            started = time.perf_counter()
            if not partitions:  # the items topic's real count, which placement must follow
                partitions = await partition_count(app, t.items)
            pending: list[Awaitable[Any]] = []
            ready: list[tuple[Output, bytes]] = []
            for event in batch:
                msg = event.message
                meta = RawMeta.of(
                    msg.topic,
                    msg.partition,
                    msg.offset,
                    int(msg.timestamp * 1000),
                    dict(msg.headers or ()),
                )
                for out, value in typed(msg.value or b"", meta, secrets, payload_bytes):
                    if out.kind == DLQ:
                        stats.dead_letters.labels(out.record["reason"]).inc()
                        pending.append(
                            await app.producer.send(t.dlq, out.key, value, None, None, None)
                        )
                        stats.records_out.labels(t.dlq).inc()
                    else:
                        ready.append((out, value))
            for partition, value in pack(ready, partitions):
                pending.append(await app.producer.send(t.items, None, value, partition, None, None))
            await asyncio.gather(*pending)
            stats.records_in.labels(t.raw).inc(len(batch))
            stats.latency.observe(time.perf_counter() - started)

    @app.agent(items)
    async def dedup_items(stream: Any) -> None:
        await or_die("dedup_items", dedup_events(stream))

    async def dedup_events(stream: Any) -> None:
        writer: BatchWriter | None = None
        async for batch in stream.take_events(100, within=0.05):
            if writer is None:
                counts = {name: await partition_count(app, name) for name in final.values()}
                writer = BatchWriter(kafka_producer(app), counts, exit_on_failure)
            now_ms = int(time.time() * 1000)
            for event in batch:
                await dedup_record(event.message, now_ms, writer)
            # Not awaited here: Faust flushes the producer before it commits these offsets, so
            # the outputs are durable before the inputs are marked done. A flush also returns
            # when a send *failed*, so exit_on_failure ends the worker before that commit.
            await writer.write()

    async def dedup_record(msg: Any, now_ms: int, writer: BatchWriter) -> None:
        try:
            items = unpack(msg.value or b"", dict(msg.headers or ()), msg.key)
        except SchemaError as exc:  # not written by normalize_raw: keep it, never crash on it
            meta = RawMeta(msg.topic, msg.partition, msg.offset, now_ms, "")
            dead = dead_letter(meta, "foreign_record", str(exc), msg.value or b"", "")
            stats.dead_letters.labels("foreign_record").inc()
            dlq = codec().encode("DeadLetter", dead.record)
            await app.producer.send(t.dlq, b"", dlq, None, None, None)
            return
        items_in.inc(len(items))
        ids = [item.dedup_id for item in items]
        emit = claims.claim(msg.partition, msg.offset, ids, now_ms, window_ms)
        for item, keep in zip(items, emit, strict=True):
            if keep:
                await writer.add(final[item.kind], item.key, item.value)
                final_out[item.kind].inc()
            else:
                stats.duplicates.inc()

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        # aiohttp refuses a charset inside content_type=, so the header is set whole.
        return web.bytes(
            generate_latest(stats.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.text("ok")

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        """Ready: partitions assigned, no rebalance under way, table recovery done."""
        why = not_ready(
            bool(app.consumer.assignment()),
            bool(app.rebalancing),
            bool(app.tables.recovery.in_recovery),  # type: ignore[attr-defined]
        )
        return web.text(why or "ready", status=503 if why else 200)

    app.conf.stream_wait_empty = False
    return app


def not_ready(assigned: bool, rebalancing: bool, recovering: bool) -> str:
    """Why the worker is not ready yet, or "" when it is."""
    if rebalancing:
        return "rebalancing"
    if recovering:
        return "recovering the claims table"
    if not assigned:
        return "no partitions assigned"
    return ""


async def or_die(agent: str, work: Awaitable[None]) -> None:
    """Run an agent's loop; any failure but Faust's own cancel (stop, rebalance) ends the worker."""
    try:
        await work
    except asyncio.CancelledError:
        raise
    except BaseException as exc:
        die(agent, exc)


def kafka_producer(app: faust.App) -> Any:
    """The aiokafka producer inside Faust's: it has the batch API and partitions_for that
    Faust's wrapper does not expose. Faust's flush and stop still cover what is sent on it."""
    producer: Any = app.producer
    return producer._ensure_producer()


async def partition_count(app: faust.App, topic: str) -> int:
    return len(await kafka_producer(app).partitions_for(topic))


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
