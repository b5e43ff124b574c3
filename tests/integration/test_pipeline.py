"""The whole path on real parts: signed POST -> raw topic -> Faust worker -> typed Avro topics ->
sink -> embedded ClickHouse, with redeliveries (one re-batched) yielding one row per item."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from infra.loadgen import Generator
from infra.settings import Settings
from infra.topics import ensure_topics
from ingest.producer import KafkaRawWriter
from ingest.routes import create_app
from ingest.verify import sign
from schemas import codec
from tests.conftest import SECRETS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    data = tmp_path_factory.mktemp("stack")
    env = {
        "WAFLOW_APP_SECRETS": SECRETS,
        "WAFLOW_VERIFY_TOKEN": "v",
        "WAFLOW_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "WAFLOW_DATA_DIR": str(data),
        "WAFLOW_STREAMS_PORT": str(free_port()),
        "WAFLOW_SINK_PORT": str(free_port()),
        "WAFLOW_SINK_BATCH_SECONDS": "0.5",
        "WAFLOW_LOG_LEVEL": "WARNING",
    }
    settings = Settings.from_env(env)
    import asyncio

    asyncio.run(ensure_topics(settings))
    procs = []
    for stage in ("streams", "sink"):
        log = open(data / f"{stage}.log", "wb")  # noqa: SIM115 - closed with the process
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "infra.cli", stage],
                env={**os.environ, **env},
                stdout=log,
                stderr=log,
            )
        )
    try:
        yield settings
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        for stage in ("streams", "sink"):
            text = (data / f"{stage}.log").read_text(errors="replace")
            if "Traceback" in text:
                print(f"--- {stage} log ---\n{text[-4000:]}")


def query(settings: Settings, sql: str) -> list[list[object]]:
    r = httpx.post(f"http://127.0.0.1:{settings.sink_port}/query", content=sql, timeout=30)
    r.raise_for_status()
    return list(r.json()["rows"])


def wait_for(settings: Settings, sql: str, expected: object, timeout_s: float = 120) -> object:
    deadline = time.monotonic() + timeout_s
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = query(settings, sql)
            if last == expected:
                return last
        except httpx.HTTPError:
            pass
        time.sleep(1)
    return last


async def test_signed_posts_become_rows_once(stack: Settings, payloads: dict[str, bytes]) -> None:
    writer = KafkaRawWriter(stack.kafka_bootstrap, stack.topics.raw, 10)
    await writer.start(attempts=30)
    app = create_app(stack, writer, writer.ready)
    gen = Generator(seed=7, wabas=3, run=uuid.uuid4().hex[:6])
    batch = gen.delivery(int(time.time()), max_items=1)
    doc = orjson.loads(batch.body)
    extra = gen.delivery(int(time.time()), max_items=1)
    # Re-batched redelivery: the same item behind another WABA's entry, so another partition key.
    rebatched = orjson.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": orjson.loads(extra.body)["entry"] + doc["entry"],
        }
    )
    bodies = [*payloads.values(), batch.body, batch.body, batch.body, rebatched, b"{not json"]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        for body in bodies:
            r = await c.post(
                "/webhook",
                content=body,
                headers={"x-hub-signature-256": sign(body, b"shop-secret")},
            )
            assert r.status_code == 200
    await writer.stop()

    responses = 1 + len(batch.responses) + len(extra.responses)
    events = 6 + batch.events + extra.events
    others = batch.others + extra.others
    found = wait_for(
        stack,
        "SELECT (SELECT count() FROM waflow.flow_responses), "
        "(SELECT count() FROM waflow.flow_events), "
        "(SELECT count() FROM waflow.webhook_changes), "
        "(SELECT count() FROM waflow.dead_letters)",
        [[responses, events, others, 1]],
    )
    assert found == [[responses, events, others, 1]]
    row = query(
        stack,
        "SELECT waba_id, wa_id, contact_name, flow_token, response_json, "
        "toUnixTimestamp(responded_at) FROM waflow.flow_responses "
        "WHERE waba_id = '102290129340398'",
    )
    assert row == [
        [
            "102290129340398",
            "16505551234",
            "Sheena Nelson",
            "AQAAAAACS5FpgQ_cAAAAAD0QI3s.",
            orjson.loads(payloads["flow_response.json"])["entry"][0]["changes"][0]["value"][
                "messages"
            ][0]["interactive"]["nfm_reply"]["response_json"],
            1714510003,
        ]
    ]
    dead = query(stack, "SELECT stage, reason, payload FROM waflow.dead_letters")
    assert dead == [["streams", "invalid_json", "{not json"]]
    assert query(stack, "SELECT count() = uniqExact(message_id) FROM waflow.flow_responses") == [
        [1]
    ]

    # The typed topics carry one Avro record per item, decodable with the documented decoder.
    consumer = AIOKafkaConsumer(
        stack.topics.responses,
        stack.topics.events,
        bootstrap_servers=stack.kafka_bootstrap,
        group_id=uuid.uuid4().hex,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 20
        while len(seen) < responses + events and time.monotonic() < deadline:
            for msgs in (await consumer.getmany(timeout_ms=1000)).values():
                for m in msgs:
                    _name, record = codec().decode(m.value)
                    seen.append(record.get("message_id") or record["event_id"])
    finally:
        await consumer.stop()
    assert len(seen) == len(set(seen)) == responses + events
