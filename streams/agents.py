"""The Faust wiring: the app, its topics and claims table, and two agents that feed the steps of
streams/steps.py (NormalizeStep, DedupStep), which know nothing of Faust.

Two steps, because a redelivered item can come back re-batched under another WABA's key and so
on another raw partition: `normalize` types every item and places it, by its dedup id, on an
internal topic, one `ItemBatch` record per partition (streams/items.py); `dedup` reads that
co-partitioned topic against a RocksDB table (streams/claims.py) and writes first sightings to
the typed topics in producer batches (streams/produce.py). An input is confirmed, and its
offset so committable, only once the broker has acknowledged all it produced
(streams/acks.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import faust
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from infra.core import confluent, kafka
from infra.core.settings import Settings
from schemas import catalog
from streams import acks
from streams.claims import ClaimsTable
from streams.dedup import DAY_MS
from streams.metrics import StreamMetrics
from streams.policy import policy_of
from streams.produce import BatchWriter
from streams.steps import DedupStep, Message, NormalizeStep

log = logging.getLogger("waflow.streams")
# Faust's RocksDB defaults are per partition: 3 x 64 MB memtables and a 2 GB block cache.
# Memtables of 4 MB; streams/claims.py puts every partition under one cache
# (WAFLOW_CLAIMS_CACHE_MB), memtables charged to it.
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
        # Faust's 60 s default kept a killed worker's partitions idle for a minute after its
        # restart; heartbeats run on Faust's consumer thread, so agents' work never delays them.
        broker_session_timeout=settings.streams_session_timeout_s,
        broker_heartbeat_interval=3.0,
        consumer_group_instance_id=settings.streams_instance_id or None,
        **kafka.faust_producer(),
        producer_linger_ms=5,
        # Outputs go as whole batches (streams/produce.py); 16 KB ones held a dozen items.
        producer_max_batch_size=256 * 1024,
        consumer_auto_offset_reset="earliest",
        processing_guarantee=settings.streams_guarantee,
        stream_buffer_maxsize=16384,
        broker_max_poll_records=4000,
    )
    # Offsets commit only once their outputs are acknowledged; a failed fetch loop ends the
    # worker, as a failed agent does.
    acks.install(app, on_fetch_failure=lambda exc: die("fetcher", exc))
    t = settings.topics
    final = {k.kind: t.typed(k.kind) for k in catalog.TYPED}
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

    sender = FaustSender(app)
    framing = confluent.wire(settings)  # None: single-object Avro
    encode = framing.encode if framing else None
    normalize = NormalizeStep(
        sender,
        t.dlq,
        t.items,
        lambda: partition_count(app, t.items),
        stats,
        secrets,
        settings.dlq_payload_bytes,
        schemas_topic=t.schemas,
        encode=encode,
        policy=policy_of(settings),
    )

    @app.agent(raw)
    async def normalize_raw(stream: Any) -> None:
        async def loop() -> None:
            # Every writer schema is on the schemas topic before any record that names one.
            await normalize.publish_schemas()
            confirmer = acks.Confirmer(app, failed("normalize_raw"))
            async for batch in stream.noack_take(1000, within=0.05):
                # The sends are not awaited here: the next batch is normalized while the
                # broker acknowledges this one, which is confirmed once all its sends are.
                await confirmer.add(batch, await normalize.run([message(e) for e in batch]))

        await or_die("normalize_raw", loop())

    @app.agent(items)
    async def dedup_items(stream: Any) -> None:
        async def loop() -> None:
            dedup: DedupStep | None = None
            confirmer = acks.Confirmer(app, failed("dedup_items"))
            async for batch in stream.noack_take(100, within=0.05):
                if dedup is None:  # the typed topics' real partition counts, once
                    counts = {name: await partition_count(app, name) for name in final.values()}
                    outputs = BatchWriter(kafka_producer(app), counts, failed("dedup_items"))
                    dedup = DedupStep(
                        claims, outputs, sender, final, t.dlq, window_ms, stats, encode
                    )
                # As in normalize_raw: confirmed once its sends are; a failed send confirms
                # nothing and ends the worker.
                sent = await dedup.run([message(e) for e in batch], int(time.time() * 1000))
                await confirmer.add(batch, sent)

        await or_die("dedup_items", loop())

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


def message(event: Any) -> Message:
    """What the steps see of a Faust event."""
    msg = event.message
    return Message(
        msg.topic,
        msg.partition,
        msg.offset,
        int(msg.timestamp * 1000),
        msg.key,
        msg.value or b"",
        dict(msg.headers or ()),
    )


class FaustSender:
    """The steps' Sender over Faust's producer (whose flush Faust runs before each commit)."""

    def __init__(self, app: faust.App) -> None:
        self.app = app

    async def send(
        self, topic: str, key: bytes | None, value: bytes, partition: int | None
    ) -> Awaitable[Any]:
        sent: Awaitable[Any] = await self.app.producer.send(
            topic, key, value, partition, None, None
        )
        return sent


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


def failed(agent: str) -> Callable[[asyncio.Future[Any]], None]:
    """A done-callback for a send or a confirmation: a failure ends the worker (`die`)."""

    def check(done: asyncio.Future[Any]) -> None:
        if not done.cancelled() and done.exception() is not None:
            die(agent, done.exception() or RuntimeError("send failed"))

    return check


def die(agent: str, exc: BaseException) -> None:
    """End the worker at once, without Faust's shutdown: nothing unconfirmed is committed
    (streams/acks.py), but a worker whose agent died would hold its partitions and do nothing.
    The supervisor restarts it, it resumes from the last commit, and the claims table re-emits
    what was in flight."""
    log.critical("agent failed, exiting for a restart", extra={"agent": agent}, exc_info=exc)
    logging.shutdown()
    os._exit(70)
