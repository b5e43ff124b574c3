"""The ingress against the real broker: bytes in == bytes on the raw topic, or a 503."""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from infra.core import broker, kafka
from ingest.metrics import IngestMetrics
from ingest.producer import KafkaRawWriter
from ingest.routes import admin_app, create_app
from ingest.verify import sign
from tests.conftest import ROOT, free_base_port, make_settings


async def read_all(bootstrap: str, topic: str, expected: int) -> list:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=uuid.uuid4().hex, auto_offset_reset="earliest"
    )
    await consumer.start()
    out: list = []
    try:
        deadline = time.monotonic() + 30
        while len(out) < expected and time.monotonic() < deadline:
            for msgs in (await consumer.getmany(timeout_ms=1000)).values():
                out.extend(msgs)
    finally:
        await consumer.stop()
    return out


async def create_topic(bootstrap: str, name: str, partitions: int = 3) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()


async def test_every_payload_readable_byte_for_byte(
    kafka_bootstrap: str, payloads: dict[str, bytes]
) -> None:
    topic = f"raw-{uuid.uuid4().hex[:8]}"
    await create_topic(kafka_bootstrap, topic)
    settings = make_settings(WAFLOW_KAFKA_BOOTSTRAP=kafka_bootstrap)
    writer = KafkaRawWriter(kafka.producer(settings), topic, 10)
    await writer.start(attempts=30)
    app = create_app(settings, writer)
    admin = httpx.ASGITransport(app=admin_app(IngestMetrics(), writer.ready))
    unicode_body = '{"entry":[{"id":"9","changes":[]}],"n":"Zoë \\u00e9 李"}'.encode()
    bodies = [*payloads.values(), unicode_body]
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as c:
            for body in bodies:
                r = await c.post(
                    "/webhook",
                    content=body,
                    headers={
                        "x-hub-signature-256": sign(body, b"shop-secret"),
                        "content-type": "application/json",
                    },
                )
                assert r.status_code == 200
            bad = await c.post(
                "/webhook", content=b"{}", headers={"x-hub-signature-256": sign(b"{}", b"nope")}
            )
            assert bad.status_code == 401
            async with httpx.AsyncClient(transport=admin, base_url="http://a") as probe:
                assert (await probe.get("/readyz")).status_code == 200
    finally:
        await writer.stop()
    records = await read_all(kafka_bootstrap, topic, len(bodies) + 1)
    assert sorted(r.value for r in records) == sorted(bodies)  # the 401 wrote nothing
    for rec in records:
        headers = dict(rec.headers)
        assert headers["x-hub-signature-256"] == sign(rec.value, b"shop-secret").encode()
        assert headers["waflow-app"] == b"shop"
        assert headers["content-type"] == b"application/json"
        assert int(headers["waflow-received-ms"]) > 1_700_000_000_000
        assert len(headers["waflow-request-id"]) == 32


async def test_broker_down_gives_503_then_200_after_restart() -> None:
    data = Path(tempfile.mkdtemp(prefix="waflow-kafka-restart-"))
    port = free_base_port()
    bootstrap = broker.start(data, base_port=port, jars_dir=ROOT / ".waflow")
    settings = make_settings(WAFLOW_KAFKA_BOOTSTRAP=bootstrap, WAFLOW_PRODUCE_TIMEOUT_S="2")
    from infra.core.topics import ensure_topics

    await ensure_topics(settings)
    writer = KafkaRawWriter(
        kafka.producer(settings), settings.topics.raw, settings.produce_timeout_s
    )
    await writer.start(attempts=30)
    app = create_app(settings, writer)
    admin = httpx.ASGITransport(app=admin_app(IngestMetrics(), writer.ready))
    body = b'{"entry":[{"id":"1","changes":[]}]}'
    headers = {"x-hub-signature-256": sign(body, b"shop-secret")}
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as c:
            assert (await c.post("/webhook", content=body, headers=headers)).status_code == 200
            broker.stop(data, base_port=port)
            started = time.monotonic()
            r = await c.post("/webhook", content=body, headers=headers)
            assert r.status_code == 503
            assert time.monotonic() - started < settings.produce_timeout_s + 3
            async with httpx.AsyncClient(transport=admin, base_url="http://a") as probe:
                assert (await probe.get("/readyz")).status_code == 503
            broker.start(data, base_port=port, jars_dir=ROOT / ".waflow")
            deadline = time.monotonic() + 60
            status = 0
            while status != 200 and time.monotonic() < deadline:
                status = (await c.post("/webhook", content=body, headers=headers)).status_code
            assert status == 200
    finally:
        await writer.stop()
        broker.stop(data, base_port=port)
        shutil.rmtree(data, ignore_errors=True)
